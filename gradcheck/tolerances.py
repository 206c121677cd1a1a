"""Every tolerance and step the checker uses, per dtype, each with where it comes from.

The closeness criterion (one for every array and oracle):

    |impl_i - oracle_i| <= ATOL_REL * max_j |oracle_j| + RTOL * |oracle_i| + FLOOR

for every element i. ATOL_REL is relative to the array's largest oracle value, so
a ``reduction="sum"`` check (gradients B times larger) uses the same numbers as
"mean", and tiny elements of a large array are judged at the array's own scale
rather than at their own (where rounding dominates). FLOOR only matters when the
oracle array is exactly zero. NaN or inf in either never passes.

Sensitivity this buys (asserted by tests): a whole array off by a relative 1e-6
fails in float64 (its largest element is off by 1e-6 * max, allowed
ATOL_REL + RTOL = 2e-8 of max against JAX, 4e-7 against finite differences);
in float32 a relative 1e-3 fails (allowed 2e-4).
"""
from typing import NamedTuple

import numpy as np

__all__ = ["Tolerance", "tolerance", "calibrated", "FD_STEP", "LAYER_FD_STEP", "REFERENCE_RTOL",
           "ROUNDING_MARGIN", "ROUNDING_CAP"]


class Tolerance(NamedTuple):
    rtol: float
    atol_rel: float
    floor: float


# impl vs the JAX float64 oracle. float64: two correct float64 computations of the
# same sums differ by rounding, ~1e-15 of the terms; cancellation inside a sum of
# T*B terms can make that ~1e-12 of the array's largest element. 1e-8 leaves a
# 10^4 margin over that and is still 50x below the 1e-6 errors that must fail.
# float32: rounding of ~1e-7 per operation accumulated over T*B-term sums and T
# recurrent steps gives up to ~1e-5 of the array's scale; 1e-4 leaves 10x margin
# and stays 5x below the 1e-3 errors that must fail.
_JAX = {
    np.dtype(np.float64): Tolerance(rtol=1e-8, atol_rel=1e-8, floor=1e-12),
    np.dtype(np.float32): Tolerance(rtol=1e-4, atol_rel=1e-4, floor=1e-6),
}

# impl vs central finite differences (computed in float64 whatever the impl's dtype).
# float64: the engine propagates each copy's difference from the unperturbed model
# and forms activation changes by addition formulas (oracle_fd.py), so its rounding
# is relative to the perturbation (~1e-16 of the change), and the truncation error of
# the central difference, ~FD_STEP^2 * |f'''/f'|, is as small; measured: 1e-16 to
# 1e-15 of each array's scale at unit-scale states, 1e-13 where an identity or relu
# f2 lets the state grow to ~100 (4.7e-7 with the earlier step 6e-6). Before the
# difference form, rounding cost ~eps/|change|: 3e-7 of a small gradient (B=1, O=1,
# saturated tanh), which failed correct code at 2e-7.
# 2e-7 keeps that whole range far inside, and still fails a 1e-6 error (allowed 4e-7).
_FD = {
    np.dtype(np.float64): Tolerance(rtol=2e-7, atol_rel=2e-7, floor=1e-12),
    np.dtype(np.float32): Tolerance(rtol=1e-4, atol_rel=1e-4, floor=1e-6),
}

# The reference against the JAX oracle in float64 (tests only): both are exact
# float64 evaluations of the same sums in different orders; measured agreement is
# ~1e-15 of each array's largest element, and the project promises 1e-10.
REFERENCE_RTOL = 1e-10

# The finite-difference engines (the RNN's and each cell's) against the JAX oracle, in
# float64 at unit-scale states (tests and the benchmark only): the difference form keeps
# their error at the truncation of the central difference, measured 1e-16 to 2e-15 of
# each array's largest element; a plain central difference (two O(1) losses subtracted)
# is ~1e-8 off and fails this by five orders of magnitude.
DIFFERENCE_FORM_ACCURACY = 1e-13

# The loss and h_last are compared against JAX with the JAX table (a scalar loss
# uses its own magnitude as the scale).
_TABLES = {"jax": _JAX, "fd": _FD}

# Central-difference step: FD_STEP / max(1, m), where m is the largest value the
# element multiplies (|x_i| for a row of W1, |h_r| for a row of U or W3, ...; 1 for a
# bias) times the window's largest pre-activation when above 1, so that perturbations
# stay small even when a state has grown to 1e9 (oracle_fd._steps, _reach). The engine never adds the
# perturbation to an O(1) value before differencing, so the usual balance of
# truncation (~h^2) against rounding (~eps/h) at h ~ 6e-6 does not apply:
# truncation alone is left, and a small step wins. Measured worst error vs JAX over
# six models, one with states grown to 80 (relu, identity, tanh), with the step
# then scaled by max(1, |v|) instead of 1 / max(1, m):
# 6e-6 -> 4.7e-7, 1e-6 -> 1.3e-8, 1e-7 -> 1.3e-10, 1e-8 -> 1.3e-12, 1e-9 -> 5e-14;
# with 1 / max(1, m), 1e-8 -> 7.7e-14 there and <= 1.5e-15 elsewhere.
# 1e-8 keeps perturbations of O(1) pre-activations 1e8 times above float64's
# resolution, so the relu kink tests and the loss-change sums still see them clearly.
FD_STEP = 1e-8


def tolerance(oracle, dtype):
    """The Tolerance for comparing an implementation of ``dtype`` with ``oracle``."""
    return _TABLES[oracle][np.dtype(dtype)]


# A correct implementation cannot come closer to the float64 oracles than rounding in
# its own dtype allows. Where that is coarser than the tables above -- float32 where
# tanh saturates: f' = 1 - t^2 from a rounded t near 1 carries eps32 / (1 - t^2)
# of itself (seen: the float32 reference's dU 2.1e-4 of its scale from JAX, B=1,
# identity RNN, f3 = tanh) -- an array's atol_rel becomes ROUNDING_MARGIN times the
# reference's own error in that dtype on the same inputs (check.py measures it every
# window). 8: two correct implementations that sum in other orders or form f' another
# way differ in rounding by a few times, not by 8. In float64 the reference's error is
# ~1e-15, so this never rises above the table; in float32 it does only in such
# ill-conditioned windows, and the JSON records the atol_rel each result used.
# The rounding is measured as the reference in the implementation's dtype against the
# reference in float64 on the same inputs (calibration.own_rounding), never against an
# oracle, so an error in the reference cancels rather than widening the allowance; and
# float64 is never calibrated at all.
ROUNDING_MARGIN = 8.0
# No allowance is raised above this atol_rel: with float32's rtol 1e-4, an array off by a
# relative 1e-3 is then still off by more than twice what is allowed at its largest
# element (1e-3 vs 6e-4), so the promised must-fail level holds whatever the calibration
# measured. An array that would need more is reported as not judged, and fails the check.
ROUNDING_CAP = 5e-4


def calibrated(tol, own_error):
    """``tol`` with atol_rel raised to ROUNDING_MARGIN * own_error where that is larger
    (own_error: the reference's relative error in the implementation's dtype, or None)."""
    if own_error is None or not np.isfinite(own_error):
        return tol
    return tol._replace(atol_rel=max(tol.atol_rel, ROUNDING_MARGIN * own_error))


# Layer checks (layer_oracles.fd_vjp): a plain central difference of phi = sum(g * layer)
# in float64, step LAYER_FD_STEP * max(1, |v|). Its error is truncation ~s^2 |phi'''|
# (~1e-10 at s = 1e-5 for tanh-sized third derivatives) plus rounding ~eps |phi| / s
# (phi ~ 10 at layer sizes: ~2e-10); s = 1e-5 is near the balance (eps |phi|)^(1/3),
# and the sum, ~4e-10, stays 500x below the fd table's 2e-7 of an O(1) gradient.
# It is judged with the same tables as the whole window (tolerance("fd", dtype)).
LAYER_FD_STEP = 1e-5
