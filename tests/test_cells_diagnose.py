"""When no mistake of a cell's zoo reproduces the numbers, the diagnosis still speaks of
the cell: the pattern of failing arrays and steps is read with the names of the cell's
declaration (its arrays, its states, its recurrent weight), never the RNN's (U, f2)."""
import re

import numpy as np
import pytest

import gradcheck
from gradcheck import kinds, model
from gradcheck._reference import cell_module

FORMS = [("lstm", {}), ("gru", {}), ("gru", {"reset_after": True})]
FORM_IDS = ["lstm", "gru", "gru-reset_after"]
SIZES = dict(interval=3, seq_len=6, batch=4, input_size=3, hidden_size=4, state_size=3,
             output_size=2)
RNN_WORDS = re.compile(r"\b(RNN|f2|U|dU|W2|b2)\b")      # the RNN's names, as whole words


def _reference(cell):
    return cell_module(model.cell(cell).sides["reference"]).loss_and_grads


def _changed(cell, change, on):
    """The cell's reference with its gradients passed through ``change(grads, upstream)``
    (upstream: the names the state's derivatives reach, from the declaration)."""
    m = model.describe(cell, **on)
    upstream = tuple(n for n in m.grad_names if n not in m.layers[-1].arrays)

    def loss_and_grads(*args, **options):
        value, grads, *states = _reference(cell)(*args, **options)
        return (value, change(dict(grads), upstream), *states)
    return loss_and_grads


def _no_carry(cell):
    """Every state derivative dropped at once (no zoo bug is two mistakes): the sum of
    one-step windows, each from the true states."""
    def loss_and_grads(params, x, y, *states, **options):
        total, grads, dx = 0.0, {}, np.empty_like(x)
        for t in range(x.shape[0]):
            value, g, *states = _reference(cell)(params, x[t:t + 1], y[t:t + 1], *states,
                                                 **options)
            total += value
            dx[t] = g["x"][0]
            # the states' gradients are step 1's: nothing from later steps reaches them
            grads = dict(grads, **{n: grads[n] + g[n] for n in params}) if grads else dict(g)
        return (total, dict(grads, x=dx), *states)
    return loss_and_grads


CASES = {
    "recurrent-scaled": (lambda g, up: dict(g, Wh=g["Wh"] * 1.5), "scale_one", "dWh"),
    "recurrent-zeros": (lambda g, up: dict(g, Wh=np.zeros_like(g["Wh"])), "zeros", "dWh"),
    "upstream-off": (lambda g, up: {n: v * 1.01 if n in up else v for n, v in g.items()},
                     "cell_backward", "cell is wrong"),
    "first-layer-off": (lambda g, up: {n: v * 1.1 if n in ("W1", "b1", "x") else v
                                       for n, v in g.items()}, "f1_derivative", "first dense"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("cell", "on"), FORMS, ids=FORM_IDS)
def test_a_mistake_outside_the_zoo_is_diagnosed_in_the_cells_words(cell, on, case):
    change, kind, words = CASES[case]
    report = gradcheck.check(_changed(cell, change, on), cell=cell, **on, **SIZES)
    assert report.finding.kind == kind, report.diagnosis
    assert words in report.diagnosis
    assert not RNN_WORDS.search(report.diagnosis), report.diagnosis
    if kind in ("cell_backward", "f1_derivative"):
        label = model.cell(cell).label
        assert label in report.diagnosis


@pytest.mark.parametrize(("cell", "on"), [FORMS[0], FORMS[2]], ids=[FORM_IDS[0], FORM_IDS[2]])
def test_state_derivatives_lost_name_the_cells_states(cell, on):
    """Two of the LSTM's zoo bugs at once, and the GRU's dh_next in the reset-after form
    (whose zoo has that form's own mistakes): no zoo bug reproduces them."""
    report = gradcheck.check(_no_carry(cell), cell=cell, **on, **SIZES)
    assert report.finding.kind == "state_derivative_unclear", report.diagnosis
    nexts = {"lstm": "dh_next or dc_next", "gru": "dh_next?"}[cell]
    assert nexts in report.diagnosis and "zoo" in report.diagnosis
    assert not RNN_WORDS.search(report.diagnosis), report.diagnosis
    arrays = set(report.finding.evidence["arrays"])
    assert {"Wx", "Wh", "b", "h0"} <= arrays and not arrays & {"W3", "b3"}


def test_the_cell_backward_kind_is_registered():
    assert kinds.kind_of("cell_backward").group == "conceptual"


def test_the_rnn_keeps_its_own_words():
    """The same pattern in the RNN still speaks of f2 (its activation can be chosen)."""
    from gradcheck.model import UPSTREAM_OF_STATE
    import reference

    def loss_and_grads(*args, **options):
        value, grads, h_last = reference.loss_and_grads(*args, **options)
        return value, {n: v * 1.01 if n in UPSTREAM_OF_STATE else v
                       for n, v in grads.items()}, h_last
    report = gradcheck.check(loss_and_grads, **SIZES)
    assert report.finding.kind == "f2_derivative", report.diagnosis
    assert "RNN activation f2" in report.diagnosis


def test_a_lost_state_derivative_that_is_a_zoo_bug_is_named_by_the_zoo():
    report = gradcheck.check(_no_carry("gru"), cell="gru", **SIZES)
    assert report.finding.kind == "gru_no_dh_next", report.diagnosis


def _lstm_in_float32(params, x, y, h0, c0, **options):
    """The LSTM reference computing in float32 inside a float64 check."""
    f32 = {n: p.astype(np.float32) for n, p in params.items()}
    y = y if y.dtype.kind in "iu" else y.astype(np.float32)
    value, grads, h_last, c_last = _reference("lstm")(
        f32, x.astype(np.float32), y, h0.astype(np.float32), c0.astype(np.float32), **options)
    return (float(value), {n: g.astype(np.float64) for n, g in grads.items()},
            h_last.astype(np.float64), c_last.astype(np.float64))


def test_a_cell_computing_in_float32_is_named_as_such():
    """Every array, c_last included, is at float32 level: the float32 diagnosis, each
    gradient named as one (dWx), each returned state by its name."""
    report = gradcheck.check(_lstm_in_float32, cell="lstm", **SIZES)
    assert report.finding.kind == "float32", report.diagnosis
    assert "dWx" in report.diagnosis and "c_last" in report.diagnosis
    assert "dc_last" not in report.diagnosis


def test_a_wrong_returned_cell_state_alone_is_named():
    def loss_and_grads(*args, **options):
        value, grads, h_last, c_last = _reference("lstm")(*args, **options)
        return value, grads, h_last, c_last * 1.5
    report = gradcheck.check(loss_and_grads, cell="lstm", **SIZES)
    assert report.finding.kind == "h_last", report.diagnosis
    assert report.diagnosis.startswith("c_last is wrong") and "c_T" in report.diagnosis
