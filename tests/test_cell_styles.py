"""Correct cells written in three styles (tests/impls/cells): student loops, whole-window
matrix operations (vectorized: one matmul for every step's gates, einsum over time in the
backward) and per-step objects (a cell object per step) pass the check over hypothesis
sweeps of shapes, intervals, losses, activations, reductions, dtypes and the cells'
options. A sweep that cannot fail proves nothing: each style with one gradient
off by the relative error the check must catch fails."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck.judge import NOT_JUDGED
from gradcheck.model import describe
from gradcheck.strategies import configs
from tests.impls.cells import (gru_classes, gru_loop, gru_vectorized, lstm_classes, lstm_loop,
                               lstm_vectorized)

# (cell, style): the implementation.
STYLES = {
    ("lstm", "loop"): lstm_loop.loss_and_grads,
    ("lstm", "vectorized"): lstm_vectorized.loss_and_grads,
    ("lstm", "classes"): lstm_classes.loss_and_grads,
    ("gru", "loop"): gru_loop.loss_and_grads,
    ("gru", "vectorized"): gru_vectorized.loss_and_grads,
    ("gru", "classes"): gru_classes.loss_and_grads,
}
IDS = [f"{cell}-{style}" for cell, style in STYLES]

# The cells' JAX oracles compile once per shape: few examples, whatever the hypothesis
# profile, keep the sweep within CI's time; every style of a cell is checked on each
# drawn configuration, so one compile serves the three.
STYLE_SWEEP_EXAMPLES = 8
# The relative error in one gradient that a check must catch, per dtype (README).
MUST_CATCH = {"float64": 1e-6, "float32": 1e-3}


def _judged_ok(report):
    """Passed, or declined to judge arrays whose float32 rounding alone is beyond what
    can be allowed (never a verdict of a bug)."""
    return report.passed or all(r.message.startswith(NOT_JUDGED) for r in report.failures)


@pytest.mark.parametrize("cell", ("lstm", "gru"))
@settings(deadline=None, max_examples=STYLE_SWEEP_EXAMPLES, derandomize=True)
@given(data=st.data())
def test_a_correct_cell_in_every_style_passes_over_a_sweep(cell, data):
    options = data.draw(configs(max_size=5, max_interval=4, cells=(cell,)))
    for (c, style), impl in STYLES.items():
        if c != cell:
            continue
        report = gradcheck.check(impl, **options)
        assert _judged_ok(report), f"{cell} {style}:\n{report.format_table()}"


def _off_by(impl, name, factor):
    def loss_and_grads(*args, **options):
        value, grads, *states = impl(*args, **options)
        return (value, dict(grads, **{name: grads[name] * grads[name].dtype.type(factor)}),
                *states)
    return loss_and_grads


@pytest.mark.parametrize(("cell", "style"), STYLES, ids=IDS)
@pytest.mark.parametrize("dtype", ("float64", "float32"))
def test_each_style_off_by_a_small_relative_error_fails(cell, style, dtype):
    impl = STYLES[cell, style]
    name = "Wh"                                          # the recurrent weight, every cell has it
    assert name in describe(cell).grad_names
    report = gradcheck.check(_off_by(impl, name, 1.0 + MUST_CATCH[dtype]), cell=cell,
                             interval=2, seq_len=3, batch=4, input_size=3, hidden_size=4,
                             state_size=3, output_size=2, dtype=dtype)
    assert not report.passed
    assert {r.name for r in report.failures} == {name}, report.format_table()
