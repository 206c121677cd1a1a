"""Judging one window: an implementation's Outcome against the oracles' expectations.

Shared by ``check`` (which runs the oracles from the state the implementation carried)
and ``grade`` (which runs them once per configuration, from the oracle's own trajectory,
for every submission): both turn the same inputs into the same Results.
"""
from .compare import compare
from .model import cell_names, describe, ordered_names
from .untrusted import Problem
from .report import Result
from .tolerances import ROUNDING_CAP, calibrated, tolerance

__all__ = ["judge_window", "judge", "result_of", "uncompared", "ORDER", "NOT_JUDGED"]

# The start of a Result's message for an array whose rounding is too coarse to judge.
NOT_JUDGED = "not judged"
# Results are listed per window in the model's order of outputs, each array's oracles together.
ORDER = {n: i for i, n in enumerate(ordered_names())}     # of every cell: each model's order
# The forward's outputs of every cell (loss, h_last, c_last): what is not a gradient.
OUTPUTS = frozenset(n for c in cell_names() for n in describe(c).output_names)


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


def judge(name, oracle, window, got, want, base, own, exclude=None):
    """Compare ``got`` with ``want`` at ``base`` calibrated to the rounding ``own`` of
    the implementation's dtype (tolerances.calibrated); the Result records which it used.
    An allowance the rounding would push above ROUNDING_CAP is not granted: the array is
    not judged, and the Result fails (a check that cannot judge an array does not pass)."""
    tol = calibrated(base, own)
    if tol.atol_rel > ROUNDING_CAP:
        return Result(name=name, oracle=oracle, window=window, passed=False,
                      message=(f"{NOT_JUDGED}: rounding alone puts the reference in this dtype "
                               f"{own:.2g} (relative) from itself in float64 here; judging "
                               f"it would need atol {tol.atol_rel:.2g}, above the cap "
                               f"{ROUNDING_CAP:g} under which a 1e-3 error still fails"),
                      rtol=base.rtol, atol_rel=base.atol_rel, rounding=own)
    return result_of(name, oracle, window, compare(got, want, tol, exclude), tol, base, own)


def uncompared(out, expected, skip=()):
    """The Problems of an answer that lacks an array the checker expects: one per array
    of ``expected`` (the contract's outputs, from the oracles) that ``skip`` does not
    leave out and ``out`` has no value for, unless ``out`` already carries a problem
    (which fails the window and says why). What is compared is the checker's decision:
    an answer cannot shrink it by leaving arrays out or by saying it has none."""
    if out.problems:
        return []
    got = dict(out.grads or {}, **out.outputs())
    names = sorted({e.name for e in expected if e.name not in skip}, key=ORDER.get)
    return [Problem("return_value" if n in OUTPUTS else "missing_grad",
                    f"the answer carries no {n}, so it could not be compared")
            for n in names if got.get(n) is None]


def judge_window(w, out, expected, own, dtype, skip=()):
    """Every Result of window ``w`` (1-based): a contract Result per problem of ``out``
    (an untrusted.Outcome) and per expected array it lacks (``uncompared``), then each
    oracle's Expected that ``out`` has a value for and that ``skip`` does not leave out,
    at the dtype's tolerance calibrated to the rounding ``own`` ({name: relative error})."""
    results = [Result(name=p.name, oracle="contract", window=w, passed=False, message=p.message)
               for p in list(out.problems) + uncompared(out, expected, skip)]
    got = dict(out.grads or {}, **out.outputs())
    for e in sorted(expected, key=lambda e: ORDER[e.name]):         # stable: oracle order
        if got.get(e.name) is None or e.name in skip:
            continue
        value = got[e.name] if e.project is None else e.project(got[e.name])
        results.append(judge(e.name, e.oracle, w, value, e.want, tolerance(e.table, dtype),
                             own.get(e.name), e.exclude))
    return results
