"""From the pattern of failing arrays, steps and windows, the most likely class of bug."""
import numpy as np

from .compare import compare
from .model import GRAD_NAMES, INPUT_NAME, LAYERS, STATE_NAME, UPSTREAM_OF_STATE

__all__ = ["mismatch_kind", "diagnose"]

FIRST_LAYER, _RNN, OUTPUT = (layer.arrays for layer in LAYERS)
STATE_PATH = UPSTREAM_OF_STATE
GRADS = GRAD_NAMES


def mismatch_kind(name, impl, oracle, per_step, tol):
    """A closer look at one failing array: ("zeros",), ("transposed",), ("scale", c),
    ("reversed",) for x, ("one_step", t) for a weight holding step t's term only,
    ("missing_step", t) for one missing step t's term, or None.

    Shapes: impl, oracle the array's shape; per_step [T, *shape] or None.
    """
    impl, oracle = np.asarray(impl, np.float64), np.asarray(oracle, np.float64)
    if not np.all(np.isfinite(impl)):
        return None
    if not impl.any() and oracle.any():
        return ("zeros",)
    if oracle.ndim == 2 and oracle.shape[0] == oracle.shape[1] and \
            compare(impl, oracle.T, tol).passed:
        return ("transposed",)
    if name == INPUT_NAME and oracle.shape[0] > 1 and compare(impl, oracle[::-1], tol).passed:
        return ("reversed",)
    denom = float(np.sum(oracle * oracle))
    if denom > 0:
        c = float(np.sum(impl * oracle)) / denom
        if compare(impl, c * oracle, tol).passed:
            return ("scale", c)
    if per_step is not None and per_step.shape[0] > 1:
        for t in range(per_step.shape[0]):
            if compare(impl, per_step[t], tol).passed:
                return ("one_step", t + 1)
            if compare(impl, oracle - per_step[t], tol).passed:
                return ("missing_step", t + 1)
    return None


def _names(seq):
    return ", ".join(seq)


def _window_steps(windows, w):
    start, stop = windows[w - 1]
    return list(range(start + 1, stop + 1))


def diagnose(results, windows, config, kinds, self_consistent=None):
    """One sentence naming the most likely class of bug, or None when everything agrees.

    results: the report's Result list (``steps`` filled in for failing arrays);
    windows: [(start, stop)]; kinds: {(window, name): mismatch_kind(...)}; self_consistent:
    whether the gradients match finite differences of the implementation's own loss.
    """
    failing = [r for r in results if not r.passed]
    if not failing:
        return None
    contract = {r.name: r for r in failing if r.oracle == "contract"}
    for name, lead in (("timeout", "The implementation hung or is too slow"),
                       ("time_limit", "The implementation is too slow"),
                       ("memory", "The implementation used too much memory"),
                       ("crashed", "The implementation's process ended"),
                       ("protocol", "The implementation's process broke the checker's protocol"),
                       ("exception", "The implementation raised an exception"),
                       ("return_value", "The implementation breaks the return contract"),
                       ("missing_grad", "The implementation breaks the return contract"),
                       ("shape", "The implementation returns an array of the wrong shape"),
                       ("nan", "The implementation produces NaN or inf"),
                       ("inputs_modified", "The implementation writes into its inputs")):
        if name in contract:
            return f"{lead}: {contract[name].message} (window {contract[name].window})."
    judged = [r for r in failing if r.oracle != "contract"]
    first_window = min(r.window for r in judged)
    names = {r.name for r in judged}
    arrays = [n for n in GRADS if n in names]
    if first_window > 1 and len(windows) > 1:
        what = ("the forward uses a state other than the h0 passed in"
                if names & {"loss", "h_last"} else
                "the state derivative accumulator is not reset between windows")
        return (f"Window 1 agrees but window {first_window} disagrees ({_names(sorted(names))}): "
                f"state leaks from one window into the next; {what}.")
    w = first_window
    kind = {n: kinds.get((w, n)) for n in arrays}
    scales = {float(f"{k[1]:.6g}") for k in kind.values() if k and k[0] == "scale"}
    if "loss" in names and "h_last" in names:
        consistent = ("; its gradients do match finite differences of its own loss, so the "
                      "backward faithfully differentiates the wrong function"
                      if self_consistent else "")
        return ("The forward pass is wrong: the loss and h_last disagree with JAX "
                f"(so do {_names(arrays) or 'no gradients'}){consistent}.")
    if "loss" in names and not arrays:
        return ("The loss value is wrong but every gradient is right: the reported loss is "
                "not the one differentiated (its reduction or scale).")
    if "loss" in names and len(scales) == 1 and len(arrays) == len(GRADS):
        return (f"The loss and every gradient are off by the same factor {scales.pop():.6g}: "
                "the reduction divides by the wrong number.")
    if "h_last" in names and not arrays:
        return "h_last is wrong while the loss and gradients agree: the returned state is not h_T."
    # the steps of window w decide the pattern; the message names them in every window
    steps = {r.name: r.steps for r in judged
             if r.oracle == "jax" and r.steps is not None and r.window == w}
    steps_everywhere = {}
    for r in judged:
        if r.oracle == "jax" and r.steps:
            steps_everywhere.setdefault(r.name, set()).update(r.steps)
    all_steps = _window_steps(windows, w)
    if set(arrays) == set(GRADS):
        if len(scales) == 1:
            return (f"Every gradient is off by the same factor {scales.pop():.6g}: "
                    "the reduction's scale is wrong in the backward pass.")
        return (f"Every gradient disagrees, W3 and b3 included: the derivative at the output, "
                f"dL/dz3, is wrong for loss {config['loss']} with f3 = "
                f"{config['activations'][2]}.")
    if set(STATE_PATH) <= set(arrays) and not set(OUTPUT) & set(arrays):
        u_steps = steps.get("U") or steps.get(INPUT_NAME)
        if u_steps is not None and len(all_steps) > 1 and u_steps == all_steps[:-1]:
            return (f"The state derivative is not passed back through time: "
                    f"{_names(STATE_PATH)} disagree at every step but the last "
                    f"(dh_next is not added to dh_t, or replaces it).")
        return (f"The backward pass through the RNN activation f2 = {config['activations'][1]} "
                f"is wrong: {_names(STATE_PATH)} disagree at every step, the last included "
                f"(f2' computed from the wrong value?).")
    if set(arrays) == set(FIRST_LAYER):
        return (f"The first dense layer's backward is wrong: W1, b1 and x disagree while the "
                f"RNN and the output layer agree (f1 = {config['activations'][0]}: check f1' "
                f"and d1 = da * f1'(z1)).")
    if len(arrays) == 1:
        (name,) = arrays
        k = kind.get(name)
        at = steps.get(name)
        at_all = sorted(steps_everywhere.get(name, ()))
        if k and k[0] == "zeros":
            if name == STATE_NAME:
                return ("dh0 is returned as zeros: after step 1 the accumulator dh_next is "
                        "dh0 and must be returned.")
            return f"d{name} is returned as zeros."
        if k and k[0] == "transposed":
            return (f"d{name} is transposed (h^T d2 written as d2^T h?); {name} is square, "
                    f"so the shape still matched.")
        if k and k[0] == "scale":
            return (f"d{name} is off by a constant factor {k[1]:.10g} (relative "
                    f"{k[1] - 1:.1e}): a scale error such as a wrong divisor.")
        if k and k[0] == "reversed":
            return "dx is stored in reversed time order: dx[t] belongs at step t."
        if k and k[0] == "one_step":
            return (f"d{name} holds only step {all_steps[k[1] - 1]}'s contribution: the per-step "
                    f"gradients are assigned (=) instead of accumulated (+=) over time.")
        if name == "U" and (at == all_steps[:1] or k == ("missing_step", 1)):
            return ("dU misses step 1's term h0^T d2_1 (it equals JAX's dU without it): "
                    "invisible when the incoming state is zero.")
        where = f" at steps {at_all}" if at_all else ""
        return (f"Only d{name} disagrees{where}: its own gradient line is wrong "
                f"(for W3: d3_t multiplied by h_{{t-1}} instead of h_t?).") if name == "W3" else \
            f"Only d{name} disagrees{where}: its own gradient line is wrong."
    where = "" if not steps_everywhere else " (" + "; ".join(
        f"{n} at steps {sorted(s)}" for n, s in steps_everywhere.items() if s) + ")"
    return f"{_names(arrays)} disagree with JAX, first in window {w}{where}."
