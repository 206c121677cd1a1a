"""The diagnosis engine: from what a check measured, the most likely class of bug, as data.

One engine for the whole window (``explain``, used by ``check`` and ``grade``) and for
one layer (``diagnose_layer``, used by ``layer_check``). Every diagnosis is a
``kinds.Diagnosis``: a kind from the one list in ``kinds.py``, the sentence, and the
evidence it rests on (windows, arrays, steps, the candidate mistake that reproduced the
numbers and how closely).

The order of judgement:
1. a problem of the call (exception, shape, timeout, ...) is the diagnosis;
2. every failing window and array is tested for float32-level disagreement in a float64
   check; when all of them are, that is the diagnosis; when only some are, the rest is
   diagnosed alone and the float32 part becomes the ``second`` finding;
3. candidate mistakes (candidates.py) are tested against the numbers before a pattern of
   failing arrays and steps names a cause;
4. the pattern of failing arrays, steps and windows.
"""
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .attribution import disagreeing_steps, unattributable
from .compare import compare
from .judge import NOT_JUDGED, ORDER, OUTPUTS
from .kinds import Diagnosis
from .model import DEFAULT_CELL, GRAD_NAMES, INPUT_NAME, STATE_NAME, cell, describe, side
from .tolerances import tolerance

__all__ = ["mismatch_kind", "diagnose", "explain", "self_consistent", "diagnose_layer",
           "float32_ratio", "problem_diagnosis"]

GRADS = GRAD_NAMES
# The problems of a call, in the order a diagnosis names them, with its sentence's lead.
PROBLEM_LEADS = (("timeout", "The implementation hung or is too slow"),
                 ("time_limit", "The implementation is too slow"),
                 ("memory", "The implementation used too much memory"),
                 ("crashed", "The implementation's process ended"),
                 ("protocol", "The implementation's process broke the checker's protocol"),
                 ("declaration", "The adapter declaration does not match the code"),
                 ("exception", "The implementation raised an exception"),
                 ("return_value", "The implementation breaks the return contract"),
                 ("missing_grad", "The implementation breaks the return contract"),
                 ("shape", "The implementation returns an array of the wrong shape"),
                 ("nan", "The implementation produces NaN or inf"),
                 ("inputs_modified", "The implementation writes into its inputs"))
# Problems after which the implementation cannot be called again in this check.
_ENDED = ("timeout", "time_limit", "memory", "crashed", "protocol")
# What a float32-level sentence calls the float32 allowance it quotes against.
FLOAT32_ALLOWANCE = "float32's tolerance of JAX"


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


# ------------------------------------------------------------------ float32

# A common factor this close to 1 is float32 rounding, not a scale error: a float32
# computation's few-element arrays (b3, a batch sum) often fit one factor by chance, and
# the factors seen from a float32 cast stay within one float32 epsilon (1.2e-7) of 1; the
# zoo's smallest real scale error (db3 off by 1e-6) is eight epsilons away.
ROUNDING_FACTOR = 2 * float(np.finfo(np.float32).eps)


def float32_ratio(pairs, kinds=None):
    """The worst error / float32 tolerance of JAX over ``pairs`` ({key: (impl, jax)}),
    or None when some pair is beyond it, or is a clean constant factor (``kinds[key]``
    ("scale", c): a real scale error, however small, is no rounding -- unless c is within
    ROUNDING_FACTOR of 1: then it is float32 rounding that happens to fit a common factor)."""
    tol32 = tolerance("jax", "float32")
    worst = 0.0
    for key, (got, want) in pairs.items():
        k = (kinds or {}).get(key)
        if k and k[0] == "scale" and abs(k[1] - 1) > ROUNDING_FACTOR:
            return None
        c = compare(got, want, tol32)
        if not c.passed:
            return None
        worst = max(worst, c.ratio or 0.0)
    return worst


def _spans(windows):
    ws = sorted(windows)
    return f"window {ws[0]}" if len(ws) == 1 else "windows " + ", ".join(map(str, ws))


def _where(keys):
    """The (window, name) pairs as "dW1, db1 in windows 1, 2 and dU in window 1"."""
    by_name = {}
    for w, n in sorted(keys):
        by_name.setdefault(n, []).append(w)
    groups = {}
    for n in sorted(by_name, key=lambda n: ORDER.get(n, len(ORDER))):
        groups.setdefault(tuple(by_name[n]), []).append(n if n in OUTPUTS else "d" + n)
    return " and ".join(f"{', '.join(names)} in {_spans(ws)}" for ws, names in groups.items())


def _float32_sentence(ratio, where, alone):
    """The float32 finding's sentence; ``where`` names the windows and arrays."""
    if alone:
        return (f"Every disagreement is at float32 rounding level (errors up to {ratio:.2g}x "
                f"{FLOAT32_ALLOWANCE}, {where}; JAX and finite differences agree to "
                f"float64 precision): the code computes in float32 somewhere inside this "
                f"float64 check (a float32 buffer such as np.zeros(..., dtype=np.float32)?); "
                f"check it with --dtype float32, or keep its buffers in the inputs' dtype.")
    return (f"Besides, {where} disagree at float32 rounding level only (errors up to "
            f"{ratio:.2g}x {FLOAT32_ALLOWANCE}): the code computes in float32 somewhere "
            f"inside this float64 check; check it with --dtype float32, or keep its buffers "
            f"in the inputs' dtype.")


def _float32_finding(ratio, keys, alone):
    windows = sorted({w for w, _ in keys})
    arrays = sorted({n for _, n in keys}, key=ORDER.get)
    return Diagnosis("float32", _float32_sentence(ratio, _where(keys), alone),
                     {"windows": windows, "arrays": arrays, "ratio": ratio,
                      "allowance": 1.0})


def _float32_parts(seen, judged, kinds, config):
    """(keys, ratio): the failing (window, name) pairs of a float64 check whose
    disagreement with JAX is at float32 level, every window and array looked at."""
    if config.dtype != "float64":
        return set(), None
    level, worst = set(), 0.0
    for r in judged:
        _, _, ref, out = seen[r.window - 1]
        pair = _pair(r.name, out, ref)
        if pair is None:
            continue
        ratio = float32_ratio({(r.window, r.name): pair}, kinds)
        if ratio is not None:
            level.add((r.window, r.name))
            worst = max(worst, ratio)
    return level, (worst if level else None)


def _pair(name, out, ref):
    """(impl's, JAX's) value of ``name`` in a window, or None when the impl has none."""
    if name == "loss":
        return (None if out.loss is None else (np.float64(out.loss), np.float64(ref.loss)))
    if name in OUTPUTS:                 # a returned state: h_last, an LSTM's c_last
        got = out.outputs().get(name)
        want = ref.h_last if name == "h_last" else getattr(ref, "outputs", {}).get(name)
        return None if got is None or want is None else (got, want)
    if out.grads is None or out.grads.get(name) is None or name not in ref.grads:
        return None
    return out.grads[name], ref.grads[name]


# ------------------------------------------------------------------ the whole window

def _stopped(outcome, what, skipped):
    """Record in ``skipped`` why extra calls stopped, when it was a limit or the worker's end."""
    for p in outcome.problems:
        if p.name in _ENDED:
            skipped.append(f"{what} stopped: {p.message}")
            return True
    return False


def problem_diagnosis(name, text, **evidence):
    """The Diagnosis of a problem that ended a call or a grading (a registered kind)."""
    return Diagnosis(name, text, evidence)


def explain(runner, params, seen, results, config, options, skipped, skip=(), decl=None):
    """The Diagnosis of a judged check, or None when everything agrees.

    ``seen``: per window (x, y, JAX's window, the implementation's Outcome). Attributes
    each failing array to time steps (filling ``Result.steps``), tests float32 rounding
    over every failing window and array, tests candidate causes against the numbers,
    then diagnoses the whole pattern. Runs after every window has been judged, so the
    extra calls it makes to the implementation (suffix windows, the self-consistency
    probe) cannot change any verdict. What a limit cut short is listed in ``skipped``.
    ``decl``: the adapter's declaration the code was checked through (its conventions),
    or None."""
    tol = tolerance("jax", config.dtype)
    kinds = {}
    zeroed = _zeroed(decl, config)
    for w, (x, y, ref, out) in enumerate(seen, start=1):
        failing = [r for r in results if r.window == w and not r.passed]
        if not failing or any(r.oracle == "contract" for r in failing):
            continue
        if any(r.message.startswith(NOT_JUDGED) for r in failing):
            continue
        names = sorted({r.name for r in failing if r.name != "h_last"})
        stepped = sorted((n for n in names if n in ref.per_step or n == "loss"),
                         key=lambda n: ORDER.get(n, len(ORDER)))
        if zeroed and stepped:          # dx alone is per step without suffix windows
            note = unattributable(stepped, zeroed)
            if note not in skipped:
                skipped.append(note)
            names = [n for n in names if n == INPUT_NAME]
        what = f"the attribution of window {w} to time steps"

        def call(p, x_, y_, h0, o, t, w=w, ref=ref):
            got = runner.call(p, x_, y_, h0, o, f"window {w}, attribution call {t} "
                                                 f"(the steps from {t} on)",
                              _states_at(ref, t - 1, config.dtype))
            _stopped(got, what, skipped)
            return got

        steps = disagreeing_steps(call, params, x, y, ref, out.grads, names, options,
                                  config.dtype, tol)
        start = config.windows[w - 1][0]
        for r in failing:
            if steps.get(r.name) is not None:
                r.steps = [start + t for t in steps[r.name]]
            if r.name in ref.grads:
                kinds[(w, r.name)] = mismatch_kind(r.name, out.grads[r.name], ref.grads[r.name],
                                                   ref.per_step.get(r.name), tol)
    failing = [r for r in results if not r.passed]
    if not failing:
        return None
    if all(r.message.startswith(NOT_JUDGED) for r in failing):
        names = sorted({r.name for r in failing}, key=ORDER.get)
        return Diagnosis(
            "not_judged", f"Nothing disagrees, but {', '.join(names)} cannot be judged in "
            f"{config.dtype} here: rounding alone moves the reference too far (a bug "
            f"could hide in it); check in float64 or another configuration.",
            {"windows": sorted({r.window for r in failing}), "arrays": names})
    judged = [r for r in failing if r.oracle != "contract"
              and not r.message.startswith(NOT_JUDGED)]
    second = None
    if judged and not any(r.oracle == "contract" for r in failing):
        level, ratio = _float32_parts(seen, judged, kinds, config)
        if level and level == {(r.window, r.name) for r in judged}:
            return _float32_finding(ratio, level, alone=True)
        if level:        # the larger disagreement is the diagnosis; float32 comes second
            second = _float32_finding(ratio, level, alone=False)
            results = [r for r in results if (r.window, r.name) not in level]
            tol = tolerance("jax", "float32")     # the rest is compared at float32 level
    consistent = None
    if (any(r.name == "loss" and not r.passed and r.oracle != "contract" for r in results)
            and not skip):
        x, y, ref, out = seen[0]
        consistent = self_consistent(runner, params, x, y, ref.states[0].astype(config.dtype),
                                     out, options, config, skipped,
                                     _states_at(ref, 0, config.dtype))
    evidence = _evidence(params, seen, results, config, options, tol, skip, decl)
    if second is not None:
        evidence["float32_aside"] = True     # "agrees" means: up to float32 rounding
    found = diagnose(results, config.windows, config.to_dict(), kinds, consistent,
                     evidence=evidence)
    return found if second is None else replace(found, second=second)


def _zeroed(decl, config):
    """The further states (c0) the declared code starts every call from at zero: it cannot
    run the suffix windows attribution needs (attribution.unattributable); [] for others."""
    if decl is None:
        return []
    from .adapters import resets_states
    return [i for i, _ in config.model.extra_states] if resets_states(decl) else []


def _convention(params, x, y, ref, out, config, options, tol, decl):
    """(kind, sentence, evidence) when the window's forward (loss, h_last) is the oracle's
    under other conventions of the cell than those checked (gradcheck/cells/
    convention_arrays.py), else None."""
    from .cells.convention_arrays import declared, follows, sentence
    checked = declared(decl, config.cell, config.cell_options)
    states = {n: s[0] for n, s in ref.extra_states.items()}
    found = follows(params, x, y, ref.states[0], states, out, checked, config.cell, options,
                    tol)
    if not found:
        return None
    kind, text = sentence(found, checked, config.cell, decl is not None)
    return kind, text, {"convention": found, "checked": checked}


def _states_at(ref, t, dtype):
    """A cell's further states entering step t (0-based) of the oracle's window, by their
    incoming names (an LSTM's c0: c_t); {} for the RNN."""
    return {n: s[t].astype(dtype) for n, s in getattr(ref, "extra_states", {}).items()}


def _evidence(params, seen, results, config, options, tol, skip=(), decl=None):
    """What candidates.py finds in the first window that disagrees: clipping, buffers
    that keep the last window's sums, and which candidate mistakes reproduce the
    gradients (at ``tol``). A first-step candidate moves the arrays' steps to each
    window's first step (attribution by suffix windows cannot see it)."""
    from .candidates import CANDIDATES, clipped_at, reproducing
    judged = [r for r in results if not r.passed and r.oracle != "contract"]
    if not judged:
        return {}
    w = min(r.window for r in judged)
    x, y, ref, out = seen[w - 1]
    if out.grads is None or len(out.grads) < len(ref.grads):
        return {}
    evidence = {}
    computed = {n: g for n, g in out.grads.items() if n not in skip}    # skipped: zeros
    bad = sorted({r.name for r in judged if r.window == w and r.name in ref.grads})
    clipped = {n: clipped_at(out.grads[n], ref.grads[n], tol) for n in bad}
    if bad and all(c is not None for c in clipped.values()):
        evidence["clipped"] = clipped
        return evidence
    if config.cell != DEFAULT_CELL:  # the cell's own zoo; the candidates below are the RNN's
        forward = {r.name for r in judged if r.window == w} & {"loss", "h_last"}
        convention = _convention(params, x, y, ref, out, config, options, tol, decl) \
            if forward else None
        if convention is not None:      # the forward follows another convention
            evidence.update(cell_finding=convention[:2], cell_extra=convention[2])
            return evidence
        if bad:
            zoo = side(config.cell, "zoo")
            fits = zoo.reproducing(params, x, y, ref.states[0],
                                   *(s[0] for s in ref.extra_states.values()), computed,
                                   options, tol)
            evidence.update(fits=fits, cell_finding=zoo.finding(fits))
        return evidence
    if w > 1:
        _, _, ref_before, out_before = seen[w - 2]
        if out_before.grads is not None:
            evidence["carried_sums"] = all(
                compare(out.grads[n], ref.grads[n] + out_before.grads[n], tol).passed
                for n in bad)
        return evidence
    if not bad:
        return evidence
    fits = reproducing(params, x, y, ref.states[0], computed, options, tol)
    evidence["candidates"] = list(fits)
    evidence["fits"] = fits
    if len(fits) == 1 and CANDIDATES[next(iter(fits))].first_step:
        evidence["first_step"] = config.windows[w - 1][0] + 1
        for r in judged:
            if r.name in bad and r.steps:
                start = config.windows[r.window - 1][0]
                r.steps = [start + 1]
    return evidence


# Directional finite difference of the implementation's own loss (diagnosis only, never
# a verdict): step 1e-6 in float64 keeps truncation ~1e-12 and rounding ~1e-10 of the
# loss; float32 needs 1e-2 (rounding ~1e-7 / 1e-2 ~ 1e-5), truncation ~1e-4 relative.
_SELF_STEP = {"float64": 1e-6, "float32": 1e-2}
# Agreement this close means the gradient is the derivative of the impl's own loss.
_SELF_RTOL = {"float64": 1e-5, "float32": 1e-2}


def self_consistent(runner, params, x, y, h0, out, options, config, skipped=None,
                    states=None):
    """True when the gradients match the implementation's own loss along a random
    direction of every array at once (2 extra calls of ``runner``); None when it
    cannot tell (why, when a limit stopped it, is added to ``skipped``). ``states``:
    the cell's further incoming states by name (an LSTM's c0)."""
    names = config.model.grad_names
    if out.grads is None or len(out.grads) < len(names):
        return None
    rng = np.random.default_rng(config.seed + 1)
    states = states or {}
    arrays = dict(params, x=x, h0=h0, **states)
    d = {n: rng.standard_normal(np.shape(arrays[n])) for n in names}
    e = _SELF_STEP[config.dtype]
    values = []
    for sign in (1.0, -1.0):
        moved = {n: (arrays[n] + sign * e * d[n]).astype(config.dtype) for n in names}
        got = runner.call({n: moved[n] for n in params}, moved["x"], y, moved["h0"], options,
                          f"the self-consistency probe (call {len(values) + 1} of 2)",
                          {n: moved[n] for n in states})
        if skipped is not None:
            _stopped(got, "the self-consistency probe", skipped)
        if got.loss is None or got.problems:
            return None
        values.append(got.loss)
    fd = (values[0] - values[1]) / (2 * e)
    inner = sum(float(np.sum(out.grads[n] * d[n])) for n in names)
    return abs(fd - inner) <= _SELF_RTOL[config.dtype] * max(abs(inner), abs(fd), 1e-300)


# ------------------------------------------------------------------ the pattern

def _names(seq):
    return ", ".join(seq)


def _window_steps(windows, w):
    start, stop = windows[w - 1]
    return list(range(start + 1, stop + 1))


def _candidate(evidence, lead=""):
    """(kind, sentence) for what the tested candidate mistakes found, or None (not
    tested, or none found). ``lead``: the pattern's own sentence, kept when a candidate
    confirms it."""
    if "candidates" not in evidence:
        return None
    from .candidates import CANDIDATES
    found = evidence["candidates"]
    if len(found) == 1:
        c = CANDIDATES[found[0]]
        where = (f"; the error is in step {evidence['first_step']} alone, the window's "
                 f"first step (every window shows it at its own first step)"
                 if c.first_step else "")
        return c.kind, f"{lead}{c.what}{where} (this mistake reproduces the numbers)."
    if found:
        return "ambiguous", ("Unclear which of these mistakes it is; each reproduces the "
                             "numbers: " + "; or ".join(CANDIDATES[f].what for f in found) + ".")
    return None


def diagnose(results, windows, config, kinds, self_consistent=None, evidence=None):
    """The Diagnosis naming the most likely class of bug, or None when everything agrees.

    results: the report's Result list (``steps`` filled in for failing arrays);
    windows: [(start, stop)]; config: the check's config as a dict; kinds:
    {(window, name): mismatch_kind(...)}; self_consistent: whether the gradients match
    finite differences of the implementation's own loss; evidence: what ``_evidence``
    found (candidates.py), which decides before patterns.
    """
    evidence = evidence or {}
    failing = [r for r in results if not r.passed]
    if not failing:
        return None
    if evidence.get("cell_finding") is not None:        # the cell's zoo named the mistake
        (kind, text), extra = evidence["cell_finding"], evidence.get("cell_extra", {})
    else:
        kind, text, extra = _pattern(failing, windows, config, kinds, self_consistent,
                                     evidence)
    steps = {}
    for r in failing:
        if r.oracle == "jax" and r.steps:
            steps.setdefault(r.name, set()).update(r.steps)
    facts = {"windows": sorted({r.window for r in failing}),
             "arrays": sorted({r.name for r in failing if r.oracle != "contract"},
                              key=lambda n: ORDER.get(n, len(ORDER))),
             "steps": {n: sorted(s) for n, s in steps.items()}}
    fits = evidence.get("fits") or {}
    if fits:
        facts["candidates_tested"] = True
    if len(fits) == 1:
        (name, fit), = fits.items()
        facts.update(candidate=name, factor=fit)
    elif fits:
        facts["candidates"] = dict(fits)
    facts.update(extra)
    return Diagnosis(kind, text, facts)


def _pattern(failing, windows, config, kinds, self_consistent, evidence):
    """(kind, sentence, extra evidence) of the failing results' pattern."""
    contract = {r.name: r for r in failing if r.oracle == "contract"}
    for name, lead in PROBLEM_LEADS:
        if name in contract:
            r = contract[name]
            return name, f"{lead}: {r.message} (window {r.window}).", {"message": r.message}
    judged = [r for r in failing if r.oracle != "contract"]
    first_window = min(r.window for r in judged)
    names = {r.name for r in judged}
    m = model_words(config)
    GRADS, FIRST_LAYER, OUTPUT, STATE_PATH = m.grads, m.first, m.output, m.state_path
    arrays = [n for n in GRADS if n in names]
    aside = " (up to float32 rounding)" if evidence.get("float32_aside") else ""
    if first_window > 1 and len(windows) > 1 and not names & set(
            ("loss", INPUT_NAME) + m.outputs + m.states) \
            and set(names) <= set(GRADS) and not set(FIRST_LAYER) <= names:
        carried = bool(evidence.get("carried_sums"))
        sums = (" (each equals this window's gradient plus the window before's: the sums "
                "carry over)" if carried else "")
        return ("buffers_not_reset",
                f"Window 1 agrees{aside} but from window {first_window} d{', d'.join(arrays)} "
                f"disagree while dx, {', '.join('d' + s for s in m.states)} and the first "
                f"layer agree: the weight-gradient "
                f"buffers are not reset between windows{sums}; zero them (or assign, "
                f"not +=) at the start of every backward.", {"carried_sums": carried})
    if first_window > 1 and len(windows) > 1:
        forward = bool(names & {"loss", "h_last"})
        what = ("the forward uses a state other than the h0 passed in" if forward else
                "the state derivative accumulator is not reset between windows")
        return ("stale_state" if forward else "state_accumulator_not_reset",
                f"Window 1 agrees{aside} but window {first_window} disagrees "
                f"({_names(sorted(names))}): state leaks from one window into the next; "
                f"{what}.", {})
    w = first_window
    kind = {n: kinds.get((w, n)) for n in arrays}
    scales = {float(f"{k[1]:.6g}") for k in kind.values() if k and k[0] == "scale"}
    if evidence.get("clipped"):
        cs = evidence["clipped"]
        bounds = sorted({float(f"{c:.6g}") for c in cs.values()})
        return ("clipped",
                f"d{', d'.join(cs)} are clipped inside the code: every element beyond "
                f"+-{' / +-'.join(f'{c:g}' for c in bounds)} is stuck there and the others "
                f"agree; gradient clipping belongs outside the gradient (turn it off or raise "
                f"the bound to check the gradient itself).", {"bounds": bounds})
    if config["loss"] == "l2" and scales == {2.0} and len(arrays) == len(GRADS):
        loss_too = "the loss and " if "loss" in names else ""
        return ("l2_half",
                f"{loss_too.capitalize() or 'E'}{'e' if loss_too else ''}very gradient "
                f"{'are' if loss_too else 'is'} 2x JAX's: l2 is 0.5 * sum of squares "
                f"(the 0.5 is left out{'' if loss_too else ' of the gradient: d(0.5 e^2) = e'}), "
                f"a factor of 2 in every gradient, not a wrong reduction.", {"scale": 2.0})
    if "loss" in names and "h_last" in names:
        consistent = ("; its gradients do match finite differences of its own loss, so the "
                      "backward faithfully differentiates the wrong function"
                      if self_consistent else "")
        return ("forward", "The forward pass is wrong: the loss and h_last disagree with JAX "
                f"(so do {_names(arrays) or 'no gradients'}){consistent}.",
                {"self_consistent": self_consistent})
    if "loss" in names and not arrays:
        return ("loss_value", "The loss value is wrong but every gradient is right: the "
                "reported loss is not the one differentiated (its reduction or scale).", {})
    if "loss" in names and len(scales) == 1 and len(arrays) == len(GRADS):
        scale = scales.pop()
        return ("reduction", f"The loss and every gradient are off by the same factor "
                f"{scale:.6g}: the reduction divides by the wrong number.", {"scale": scale})
    states = [n for n in m.outputs if n in names]
    if states and not arrays and "loss" not in names:
        last = " or ".join(f"{n[0]}_T" for n in states)       # h_last -> h_T
        return ("h_last", f"{', '.join(states)} {'is' if len(states) == 1 else 'are'} wrong "
                f"while the loss and gradients agree: the returned state is not {last}.", {})
    # the steps of window w decide the pattern; the message names them in every window
    steps = {r.name: r.steps for r in judged
             if r.oracle == "jax" and r.steps is not None and r.window == w}
    steps_everywhere = {}
    for r in judged:
        if r.oracle == "jax" and r.steps:
            steps_everywhere.setdefault(r.name, set()).update(r.steps)
    all_steps = _window_steps(windows, w)
    found = evidence.get("candidates") or []
    if set(arrays) == set(GRADS):
        if len(scales) == 1:
            scale = scales.pop()
            return ("backward_scale", f"Every gradient is off by the same factor {scale:.6g}: "
                    "the reduction's scale is wrong in the backward pass.", {"scale": scale})
        return ("output_derivative", f"Every gradient disagrees, W3 and b3 included: the "
                f"derivative at the output, dL/dz3, is wrong for loss {config['loss']} with "
                f"f3 = {config['activations'][2]}.", {})
    if set(STATE_PATH) <= set(arrays) and not set(OUTPUT) & set(arrays) and m.cell.fixed_f2:
        return _cell_state_path(m, steps, all_steps)
    if set(STATE_PATH) <= set(arrays) and not set(OUTPUT) & set(arrays):
        f2_lead = (f"The backward pass through the RNN activation f2 = "
                   f"{config['activations'][1]} is wrong: ")
        if len(found) == 1 and found[0] not in ("no_dh_next", "dh_next_overwrites"):
            return _candidate(evidence, f2_lead if found[0] == "tanh_grad_of_output"
                              else f"{_names(STATE_PATH)} disagree: ") + ({},)
        if len(found) > 1:
            return _candidate(evidence) + ({},)
        u_steps = steps.get(m.recurrent) or steps.get(INPUT_NAME)
        if u_steps is not None and len(all_steps) > 1 and u_steps == all_steps[:-1]:
            if "candidates" in evidence and not found:   # tested: none reproduces them
                return ("state_derivative_unclear",
                        f"Unclear: {_names(STATE_PATH)} disagree at every step but the last "
                        f"(the state's derivative is wrong on its way back), but no candidate "
                        f"mistake tested (a missing or overwriting dh_next, a transposed U in "
                        f"dh_next, dh_next without f2') reproduces the numbers.", {})
            return ("dh_next_not_passed", f"The state derivative is not passed back through "
                    f"time: {_names(STATE_PATH)} disagree at every step but the last "
                    f"(dh_next is not added to dh_t, or replaces it).", {})
        return ("f2_derivative", f"{f2_lead}{_names(STATE_PATH)} disagree at every step, the "
                f"last included (f2' computed from the wrong value?).", {})
    if set(arrays) == set(FIRST_LAYER):
        lead = (f"The first dense layer's backward is wrong: W1, b1 and x disagree while the "
                f"{m.cell.label} and the output layer agree (f1 = {config['activations'][0]}")
        if found == ["f1_grad_forgotten"]:
            return _candidate(evidence, lead + "): dx, dW1 and db1: ") + ({},)
        return "f1_derivative", lead + ": check f1' and d1 = da * f1'(z1)).", {}
    if len(arrays) == 1:
        return _one_array(arrays[0], kind, steps, steps_everywhere, all_steps, found,
                          evidence)
    where = "" if not steps_everywhere else " (" + "; ".join(
        f"{n} at steps {sorted(s)}" for n, s in steps_everywhere.items() if s) + ")"
    return ("arrays_disagree", f"{_names(arrays or sorted(names, key=ORDER.get))} disagree "
            f"with JAX, first in window {w}{where}.", {})


class ModelWords(NamedTuple):
    """The names the pattern's sentences use, from the check's model: its gradients, the
    first and the last layer's arrays, the arrays the state's derivatives reach on their
    way back, the incoming states (h0, an LSTM's c0), the states returned (h_last, ...)
    and the recurrent weight (the cell's own array multiplying the state)."""
    cell: object
    grads: tuple
    first: tuple
    output: tuple
    state_path: tuple
    states: tuple
    outputs: tuple
    recurrent: str


def model_words(config):
    """ModelWords of a check's config (as a dict: ``cell`` and its options, or the RNN)."""
    declared = cell(config.get("cell", DEFAULT_CELL))
    model = describe(declared.name, **{o.name: config.get(o.name, False)
                                        for o in declared.options})
    first, middle, last = model.layers
    return ModelWords(
        declared, model.grad_names, first.arrays, last.arrays,
        tuple(n for n in model.grad_names if n not in last.arrays), model.state_names,
        model.state_out_names,
        next(a.name for a in model.arrays if a.name in middle.arrays and a.fan_in == "R"))


def _cell_state_path(m, steps, all_steps):
    """(kind, sentence, extra) when every array the state's derivatives reach disagrees in
    a cell whose own nonlinearities are fixed (the LSTM, the GRU) and no mistake of its
    zoo reproduces the numbers: the cell's names, never the RNN's f2 or U."""
    nexts = " or ".join(f"d{s[:-1]}_next" for s in m.states)        # h0 -> dh_next
    reach = _names(m.state_path)
    u_steps = steps.get(m.recurrent) or steps.get(INPUT_NAME)
    if u_steps is not None and len(all_steps) > 1 and u_steps == all_steps[:-1]:
        return ("state_derivative_unclear",
                f"Unclear: {reach} disagree at every step but the last (a state's derivative "
                f"is wrong on its way back through the {m.cell.label}: {nexts}?), but no "
                f"mistake of the {m.cell.label} zoo reproduces the numbers.", {})
    return ("cell_backward",
            f"The backward pass through the {m.cell.label} cell is wrong: {reach} disagree at "
            f"every step, the last included, and no mistake of its zoo reproduces the "
            f"numbers; check the derivative of each of its nonlinearities and products.", {})


def _one_array(name, kind, steps, steps_everywhere, all_steps, found, evidence):
    """(kind, sentence, extra) when only ``name``'s gradient disagrees."""
    k = kind.get(name)
    at = steps.get(name)
    at_all = sorted(steps_everywhere.get(name, ()))
    if k and k[0] == "zeros":
        if name == STATE_NAME:
            return ("dh0_zeros", "dh0 is returned as zeros: after step 1 the accumulator "
                    "dh_next is dh0 and must be returned.", {})
        return "zeros", f"d{name} is returned as zeros.", {}
    if k and k[0] == "transposed":
        return ("transposed", f"d{name} is transposed (h^T d2 written as d2^T h?); {name} is "
                f"square, so the shape still matched.", {})
    if k and k[0] == "scale":
        return ("scale_one", f"d{name} is off by a constant factor {k[1]:.10g} (relative "
                f"{k[1] - 1:.1e}): a scale error such as a wrong divisor.", {"scale": k[1]})
    if k and k[0] == "reversed":
        return "dx_reversed", "dx is stored in reversed time order: dx[t] belongs at step t.", {}
    if k and k[0] == "one_step":
        return ("not_accumulated", f"d{name} holds only step {all_steps[k[1] - 1]}'s "
                f"contribution: the per-step gradients are assigned (=) instead of "
                f"accumulated (+=) over time.", {})
    where = f" at steps {at_all}" if at_all else ""
    if len(found) == 1:
        from .candidates import CANDIDATES
        if CANDIDATES[found[0]].first_step:
            where = ""
        return _candidate(evidence, f"Only d{name} disagrees{where}: ") + ({},)
    if found:
        return _candidate(evidence) + ({},)
    if name == "U" and (at == all_steps[:1] or k == ("missing_step", 1)):
        return ("dU_first_step", "dU misses step 1's term h0^T d2_1 (it equals JAX's dU "
                "without it): invisible when the incoming state is zero.", {})
    return ("one_line", (f"Only d{name} disagrees{where}: its own gradient line is wrong "
                         f"(for W3: d3_t multiplied by h_{{t-1}} instead of h_t?).")
            if name == "W3" else f"Only d{name} disagrees{where}: its own gradient line is "
            f"wrong.", {})


# ------------------------------------------------------------------ one layer

_LAYER_WORDS = {"zeros": "returned as zeros", "transposed": "transposed",
                "reversed": "in reversed time order"}


def diagnose_layer(layer, meaning, out_name, failing, kinds, dtype, loss, float32=None,
                   candidate=None, unclear=None):
    """The Diagnosis of a layer check (layer_check), or None when everything agrees.

    failing: the failing Results, one per array; kinds: {name: mismatch_kind(...)};
    float32: float32_ratio(...) of the failing arrays in a float64 check (None: beyond);
    candidate: (kind, sentence, first_step, flaw) of the one candidate mistake of the
    layer that reproduces the numbers (flaw None: several do; the sentence names them),
    or None; unclear: (kind, clause) of the pattern that the failing steps show when no
    candidate reproduces the numbers, or None.
    """
    if not failing:
        return None
    head = f"Layer {layer} ({meaning}): "
    facts = {"windows": [1], "arrays": [r.name for r in failing],
             "steps": {r.name: r.steps for r in failing if r.steps}}
    contract = [r for r in failing if r.oracle == "contract"]
    if contract:
        return Diagnosis(contract[0].name, head + contract[0].message + ".", facts)
    if float32 is not None and dtype == "float64":
        facts.update(ratio=float32, allowance=1.0)
        text = _float32_sentence(float32, "in " + ", ".join(
            "d" + r.name if r.name != out_name else r.name for r in failing), alone=True)
        return Diagnosis("float32", head + text[0].lower() + text[1:], facts)
    parts, words = [], set()
    for r in failing:
        k = kinds.get(r.name)
        what = _LAYER_WORDS.get(k[0] if k else None, "wrong")
        if k and k[0] == "scale":
            what = f"off by a constant factor {k[1]:.6g}"
        words.add(k[0] if k else None)
        at = f" at steps {r.steps}" if r.steps else ""
        parts.append(f"d{r.name} {what}{at}" if r.name != out_name
                     else f"the forward output {r.name} {what}{at}")
    text = head + "; ".join(parts) + "."
    kind = {"zeros": "zeros", "transposed": "transposed", "reversed": "dx_reversed",
            "scale": "scale_one"}.get(words.pop(), "arrays_disagree") if len(words) == 1 \
        else "arrays_disagree"
    if layer == "loss" and loss == "l2" and kinds and all(
            kinds.get(r.name) and kinds[r.name][0] == "scale"
            and abs(kinds[r.name][1] - 2) < 1e-6 for r in failing):
        text += (" l2 is 0.5 * sum of squares: the 0.5 is left out (a factor of 2 "
                 "in the loss and every gradient, not a wrong reduction).")
        kind = "l2_half"
    if candidate is not None and candidate[3] is None:          # several reproduce them
        kind, what, _, _ = candidate
        text = f"{head}{'; '.join(parts)}. {what}"
    elif candidate is not None:
        kind, what, _, flaw = candidate
        text = (head + (f"only d{failing[0].name} disagrees, and one candidate mistake "
                        f"reproduces it: {what}." if len(failing) == 1 else
                        f"{'; '.join(parts)}: {what} (this mistake reproduces the numbers)."))
        facts["candidate"] = flaw
    elif unclear is not None and kind == "arrays_disagree":
        kind, clause = unclear
        text = f"{head}{'; '.join(parts)}: {clause}."
    return Diagnosis(kind, text, facts)
