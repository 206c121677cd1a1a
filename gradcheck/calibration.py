"""The rounding allowance of the implementation's dtype: how far rounding alone keeps a
correct float32 implementation from the float64 oracles, measured on each window's inputs.

The reference computed in that dtype is compared with the reference computed in float64,
so a fault in the reference cancels instead of widening any tolerance
(tolerances.calibrated raises an array's atol_rel to ROUNDING_MARGIN times it, and
judge.judge refuses to judge an array that would need more than ROUNDING_CAP).
"""
import numpy as np

from ._reference import reference

__all__ = ["rounding_of_dtype", "own_rounding"]


def own_rounding(computed, exact, state_out_names=("h_last",)):
    """The rounding of the implementation's dtype, per array: max |reference in that
    dtype - reference in float64| / max |reference in float64| on the same inputs (None
    where the float64 array is all zero). Both sides are the reference, so a fault in
    the reference cancels instead of widening any tolerance. ``computed``, ``exact``:
    the reference's (loss, grads, h_last[, c_last]) in the implementation's dtype and
    in float64; ``state_out_names``: the names of the states after grads."""
    def named(out):
        value, grads, *states = out
        return dict(grads, loss=value, **dict(zip(state_out_names, states)))
    got, want = named(computed), named(exact)
    own = {}
    for name, arr in got.items():
        w = np.asarray(want[name], np.float64)
        scale = float(np.max(np.abs(w)))
        err = float(np.max(np.abs(np.asarray(arr, np.float64) - w)))
        own[name] = err / scale if scale > 0 else None
    return own


def _float64(a):
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def rounding_of_dtype(dtype, params, x, y, h0, options, own_output=None, states=None,
                      loss_and_grads=None, state_out_names=("h_last",)):
    """{} in float64 (no allowance is ever raised there); in float32 the rounding of
    own_rounding, running the reference in float32 (or taking ``own_output``, its
    result at hand) and in float64 on the same inputs. ``states``: a cell's further
    incoming states by name; ``loss_and_grads``: its reference (default: the RNN's), whose
    returned states are ``state_out_names``."""
    if np.dtype(dtype) == np.float64:
        return {}
    fn = loss_and_grads or reference.loss_and_grads
    more = list((states or {}).values())
    # A state that explodes (an identity or relu RNN over many steps) overflows float32:
    # the reference's inf is a figure here (a non-finite rounding raises no allowance,
    # tolerances.calibrated), not an error of the check.
    with np.errstate(over="ignore", invalid="ignore"):
        low = own_output or fn(params, x, y, h0, *more, **options)
        exact = fn({n: _float64(a) for n, a in params.items()}, _float64(x), _float64(y),
                   _float64(h0), *(_float64(s) for s in more), **options)
        return own_rounding(low, exact, state_out_names)
