"""Tests of gradcheck.compare with the tolerances the checker really uses.

The perturbations are the sensitivities promised in gradcheck/tolerances.py: a
relative 1e-6 must fail in float64, 1e-3 in float32, and 1e-9 (rounding-sized, far
below any real bug) must pass in float64.
"""
import numpy as np
import pytest

from gradcheck.compare import compare
from gradcheck.tolerances import tolerance

ORACLES = ("jax", "fd")
MUST_FAIL = {"float64": 1e-6, "float32": 1e-3}    # relative errors the checker must catch
ROUNDING_SIZED = 1e-9                              # a relative error float64 must accept


@pytest.fixture
def oracle():
    """A [3, 4] array with values of mixed sign and size (no zeros)."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 4)) * np.logspace(-2, 1, 4)


def test_identical_arrays_pass_with_ratio_zero(oracle):
    c = compare(oracle.copy(), oracle, tolerance("jax", "float64"))
    assert c.passed
    assert (c.ratio, c.max_abs_err, c.max_rel_err) == (0.0, 0.0, 0.0)
    assert (c.checked, c.excluded, c.nonfinite) == (oracle.size, 0, 0)
    assert not c.bad.any()


@pytest.mark.parametrize("oracle_name", ORACLES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relative_error_a_bug_makes_fails(oracle, oracle_name, dtype):
    c = compare(oracle * (1 + MUST_FAIL[dtype]), oracle, tolerance(oracle_name, dtype))
    assert not c.passed
    assert c.ratio > 1.0
    assert c.bad.any()


@pytest.mark.parametrize("oracle_name", ORACLES)
def test_rounding_sized_error_passes_in_float64(oracle, oracle_name):
    c = compare(oracle * (1 + ROUNDING_SIZED), oracle, tolerance(oracle_name, "float64"))
    assert c.passed
    assert 0.0 < c.ratio < 1.0


@pytest.mark.parametrize("oracle_name", ORACLES)
def test_float64_sized_bug_is_within_float32_rounding(oracle, oracle_name):
    """The same 1e-6 that fails a float64 implementation is rounding for a float32 one."""
    c = compare(oracle * (1 + MUST_FAIL["float64"]), oracle, tolerance(oracle_name, "float32"))
    assert c.passed


def _allowed(oracle, tol):
    """The documented criterion of tolerances.py, element by element."""
    return tol.atol_rel * np.max(np.abs(oracle)) + tol.rtol * np.abs(oracle) + tol.floor


@pytest.mark.parametrize("oracle_name", ORACLES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("fraction", "passes"), [(0.5, True), (0.99, True), (1.01, False),
                                                  (2.0, False)])
def test_the_criterion_is_the_documented_one(oracle, oracle_name, dtype, fraction, passes):
    tol = tolerance(oracle_name, dtype)
    c = compare(oracle + fraction * _allowed(oracle, tol), oracle, tol)
    assert c.passed is passes
    assert c.ratio == pytest.approx(fraction, rel=1e-6)


def test_nan_and_inf_fail_and_are_counted(oracle):
    impl = oracle.copy()
    impl[0, 3] = np.inf
    impl[1, 1] = np.nan
    impl[2, 0] = -np.inf
    c = compare(impl, oracle, tolerance("jax", "float64"))
    assert not c.passed
    assert c.nonfinite == 3
    assert c.worst == (0, 3)                            # the first non-finite element
    assert (c.max_abs_err, c.ratio, c.impl_value) == (None, None, None)
    assert c.oracle_value == oracle[0, 3]
    assert c.bad.sum() == 3


def test_excluded_elements_are_not_judged_but_counted(oracle):
    impl = oracle.copy()
    impl[1, 2] += 1e6
    impl[2, 3] = np.nan
    exclude = np.zeros(oracle.shape, bool)
    exclude[1, 2] = exclude[2, 3] = True
    c = compare(impl, oracle, tolerance("fd", "float64"), exclude)
    assert c.passed
    assert (c.checked, c.excluded, c.nonfinite) == (oracle.size - 2, 2, 0)
    assert c.max_abs_err == 0.0


def test_excluding_does_not_hide_other_errors(oracle):
    impl = oracle.copy()
    impl[0, 0] += MUST_FAIL["float64"] * np.max(np.abs(oracle))
    exclude = np.zeros(oracle.shape, bool)
    exclude[1, 2] = True
    c = compare(impl, oracle, tolerance("fd", "float64"), exclude)
    assert not c.passed
    assert c.worst == (0, 0)


def test_everything_excluded_passes_with_nothing_checked(oracle):
    c = compare(oracle + 1.0, oracle, tolerance("fd", "float64"), np.ones(oracle.shape, bool))
    assert c.passed
    assert (c.checked, c.excluded) == (0, oracle.size)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_all_zero_oracle_and_zero_impl_pass(dtype):
    zeros = np.zeros((2, 3))
    c = compare(zeros.copy(), zeros, tolerance("jax", dtype))
    assert c.passed
    assert c.ratio == 0.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_all_zero_oracle_rejects_a_nonzero_impl(dtype):
    """The floor only forgives values at the floor's own size."""
    zeros = np.zeros((2, 3))
    tol = tolerance("jax", dtype)
    impl = zeros.copy()
    impl[1, 2] = 2 * tol.floor
    c = compare(impl, zeros, tol)
    assert not c.passed
    assert c.worst == (1, 2)


@pytest.mark.parametrize("index", [(0, 0), (1, 2), (2, 3)], ids=str)
def test_worst_index_points_at_the_perturbed_element(oracle, index):
    impl = oracle.copy()
    impl[index] += 10 * MUST_FAIL["float64"] * np.max(np.abs(oracle))
    c = compare(impl, oracle, tolerance("jax", "float64"))
    assert not c.passed
    assert c.worst == index
    assert (c.impl_value, c.oracle_value) == (impl[index], oracle[index])
    assert np.argwhere(c.bad).tolist() == [list(index)]


def test_scalars_compare_like_arrays():
    """The loss is a scalar: its own magnitude is its scale."""
    tol = tolerance("jax", "float64")
    assert compare(2.5, 2.5, tol).passed
    c = compare(2.5 * (1 + MUST_FAIL["float64"]), 2.5, tol)
    assert not c.passed
    assert c.worst == ()


def test_explicit_scale_judges_a_slice_at_the_whole_arrays_scale(oracle):
    """A small slice of a large array is judged against the large array's scale."""
    tol = tolerance("jax", "float64")
    small = oracle[:, :1]                                 # the smallest column
    impl = small + 0.5 * tol.atol_rel * np.max(np.abs(oracle))
    assert not compare(impl, small, tol).passed
    assert compare(impl, small, tol, scale=float(np.max(np.abs(oracle)))).passed


def test_a_non_finite_oracle_fails_with_a_message_not_a_crash(oracle):
    """An oracle that overflows cannot judge: the result fails and says why."""
    from gradcheck.judge import result_of as _result
    tol = tolerance("fd", "float64")
    broken = oracle.copy()
    broken[1, 2] = np.inf
    c = compare(oracle, broken, tol)
    assert not c.passed
    r = _result("U", "fd", 1, c, tol)
    assert r.message.startswith("the fd oracle is not finite at [")
    assert "cannot be judged" in r.message


# ------------------------------------------ tolerances raised to the dtype's own rounding

SATURATED_F32 = dict(interval=8, seq_len=9, batch=1, input_size=12, hidden_size=1,
                     state_size=3, output_size=2, activations="identity,identity,tanh",
                     dtype="float32", seed=1)


def test_calibrated_raises_atol_only_above_the_table():
    from gradcheck.tolerances import ROUNDING_MARGIN, calibrated
    tol = tolerance("jax", "float32")
    assert calibrated(tol, None) == tol
    assert calibrated(tol, tol.atol_rel / ROUNDING_MARGIN / 2) == tol
    assert calibrated(tol, 1e-3).atol_rel == ROUNDING_MARGIN * 1e-3
    assert calibrated(tol, float("nan")) == tol


def test_float32_rounding_beyond_the_cap_is_not_judged_and_does_not_pass():
    """A saturated tanh in float32: the reference in float32 is 2.2e-4 (window 1) to 0.74
    (window 2) from itself in float64; allowing 8x that would let a 1e-3 error pass, so
    those arrays are not judged, said so, and the check does not pass."""
    import gradcheck
    from gradcheck.judge import NOT_JUDGED
    report = gradcheck.check(**SATURATED_F32)
    assert not report.passed
    assert report.failures and all(r.message.startswith(NOT_JUDGED) and r.rounding > 0
                                   for r in report.failures)
    table = report.format_table()
    assert "rounding: in window 1 the reference itself, in float32, is up to" in table
    assert "beyond it they are not judged" in table
    assert report.diagnosis.startswith("Nothing disagrees, but")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_well_conditioned_checks_keep_the_table_tolerances(dtype):
    import gradcheck
    report = gradcheck.check(interval=3, seq_len=5, batch=8, dtype=dtype)
    assert all(r.rounding is None for r in report.results)
    assert {r.atol_rel for r in report.results} == \
        {tolerance("jax", dtype).atol_rel, tolerance("fd", dtype).atol_rel}


@pytest.mark.parametrize("factor", [1.05, 0.95])
def test_raised_tolerances_still_fail_a_wrong_gradient(factor):
    """Calibration allows the dtype's own rounding, not bugs: in the same saturated float32
    windows, dU off by 5% (25x the reference's own error) still fails, on U alone."""
    import gradcheck
    import reference

    def wrong_dU(params, x, y, h0, **options):
        value, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
        return value, dict(grads, U=grads["U"] * np.float32(factor)), h_last

    report = gradcheck.check(wrong_dU, **SATURATED_F32)
    assert not report.passed
    assert "U" in {r.name for r in report.failures}


def test_raised_tolerances_still_reject_a_bptt_bug():
    import gradcheck
    from gradcheck import zoo
    report = gradcheck.check(zoo.BUGS["no_dh_next"].make(), **SATURATED_F32)
    assert not report.passed
    assert "U" in {r.name for r in report.results if not r.passed}
