"""Judging one window: an implementation's Outcome against the oracles' expectations.

Shared by ``check`` (which runs the oracles from the state the implementation carried)
and ``grade`` (which runs them once per configuration, from the oracle's own trajectory,
for every submission): both turn the same inputs into the same Results.
"""
import numpy as np

from .compare import compare
from .model import GRAD_NAMES, OUTPUT_NAMES
from .report import Result
from .tolerances import calibrated, tolerance

__all__ = ["judge_window", "own_rounding", "result_of"]

# Results are listed per window in the model's order of outputs, each array's oracles together.
_ORDER = {n: i for i, n in enumerate(OUTPUT_NAMES + GRAD_NAMES)}


def result_of(name, oracle, window, comparison, tol, base=None, own=None):
    """A Result from a Comparison; ``own`` (the reference's own error) is recorded
    when ``tol`` was raised above ``base`` for it."""
    c = comparison
    if c.passed:
        message = ""
    elif c.nonfinite:
        message = (f"{c.nonfinite} non-finite value{'s' if c.nonfinite > 1 else ''}, "
                   f"first at {list(c.worst)}")
    elif c.oracle_value is None or c.ratio is None:
        message = (f"the {oracle} oracle is not finite at {list(c.worst)} (the model "
                   f"overflows at these values), so this array cannot be judged")
    else:
        message = (f"worst element {list(c.worst)}: impl {c.impl_value:.10g}, {oracle} "
                   f"{c.oracle_value:.10g}, error {c.max_abs_err:.3g} is {c.ratio:.3g}x "
                   f"the allowed (rtol {tol.rtol:g}, atol {tol.atol_rel:g} of max |{oracle}|)")
    return Result(name=name, oracle=oracle, window=window, passed=c.passed, message=message,
                  checked=c.checked, excluded=c.excluded, max_abs_err=c.max_abs_err,
                  max_rel_err=c.max_rel_err, ratio=c.ratio, rtol=tol.rtol,
                  atol_rel=tol.atol_rel,
                  worst_index=None if c.worst is None else list(c.worst),
                  impl_value=c.impl_value, oracle_value=c.oracle_value, nonfinite=c.nonfinite,
                  rounding=own if base is not None and tol.atol_rel > base.atol_rel else None)


def own_rounding(computed, ref):
    """The reference's own error, per array, computing in the implementation's dtype on
    the same inputs: max |reference - JAX| / max |JAX| (None where JAX's is all zero).
    ``computed``: the reference's (loss, grads, h_last) on this window; ``ref``: JAX's."""
    value, grads, h_last = computed
    got = dict(grads, loss=value, h_last=h_last)
    want = dict(ref.grads, loss=ref.loss, h_last=ref.h_last)
    own = {}
    for name, arr in got.items():
        scale = float(np.max(np.abs(want[name])))
        err = float(np.max(np.abs(np.asarray(arr, np.float64) - want[name])))
        own[name] = err / scale if scale > 0 else None
    return own


def judge_window(w, out, expected, own, dtype):
    """Every Result of window ``w`` (1-based): a contract Result per problem of ``out``
    (an untrusted.Outcome), then each oracle's Expected that ``out`` has a value for,
    at the dtype's tolerance calibrated to the reference's own error ``own``."""
    results = [Result(name=p.name, oracle="contract", window=w, passed=False, message=p.message)
               for p in out.problems]
    got = dict(out.grads or {}, loss=out.loss, h_last=out.h_last)
    for e in sorted(expected, key=lambda e: _ORDER[e.name]):     # stable: oracle order
        if got.get(e.name) is None:
            continue
        value = got[e.name] if e.project is None else e.project(got[e.name])
        base = tolerance(e.table, dtype)
        tol = calibrated(base, own[e.name])
        results.append(result_of(e.name, e.oracle, w, compare(value, e.want, tol, e.exclude),
                                 tol, base, own[e.name]))
    return results
