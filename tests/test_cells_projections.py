"""--mode projections for the cells: the cells' finite differences along random directions
(gradcheck/cells/fd_cells.fd_directional) are the projections of the element-wise ones,
the reference of every cell passes, a zoo bug is still caught by the projections alone,
and a large cell check chooses them as the RNN's does."""
import numpy as np
import pytest

import gradcheck
from gradcheck import model
from gradcheck.check import FULL_MODE_MAX_ELEMENTS, choose_mode
from gradcheck.config import make_config
from gradcheck.tolerances import DIFFERENCE_FORM_ACCURACY, FD_STEP
from tests.helpers import small_data

CELLS = [n for n in model.cell_names() if n != model.DEFAULT_CELL]
# Every cell with its options off, then with each of them on (the GRU's reset_after).
CASES = [(c, ()) for c in CELLS] + [(c, (o.name,)) for c in CELLS for o in model.cell(c).options]
CASE_IDS = ["-".join((c,) + o) for c, o in CASES]
DIRECTIONS = 2
SIZES = dict(interval=4, seq_len=6, batch=5, input_size=3, hidden_size=4, state_size=3,
             output_size=6)


def _window(cell, on, **options):
    config, data = small_data(cell=cell, cell_options=on, interval=3, **options)
    states = tuple(data.states.values())
    kw = dict(config.model_options, **config.model.options)
    return config, data, states, kw


@pytest.mark.parametrize("loss", ["l2", "ce"])
@pytest.mark.parametrize(("cell", "on"), CASES, ids=CASE_IDS)
def test_directional_differences_are_the_projected_elementwise_ones(cell, on, loss):
    config, data, states, kw = _window(cell, on, loss=loss)
    engine = model.side(cell, "fd")
    full = engine.fd_window(data.params, data.x, data.y, data.h0, *states, **kw)
    arrays = dict(data.params, x=data.x, h0=data.h0, **data.states)
    rng = np.random.default_rng(7)
    names = config.model.grad_names
    dirs = {n: rng.standard_normal((DIRECTIONS,) + np.shape(arrays[n])) for n in names}
    got = engine.fd_directional(data.params, data.x, data.y, data.h0, *states, dirs, **kw)
    assert set(got) == set(names)
    for n in names:
        d = dirs[n].reshape(DIRECTIONS, -1)
        want = d @ full.grads[n].ravel()
        # each is a sum of terms d_i g_i: its rounding scale is sum |d_i| max |g|
        scale = np.abs(d).sum(axis=1) * max(np.max(np.abs(full.grads[n])), 1e-300)
        assert np.all(np.abs(got[n] - want) <= DIFFERENCE_FORM_ACCURACY * scale), n


@pytest.mark.parametrize(("cell", "on"), CASES, ids=CASE_IDS)
def test_a_one_hot_recurrent_direction_takes_any_step(cell, on):
    """The pictures' V curve moves one element at other steps than the check's."""
    config, data, states, kw = _window(cell, on)
    engine = model.side(cell, "fd")
    full = engine.fd_window(data.params, data.x, data.y, data.h0, *states, names=["Wh"], **kw)
    onehot = np.zeros((1,) + data.params["Wh"].shape)
    onehot[0, 1, 2] = -2.0
    got = engine.fd_directional(data.params, data.x, data.y, data.h0, *states,
                                {"Wh": onehot}, base_step=10 * FD_STEP, **kw)["Wh"][0]
    want = -2.0 * full.grads["Wh"][1, 2]
    assert abs(got - want) <= 1e-9 * max(np.max(np.abs(full.grads["Wh"])), 1e-300)
    dense = np.ones((1,) + data.params["Wh"].shape)
    with pytest.raises(ValueError, match="FD_STEP only"):
        engine.fd_directional(data.params, data.x, data.y, data.h0, *states, {"Wh": dense},
                              base_step=10 * FD_STEP, **kw)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("cell", "on"), CASES, ids=CASE_IDS)
def test_every_cells_reference_passes_in_projections_mode(cell, on, dtype):
    report = gradcheck.check(cell=cell, **{o: True for o in on}, mode="projections",
                             dtype=dtype, loss="bce", **SIZES)
    assert report.passed, report.format_table()
    assert {r.oracle for r in report.results} == {"jax", "fd-projections"}


# One zoo bug of each form, through the isolated path.
ZOO = [("lstm", (), "no_dc_next"), ("lstm", (), "dWh_from_h_t"), ("gru", (), "z_swapped"),
       ("gru", ("reset_after",), "after_dbh_n_without_r")]


@pytest.mark.parametrize(("cell", "on", "bug"), ZOO, ids=[f"{c}-{b}" for c, _, b in ZOO])
def test_a_zoo_bug_is_caught_by_the_projections_too(cell, on, bug):
    zoo = model.side(cell, "zoo")
    report = gradcheck.check(f"{zoo.__name__}:{bug}", cell=cell, **{o: True for o in on},
                             mode="projections", **SIZES)
    assert not report.passed
    assert report.finding.kind == zoo.BUGS[bug].kind, report.diagnosis
    by_jax = {r.name for r in report.failures if r.oracle == "jax"}
    by_fd = {r.name for r in report.failures if r.oracle == "fd-projections"}
    assert by_fd and by_fd == by_jax - {"loss", "h_last", "c_last"}


def test_a_large_cell_check_chooses_projections_as_the_rnn_does():
    small = make_config(cell="lstm", interval=3)
    large = make_config(cell="lstm", interval=8, batch=1024)
    assert small.n_elements <= FULL_MODE_MAX_ELEMENTS < large.n_elements
    assert choose_mode(small)[0] == "full"
    assert choose_mode(large)[0] == "projections"
