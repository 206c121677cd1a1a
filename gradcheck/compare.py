"""Element-wise comparison of an implementation's array with an oracle's (arrays only)."""
from typing import NamedTuple, Optional

import numpy as np

__all__ = ["Comparison", "compare"]


class Comparison(NamedTuple):
    """The outcome of one array against one oracle. ``ratio`` = worst error / allowed
    (passes when <= 1); ``worst`` indexes the element with the largest ratio."""
    passed: bool
    checked: int
    excluded: int
    max_abs_err: Optional[float]
    max_rel_err: Optional[float]
    ratio: Optional[float]
    worst: Optional[tuple]
    impl_value: Optional[float]
    oracle_value: Optional[float]
    nonfinite: int
    bad: Optional[np.ndarray] = None   # bool mask of failing elements (not serialised)


def _float(v):
    v = float(v)
    return v if np.isfinite(v) else None


def compare(impl, oracle, tol, exclude=None, scale=None):
    """Apply the criterion of ``tolerances`` to every element not in ``exclude``.

    Shapes: impl and oracle the same shape; exclude a bool mask of that shape or None.
    ``scale`` replaces max |oracle| as the array's scale (for judging a slice of a
    larger array at the larger array's scale).
    NaN or inf in ``impl`` fails (and is counted in ``nonfinite``).
    """
    impl = np.asarray(impl, np.float64)
    oracle = np.asarray(oracle, np.float64)
    keep = np.ones(oracle.shape, bool) if exclude is None else ~exclude
    checked = int(keep.sum())
    finite = np.isfinite(impl)
    nonfinite = int((~finite & keep).sum())
    if scale is None:
        scale = float(np.max(np.abs(oracle), initial=0.0))
    allowed = tol.atol_rel * scale + tol.rtol * np.abs(oracle) + tol.floor
    err = np.abs(impl - oracle)
    with np.errstate(invalid="ignore"):
        ratio = np.where(keep, np.where(finite, err / allowed, np.inf), 0.0)
    bad = keep & ~(ratio <= 1.0)
    if checked == 0:
        return Comparison(True, 0, int(oracle.size), 0.0, 0.0, 0.0, None, None, None, 0, bad)
    flat = int(np.argmax(ratio)) if nonfinite == 0 else int(np.argmax(~finite & keep))
    worst = tuple(int(i) for i in np.unravel_index(flat, oracle.shape))
    kept_err = np.where(keep, err, 0.0)
    max_abs = _float(np.max(kept_err)) if nonfinite == 0 else None
    max_rel = None if max_abs is None else max_abs / max(scale, tol.floor)
    return Comparison(
        passed=not bad.any(), checked=checked, excluded=int(oracle.size) - checked,
        max_abs_err=max_abs, max_rel_err=max_rel,
        ratio=_float(ratio.flat[flat]) if nonfinite == 0 else None,
        worst=worst, impl_value=_float(impl.flat[flat]), oracle_value=_float(oracle.flat[flat]),
        nonfinite=nonfinite, bad=bad)
