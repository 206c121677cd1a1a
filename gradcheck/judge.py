"""Judging one window: an implementation's Outcome against the oracles' expectations.

Shared by ``check`` (which runs the oracles from the state the implementation carried)
and ``grade`` (which runs them once per configuration, from the oracle's own trajectory,
for every submission): both turn the same inputs into the same Results with check's
``_judge`` (the comparison at the calibrated tolerance).
"""
from .report import Result
from .tolerances import tolerance

__all__ = ["judge_window"]


def judge_window(w, out, expected, own, dtype):
    """Every Result of window ``w`` (1-based): a contract Result per problem of ``out``
    (an untrusted.Outcome), then each oracle's Expected that ``out`` has a value for,
    at the dtype's tolerance calibrated to the rounding ``own`` ({name: relative error})."""
    from .check import _ORDER, _judge            # here: check imports this module
    results = [Result(name=p.name, oracle="contract", window=w, passed=False, message=p.message)
               for p in out.problems]
    got = dict(out.grads or {}, loss=out.loss, h_last=out.h_last)
    # in the model's order of outputs, each array's oracles together (stable: oracle order)
    for e in sorted(expected, key=lambda e: _ORDER[e.name]):
        if got.get(e.name) is None:
            continue
        value = got[e.name] if e.project is None else e.project(got[e.name])
        results.append(_judge(e.name, e.oracle, w, value, e.want, tolerance(e.table, dtype),
                              own.get(e.name), e.exclude))
    return results
