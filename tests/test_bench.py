"""The benchmark times what it says: its JAX windows compute the reference's window."""
import numpy as np
import pytest

import reference
from gradcheck.bench import _jax_window_fns
from tests.helpers import small_data

# Two float64 computations of the same window in different orders: they differ by
# rounding only (the reference is ~1e-15 from JAX; see test_reference).
SAME_WINDOW_RTOL = 1e-10


@pytest.mark.parametrize("formulation", ["scan", "loop"])
def test_bench_jax_windows_compute_the_reference_window(formulation):
    _, data = small_data(interval=4)
    fn = _jax_window_fns()[formulation]
    (value, h_last), (dparams, dx, dh0) = fn(data)
    want_value, want, want_h = reference.loss_and_grads(data.params, data.x, data.y, data.h0)
    got = dict(dparams, x=dx, h0=dh0)
    assert abs(float(value) - want_value) <= SAME_WINDOW_RTOL * abs(want_value)
    np.testing.assert_allclose(np.asarray(h_last), want_h, rtol=SAME_WINDOW_RTOL)
    for name in reference.GRAD_NAMES:
        scale = np.max(np.abs(want[name]))
        assert np.max(np.abs(np.asarray(got[name]) - want[name])) <= SAME_WINDOW_RTOL * scale, name
