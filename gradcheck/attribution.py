"""Which time steps' contributions disagree, for an array that failed in a window.

The JAX model gives every step its own copy of the shared weights, so it has
each step's contribution to a weight's gradient (``per_step``). The
implementation only returns sums; its per-step contributions are recovered
from suffix windows: the window of steps t..T started from the true state
h_{t-1} has gradient sum_{s >= t} (contribution of step s), because step s's
use of a weight only affects the losses of steps s..T. Differences of
consecutive suffixes give step t's contribution. For x, dx[t] is already per step;
for the loss, the suffix losses give each step's loss the same way.

This assumes a step's code does not depend on where its window starts. Code whose
mistake is tied to the window's first step (dU's first term from the wrong state) makes
every suffix window wrong at ITS first step, so the differences blame every step;
check._evidence tests such candidates against the numbers (candidates.py) and, when
one reproduces them, moves the array's steps to each window's first step.

Code that starts every call from a zero further state (an LSTM whose c starts at zero,
``"cell_state": "reset"``) cannot be started from the state entering a later step: its
suffix windows would start from c = 0, not c_{t-1}, and blame steps wrongly. Its steps are
not named (``unattributable`` says why); dx is still per step.
"""
import numpy as np

from .compare import compare

__all__ = ["disagreeing_steps", "step_contributions", "unattributable"]


def step_contributions(suffix_sums):
    """Each step's contribution from the suffix windows' sums: ``suffix_sums[t]`` is the
    value (a gradient, or the loss) of the window of steps t..T; returns [T, *shape],
    the difference of consecutive suffixes (the last step's is its own suffix)."""
    s = np.asarray(suffix_sums, np.float64)
    return s - np.concatenate([s[1:], np.zeros_like(s[:1])])


def _steps_that_fail(impl_steps, oracle_steps, tol):
    """1-based indices t whose slice [t] disagrees, judged at the scale of all steps."""
    scale = float(np.max(np.abs(oracle_steps), initial=0.0))
    return [t + 1 for t in range(oracle_steps.shape[0])
            if not compare(impl_steps[t], oracle_steps[t], tol, scale=scale).passed]


def disagreeing_steps(call, params, x, y, oracle, impl_grads, names, options, dtype, tol):
    """Map each name in ``names`` (grads and/or "loss") to the 1-based steps of this
    window whose contributions disagree; None for a name that cannot be attributed.
    ``call(params, x, y, h0, options, t)`` runs the implementation (an Outcome) on the
    suffix window from step t (1-based).

    Shapes: x [T, B, I]; oracle a JaxResult of this window (states [T+1, B, R]).
    """
    T = x.shape[0]
    out = {}
    if "x" in names and "x" in impl_grads:
        out["x"] = _steps_that_fail(impl_grads["x"], oracle.grads["x"], tol)
    wanted = [n for n in names if n in oracle.per_step or n == "loss"]
    if not wanted:
        return out
    suffix_grads, suffix_loss = [], []
    for t in range(T):
        h_start = oracle.states[t].astype(dtype)
        got = call(params, x[t:], y[t:], h_start, options, t + 1)
        if got.problems or got.grads is None or got.loss is None:
            return {**out, **{n: None for n in wanted}}
        suffix_grads.append(got.grads)
        suffix_loss.append(got.loss)
    for name in wanted:
        if name == "loss":
            out["loss"] = _steps_that_fail(step_contributions(suffix_loss), oracle.step_losses,
                                           tol)
            continue
        out[name] = _steps_that_fail(step_contributions([g[name] for g in suffix_grads]),
                                     oracle.per_step[name], tol)
    return out


def unattributable(names, zeroed):
    """The note (a skipped call) for arrays ``names`` (gradients, "loss") whose steps are
    not named because the code starts every call from the states ``zeroed`` at zero."""
    arrays = ", ".join(n if n == "loss" else f"d{n}" for n in names)
    return (f"naming the time steps of {arrays}: this code starts every call from "
            f"{' and '.join(f'{n} = 0' for n in zeroed)}, so it cannot be started from the "
            f"state entering a later step, which attributing a step needs")
