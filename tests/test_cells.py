"""The cells (--cell lstm): the model's registry, the reference and both oracles of each
cell, and a check of a cell end to end (in-process, isolated, on the command line)."""
import importlib
import threading

import numpy as np
import pytest
from hypothesis import given, settings

import gradcheck
from gradcheck import model
from gradcheck._reference import cell_module
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from gradcheck.strategies import configs
from gradcheck.tolerances import DIFFERENCE_FORM_ACCURACY, REFERENCE_RTOL
from tests.helpers import record_threads, small_data

CELLS = [n for n in model.cell_names() if n != model.DEFAULT_CELL]
# Every cell with its options off, then with each of them on (the GRU's reset_after).
CASES = [(c, ()) for c in CELLS] + [(c, (o.name,)) for c in CELLS for o in model.cell(c).options]
CASE_IDS = ["-".join((c,) + o) for c, o in CASES]
LSTM_LOOP = "tests/impls/cells/lstm_loop.py:loss_and_grads"

MODELS = {
    "l2-tanh": ("l2", ("tanh", "tanh", "identity"), "mean"),
    "l2-sigmoid-out": ("l2", ("identity", "tanh", "sigmoid"), "sum"),
    "ce-relu": ("ce", ("relu", "tanh", "identity"), "mean"),
    "bce": ("bce", ("sigmoid", "tanh", "identity"), "sum"),
}


def _cell_data(cell, name, cell_options=(), **overrides):
    loss, acts, reduction = MODELS[name]
    return small_data(cell=cell, cell_options=cell_options, loss=loss, activations=acts,
                      reduction=reduction,
                      **dict(dict(interval=3, batch=5, output_size=7), **overrides))


def _worst(got, want):
    """max |got - want| / max |want|."""
    scale = float(np.max(np.abs(want)))
    return float(np.max(np.abs(np.asarray(got) - want))) / scale


def _sides(cell, config, data):
    states = tuple(data.states.values())
    options = dict(config.model_options, **config.model.options)
    ref = cell_module(model.cell(cell).sides["reference"]).loss_and_grads(
        data.params, data.x, data.y, data.h0, *states, **config.model_options)
    jax = model.side(cell, "jax").jax_window(data.params, data.x, data.y, data.h0, *states,
                                             **options)
    fd = model.side(cell, "fd").fd_window(data.params, data.x, data.y, data.h0, *states,
                                          **options)
    return ref, jax, fd


@pytest.mark.parametrize("cell", model.cell_names())
def test_every_side_of_every_cell_covers_every_name_of_its_model(cell):
    config, data = small_data(cell=cell, interval=2)
    m = config.model
    assert set(data.params) == set(m.param_names)
    assert set(data.states) == set(m.state_names[1:])
    for what in ("reference", "jax", "fd"):
        assert model.cell(cell).sides[what]
    if cell == model.DEFAULT_CELL:
        return                                      # tests/test_model.py covers the RNN's
    ref, jax, fd = _sides(cell, config, data)
    assert set(ref[1]) == set(m.grad_names)
    assert set(jax.grads) == set(m.grad_names)
    assert set(fd.grads) == set(m.grad_names)
    assert set(jax.outputs) == set(m.output_names)
    assert len(ref) == len(m.output_names) + 1


@pytest.mark.parametrize("cell", model.cell_names())
def test_every_layer_side_of_every_cell_covers_every_layer_of_it(cell):
    """The layer side: a cell declares a layer of one step and a layer over a window that
    repeats it; its reference has each layer's NAME_forward and NAME_backward, its JAX side
    each step's function, its layer zoo the hook that names its mistakes; the layer check
    offers them all; their params are the cell's."""
    from gradcheck.layer_check import LAYER_SPECS
    c = model.cell(cell)
    steps = {s.name for s in c.layers if s.step is None}
    windows = [s for s in c.layers if s.step is not None]
    assert steps and windows and {w.step for w in windows} <= steps
    reference_side = cell_module(c.sides["layer_reference"])
    jax_side = model.side(cell, "layer_jax")
    assert callable(model.side(cell, "layer_zoo").layer_candidate)
    options = {"activations": model.DEFAULT_ACTIVATIONS, "loss": "l2", "reduction": "mean"}
    for spec in c.layers:
        assert LAYER_SPECS[spec.name] == spec
        assert callable(getattr(reference_side, f"{spec.name}_forward"))
        assert callable(getattr(reference_side, f"{spec.name}_backward"))
        assert [a for a in spec.inputs if a.role == "param"] == list(c.arrays)
        if spec.name in steps:
            assert callable(jax_side.step_function(spec.name, options))


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_s_zoo_has_the_hooks_made_from_its_bugs(cell):
    """The zoo and layer_zoo sides answer with the three hooks zoo_match.hooks made from
    the cell's BUGS (a cell's zoo module writes none of them); they name the cell by its
    registry label."""
    from gradcheck.cells import zoo_match
    zoo, layer_zoo = model.side(cell, "zoo"), model.side(cell, "layer_zoo")
    assert isinstance(zoo.HOOKS, zoo_match.Hooks)
    assert (zoo.reproducing, zoo.finding, layer_zoo.layer_candidate) == (
        zoo.HOOKS.reproducing, zoo.HOOKS.finding, layer_zoo.HOOKS.layer_candidate)
    bug = next(iter(zoo.BUGS.values()))
    label = model.cell(cell).label
    assert zoo.finding({bug.name: 0.5}) == (
        bug.kind, f"{label}: {bug.what} (this mistake reproduces the numbers).")
    assert zoo.finding({}) is None


@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_a_cell_s_bugs_of_a_form_are_told_by_its_arrays(cell, cell_options):
    from gradcheck.cells import zoo_match
    config, data = small_data(cell=cell, interval=2, cell_options=cell_options)
    bugs = model.side(cell, "zoo").BUGS
    assert zoo_match.of_form(bugs, cell, data.params) == [
        n for n, b in bugs.items() if set(b.options) == set(cell_options)]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_the_reference_agrees_with_the_jax_oracle(cell, cell_options, name):
    config, data = _cell_data(cell, name, cell_options)
    (value, grads, *states), jax, _ = _sides(cell, config, data)
    assert abs(value - jax.loss) <= REFERENCE_RTOL * abs(jax.loss)
    for out, got in zip(config.model.state_out_names, states):
        assert _worst(got, jax.outputs[out]) <= REFERENCE_RTOL, out
    for n in config.model.grad_names:
        assert _worst(grads[n], jax.grads[n]) <= REFERENCE_RTOL, n


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_the_finite_differences_are_as_accurate_as_the_rnn_s(cell, cell_options, name):
    config, data = _cell_data(cell, name, cell_options)
    _, jax, fd = _sides(cell, config, data)
    for n in config.model.grad_names:
        assert _worst(fd.grads[n], jax.grads[n]) <= DIFFERENCE_FORM_ACCURACY, n
        assert not fd.kinks[n].any()


@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_the_finite_differences_run_in_chunks_on_threads_identically(cell, cell_options,
                                                                       monkeypatch):
    from gradcheck.cells import fd_cells
    config, data = _cell_data(cell, "l2-tanh", cell_options)
    _, _, whole = _sides(cell, config, data)
    monkeypatch.setattr(fd_cells, "_CHUNK_ELEMENTS", 64)        # many chunks: the pool runs
    ran_on = record_threads(monkeypatch, fd_cells, "_param_chunk")
    before = set(threading.enumerate())
    _, _, chunked = _sides(cell, config, data)
    assert any(name.startswith("gradcheck-fd") for name in ran_on), ran_on
    assert set(threading.enumerate()) == before
    for n in config.model.grad_names:
        np.testing.assert_array_equal(chunked.grads[n], whole.grads[n], n)
        np.testing.assert_array_equal(chunked.kinks[n], whole.kinks[n], n)


# A loss difference of copies moved by 1e-3 (beyond the series' range of the gates'
# changes, which are then differenced directly) against JAX's two float64 losses: their
# own rounding is a few eps of the loss (a sum of T B O terms), and the difference cancels
# to ~1e-6 of it, so the bound is that rounding, 64 eps |loss|, beside 1e-10 of the
# difference (the engine's own rounding there); a wrong step is off by O(1) of it.
LARGE_MOVE_RTOL = 1e-10
LARGE_MOVE_LOSS_ULPS = 64 * np.finfo(np.float64).eps


@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_copies_moved_beyond_the_series_range_agree_with_two_forwards(cell, cell_options,
                                                                       monkeypatch):
    """An incoming state moved by 1e-3 (as exploding states move the gates): the engine's
    loss difference of the copies against JAX's two forwards (a model of reduction sum),
    the gates' changes differenced directly."""
    from gradcheck.cells import gru_fd, lstm_fd
    engine = {"lstm": lstm_fd, "gru": gru_fd}[cell]
    config, data = _cell_data(cell, "l2-sigmoid-out", cell_options)
    options = dict(config.model_options, **config.model.options)
    states = tuple(data.states.values())
    w = {"lstm": lstm_fd.LSTMWindowState, "gru": gru_fd.GRUWindowState}[cell](
        data.params, data.x, data.y, data.h0, *states, **options)
    direct = []

    def spy(name, dz, aux):
        direct.append(float(np.max(np.abs(dz))))
        return activation_change(name, dz, aux)
    activation_change = engine.activation_change
    monkeypatch.setattr(engine, "activation_change", spy)
    move = 1e-3 * np.random.default_rng(0).uniform(-1.0, 1.0, data.h0.shape)
    change, _ = w.copies_change(0, 2, {"h0": np.stack([move, -move])})     # G = 2 copies
    assert max(direct) > 1e-4                                   # beyond the series' range
    jax = model.side(cell, "jax")
    plus, minus = (jax.jax_window(data.params, data.x, data.y, data.h0 + m, *states,
                                  **options).loss for m in (move, -move))
    bound = LARGE_MOVE_RTOL * abs(plus - minus) + LARGE_MOVE_LOSS_ULPS * abs(plus)
    assert abs(change.sum() - (plus - minus)) <= bound


@pytest.mark.parametrize("name", MODELS)
def test_the_lstm_s_one_column_first_step_is_the_dense_step(name, monkeypatch):
    """Wx, b and Wh copies run their first step on the one column they move; the
    values are the dense step's, to the last bit."""
    from gradcheck.cells.lstm_fd import LSTMWindowState
    config, data = _cell_data("lstm", name)
    _, _, fast = _sides("lstm", config, data)
    calls = []
    copies_change = LSTMWindowState.copies_change

    def dense(self, *args, column=None, **kwargs):
        calls.append(column is not None)
        return copies_change(self, *args, **kwargs)
    monkeypatch.setattr(LSTMWindowState, "copies_change", dense)
    _, _, slow = _sides("lstm", config, data)
    assert any(calls)
    for n in ("Wx", "b", "Wh"):
        np.testing.assert_array_equal(fast.grads[n], slow.grads[n], n)
        np.testing.assert_array_equal(fast.kinks[n], slow.kinks[n], n)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("side", ["jax", "layer_jax"])
def test_the_jax_oracle_is_written_from_the_equations_not_from_the_reference(cell, side):
    source = importlib.util.find_spec(model.cell(cell).sides[side]).origin
    with open(source) as f:
        text = f.read()
    assert "_reference" not in text and "cell_module" not in text


@pytest.mark.parametrize("dtype", model.DTYPES)
@pytest.mark.parametrize(("cell", "cell_options"), CASES, ids=CASE_IDS)
def test_check_of_the_reference_passes(cell, cell_options, dtype):
    options = dict.fromkeys(cell_options, True)
    report = gradcheck.check(cell=cell, interval=2, seq_len=5, batch=4, dtype=dtype, **options)
    assert report.passed, [r.message for r in report.results if not r.passed]
    m = model.describe(cell, **options)
    assert set(m.output_names + m.grad_names) <= {r.name for r in report.results}


def test_an_isolated_lstm_file_passes_and_carries_c_across_windows():
    report = gradcheck.check(LSTM_LOOP, cell="lstm", interval=2, seq_len=5, batch=4)
    assert report.passed, [r.message for r in report.results if not r.passed]
    assert report.isolation["isolated"]
    assert {r.window for r in report.results if r.name == "c_last"} == {1, 2, 3}


def _last_step_only(params, x, y, h0, c0, **options):
    """Wrong: the window's last step alone, from the window's incoming state."""
    loss, grads, h_last, c_last = cell_module("lstm").loss_and_grads(
        params, x[-1:], y[-1:], h0, c0, **options)
    return loss, grads, h_last, c_last


def test_a_wrong_lstm_fails():
    report = gradcheck.check(_last_step_only, cell="lstm", interval=3, batch=4,
                             in_process=True)
    assert not report.passed


def _three_values(params, x, y, h0, c0, **options):
    return cell_module("lstm").loss_and_grads(params, x, y, h0, c0, **options)[:3]


def test_a_function_of_the_rnn_contract_gets_one_line_naming_the_lstm_s():
    report = gradcheck.check(_three_values, cell="lstm", interval=2, batch=4)
    assert not report.passed
    messages = [r.message for r in report.results if r.oracle == "contract"]
    assert messages == ["returned 3 values; --cell lstm expects (loss, grads, h_last, c_last)"]


@pytest.mark.parametrize("in_process", [False, True], ids=["isolated", "in-process"])
def test_a_function_of_the_rnn_signature_is_told_the_lstm_s_call(in_process):
    """Its arguments do not bind: the message shows the call the LSTM's contract makes
    (c0 after h0), not the RNN's, beside the function's own signature."""
    from tests.impls import correct
    impl = correct.loop_bptt if in_process else "tests/impls/correct.py:loop_bptt"
    report = gradcheck.check(impl, cell="lstm", interval=2, batch=4, in_process=in_process)
    assert not report.passed
    [message] = [r.message for r in report.results if r.oracle == "contract"]
    assert message.startswith(
        "cannot be called the way the contract of --cell lstm calls it, loop_bptt(params, "
        "x, y, h0, c0, loss=..., activations=..., reduction=...): TypeError: "), message
    assert message.endswith("; its signature is (params, x, y, h0, *, loss='l2', "
                            "activations=('tanh', 'tanh', 'identity'), reduction='mean')")


def test_command_line_lstm_check_of_the_reference_exits_0(capsys):
    assert main(["--cell", "lstm", "--interval", "3", "--batch", "8"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "PASSED" in out and "gradcheck: reference  lstm, interval 3," in out


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--cell", "cnn"], "--cell cnn: expected one of rnn, lstm", id="unknown-cell"),
    pytest.param(["--cell", "lstm", "--activations", "tanh,relu,identity"],
                 "--activations tanh,relu,identity: --cell lstm keeps f2 = tanh: the LSTM's "
                 "own nonlinearities", id="lstm-f2"),
    pytest.param(["--reset-after"], "--reset-after: only for --cell gru", id="option-cell"),
])
def test_bad_cell_usage_is_one_line_exit_2(capsys, argv, message):
    assert main(argv + ["--interval", "2"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# The cells' JAX oracles compile once per shape (no size buckets yet): a few examples per
# run, whatever the hypothesis profile, keep the sweep's compiles within CI's time.
CELL_SWEEP_EXAMPLES = 4


@settings(deadline=None, max_examples=CELL_SWEEP_EXAMPLES, derandomize=True)
@given(configs(max_size=6, max_interval=4, cells=tuple(CELLS)))
def test_the_reference_of_every_cell_passes_over_a_sweep(options):
    report = gradcheck.check(**options)
    assert report.passed, [r.message for r in report.results if not r.passed]
