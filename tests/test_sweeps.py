"""Property sweeps over configurations (gradcheck.strategies): the reference passes the
check everywhere, truncated BPTT is what the article says it is, and a small relative
error in any one array is always caught.

GRADCHECK_PROFILE picks the hypothesis profile (conftest.py): ``ci`` runs 300
derandomized examples per property.
"""
import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st

import gradcheck
import reference
from gradcheck.judge import NOT_JUDGED
from gradcheck.config import make_config
from gradcheck.data import make_data
from gradcheck.oracle_jax import jax_truncated, jax_window
from gradcheck.strategies import configs
from gradcheck.tolerances import REFERENCE_RTOL, tolerance

# The relative error that must always be caught, per dtype (README, "What is checked").
MUST_CATCH = {"float64": 1e-6, "float32": 1e-3}


# The data are unit-scale (data.py: weights ~ 1/sqrt(fan_in), x, y, h0 ~ 1), so every
# intermediate is O(1) and two correct float64 evaluations differ by ~1e-16 absolute
# per operation. An array can still be tiny: a saturated f3 = tanh has f3' = 1 - tanh^2
# ~ 1e-6, so the gradient is ~1e-5 with the absolute rounding of an O(1) one (seen:
# window 3's dU = -2.1e-5 off by 6.4e-15, B = I = H = R = O = 1, seed 222; its dW1 =
# -1.7e-7 off by 4e-17). So arrays are judged at REFERENCE_RTOL of their largest
# element, but at no finer a scale than UNIT_SCALE: an absolute 1e-13.
UNIT_SCALE = 1e-3


def _pin(interval, seq_len, sizes, loss, activations, reduction="mean", dtype="float64", seed=0):
    """One configuration for @example: sizes are (B, I, H, R, O), activations "f1,f2,f3"."""
    names = ("batch", "input_size", "hidden_size", "state_size", "output_size")
    return dict(interval=interval, seq_len=seq_len, **dict(zip(names, sizes)), loss=loss,
                activations=tuple(activations.split(",")), reduction=reduction, dtype=dtype,
                seed=seed)


def _assert_close(got, want, what):
    """Agreement to REFERENCE_RTOL of the array's largest element (or of UNIT_SCALE)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    scale = max(np.max(np.abs(want), initial=0.0), UNIT_SCALE)
    err = np.max(np.abs(got - want), initial=0.0)
    assert err <= REFERENCE_RTOL * scale, f"{what}: error {err:.3g}, scale {scale:.3g}"


@given(configs())
@example(_pin(64, 64, (1, 1, 1, 1, 1), "l2", "relu,relu,relu"))
@example(_pin(5, 11, (1, 1, 1, 1, 2), "ce", "relu,relu,identity", reduction="sum",
              dtype="float32", seed=3))
@example(_pin(1, 3, (16, 16, 16, 16, 16), "bce", "sigmoid,tanh,identity", dtype="float32", seed=1))
# Found by this sweep, each a false alarm or a crash before the FD engine's difference form:
# dx of a small gradient lost to rounding (B=1, O=1, saturated tanh);
@example(_pin(15, 31, (1, 8, 3, 1, 1), "l2", "sigmoid,tanh,tanh", seed=1))
# an identity RNN whose state grows to 5e6 (tanh changes of 0/0, a NaN in the table);
@example(_pin(15, 38, (1, 11, 3, 1, 1), "l2", "tanh,identity,sigmoid"))
# float32 where tanh saturates: the reference's own dU 2.1e-4 from JAX, window 2's
# gradients pure rounding (not judged: the allowance needed is above ROUNDING_CAP).
@example(_pin(8, 9, (1, 12, 1, 3, 2), "l2", "identity,identity,tanh", dtype="float32", seed=1))
# W3's step times a state of 80: truncation error 8e-7 with the old 6e-6 step.
@example(_pin(3, 8, (1, 11, 8, 3, 6), "l2", "relu,identity,tanh", seed=1))
# an identity RNN's pre-activations at 1e8: a b2 step of 1e-8 grew with them to move ce
# logits by ~1 (steps now shrink by the window's growth too);
@example(_pin(41, 83, (1, 1, 13, 1, 7), "ce", "tanh,identity,identity"))
# an identity RNN's state at 1e9: a W3 step of 1e-8 moved ce logits by ~10 across the
# saturated softmax's switch, and an h0 step of 1e-8 |h0| by as much (steps now 1e-8 / m).
@example(_pin(43, 87, (1, 1, 1, 1, 2), "ce", "tanh,identity,identity", seed=1))
@example(_pin(46, 93, (1, 1, 1, 1, 2), "ce", "tanh,identity,identity", seed=1))
def test_reference_passes_the_check_on_every_configuration(options):
    """No false alarm: the reference passes, or the check declines to judge arrays whose
    rounding in float32 alone is beyond what can be allowed (never a verdict of a bug)."""
    report = gradcheck.check(**options)
    assert report.passed or all(r.message.startswith(NOT_JUDGED) for r in report.failures), \
        report.format_table()


@given(configs(dtypes=("float64",)))
@example(_pin(3, 8, (1, 1, 1, 1, 1), "l2", "tanh,identity,tanh", seed=222))  # saturated f3
def test_each_window_is_jax_with_the_state_derivative_stopped_at_its_start(options):
    """Truncated BPTT: the reference's windows, run by run_sequence (the state's value
    carried, its derivative not), against ONE JAX pass over the whole sequence that
    stops the derivative at every window start and counts one window's loss.

    JAX takes the reference's carried values at the window starts: two correct
    forwards drift apart by rounding, and an expanding recurrence (f2 = identity,
    |eig U| > 1) amplifies the drift over many windows (seen: dU of 1e-10 differing by
    1e-3 relative after 46 steps); that is conditioning, not the property."""
    config = make_config(**options)
    data = make_data(config)
    opts = config.model_options
    windows = reference.run_sequence(data.params, data.x, data.y, data.h0,
                                     interval=config.interval, **opts)
    assert [w.start for w in windows] == [start for start, _ in config.windows]
    carried = [window.h0 for window in windows[1:]]
    for w, (window, (start, stop)) in enumerate(zip(windows, config.windows), start=1):
        want = jax_truncated(data.params, data.x, data.y, data.h0, interval=config.interval,
                             window=w, carried=carried, **opts)
        if w > 1:
            np.testing.assert_array_equal(window.h0, windows[w - 2].h_last)
        _assert_close(window.loss, want.loss, f"window {w} loss")
        _assert_close(window.h_last, want.states[stop], f"window {w} h_last")
        for name in reference.PARAM_NAMES:
            _assert_close(window.grads[name], want.grads[name], f"window {w} {name}")
        _assert_close(window.grads["x"], want.grads["x"][start:stop], f"window {w} x")
        # nothing outside the window reaches its loss: the derivative was stopped
        assert not want.grads["x"][:start].any() and not want.grads["x"][stop:].any()
        if w == 1:
            _assert_close(window.grads["h0"], want.grads["h0"], "window 1 h0")
        else:
            assert not want.grads["h0"].any()


@given(configs(dtypes=("float64",), max_windows=1))
def test_an_interval_at_least_the_sequence_is_full_bptt(options):
    config = make_config(**options)
    data = make_data(config)
    opts = config.model_options
    (window,) = reference.run_sequence(data.params, data.x, data.y, data.h0,
                                       interval=config.seq_len + config.interval, **opts)
    whole = reference.loss_and_grads(data.params, data.x, data.y, data.h0, **opts)
    full = jax_window(data.params, data.x, data.y, data.h0, **opts)     # no cut anywhere
    assert window.loss == whole[0]
    _assert_close(window.loss, full.loss, "loss")
    for name in reference.GRAD_NAMES:
        np.testing.assert_array_equal(window.grads[name], whole[1][name])
        _assert_close(window.grads[name], full.grads[name], name)


def test_truncation_is_visible_so_the_window_property_can_fail():
    """With two windows, full BPTT and truncated BPTT give different weight gradients:
    a reference that forgot to truncate would fail the property above."""
    config = make_config(interval=3, seq_len=6, batch=4, input_size=3, hidden_size=4,
                         state_size=3, output_size=5)
    data = make_data(config)
    opts = config.model_options
    truncated = jax_truncated(data.params, data.x, data.y, data.h0, interval=3, window=2, **opts)
    untruncated = jax_truncated(data.params, data.x, data.y, data.h0, interval=6, **opts)
    second = jax_window(data.params, data.x[3:], data.y[3:], truncated.states[3], **opts)
    for name in reference.PARAM_NAMES:
        np.testing.assert_allclose(truncated.grads[name], second.grads[name], rtol=1e-12,
                                   atol=1e-14)
    assert np.max(np.abs(untruncated.grads["U"] - truncated.grads["U"])) > 1e-3


def _scaled(name, factor, seen):
    """The reference with one gradient array multiplied by ``factor``."""
    def loss_and_grads(params, x, y, h0, **options):
        value, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
        seen.append(float(np.max(np.abs(grads[name]))))
        grads = dict(grads, **{name: grads[name] * grads[name].dtype.type(factor)})
        return value, grads, h_last
    return loss_and_grads


@given(configs(), st.sampled_from(reference.GRAD_NAMES), st.sampled_from([1.0, -1.0]))
@example(_pin(3, 3, (128, 10, 20, 5, 100), "l2", "tanh,tanh,identity"), "b3", -1.0)
@example(_pin(23, 47, (1, 1, 2, 1, 2), "ce", "tanh,relu,identity"), "W1", 1.0)  # log1p(-1)
@example(_pin(1, 1, (1, 1, 1, 1, 2), "ce", "tanh,tanh,identity", dtype="float32", seed=7),
         "x", 1.0)                                          # dx ~ 2e-4: below the floor's reach
def test_a_small_relative_error_in_any_one_array_is_caught(options, name, sign):
    seen = []
    must = MUST_CATCH[options["dtype"]]
    report = gradcheck.check(_scaled(name, 1.0 + sign * must, seen), **options)
    # A window needs the array to be large enough there that `must` of it is above the
    # absolute floor (tolerances.py: 1e-12 in float64, 1e-6 in float32; dead relu units
    # have no scale at all, their zero test is in test_compare.py), and judged at the
    # table's tolerance: where rounding in the implementation's dtype alone moves the
    # reference by more (tolerances.calibrated, reported as "rounding"), no
    # implementation in that dtype can be judged to `must`.
    floor = tolerance("jax", options["dtype"]).floor
    nonzero = {w for w, m in enumerate(seen[:len(report.windows)], start=1)
               if must * m >= 4 * floor}
    judged = {r.window for r in report.results if r.name == name and r.oracle == "jax"
              and r.atol_rel <= must / 4 and not r.message.startswith(NOT_JUDGED)}
    assume(nonzero & judged)
    failing = {(r.name, r.oracle) for r in report.results
               if not r.passed and not r.message.startswith(NOT_JUDGED)}
    assert failing, report.format_table()
    assert {n for n, _ in failing} == {name}
    assert (name, "jax") in failing
