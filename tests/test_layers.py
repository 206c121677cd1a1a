"""Layer checks: the reference's own layers (callable one by one) compose to its window and
pass check_layer; layer-level bugs of the zoo are caught and named; the CLI subcommand."""
import json
import re

import numpy as np
import pytest

import reference
from gradcheck.cli import main
from gradcheck.errors import UsageError
from gradcheck.layer_check import LAYER_SPECS, check_layer
from gradcheck.zoo import LAYER_BUGS
from tests.helpers import SMALL, assert_figures_agree, small_data

# Two float64 evaluations of the same sums in other orders: ~1e-15 of the scale.
AGREE = 1e-12


@pytest.mark.parametrize("loss,acts", [("l2", ("tanh", "sigmoid", "tanh")),
                                       ("ce", ("relu", "tanh", "identity"))], ids=str)
def test_reference_layers_compose_to_the_reference_window(loss, acts):
    config, data = small_data(interval=4, loss=loss, activations=acts)
    p = data.params
    L = reference.layers
    a, c1 = L.dense_forward(data.x, p["W1"], p["b1"], acts[0])
    h, c2 = L.rnn_forward(a, data.h0, p["W2"], p["U"], p["b2"], acts[1])
    z3 = h @ p["W3"] + p["b3"]
    value, c4 = L.loss_forward(z3, data.y, loss, acts[2], "mean")
    dz3 = L.loss_backward(1.0, c4)
    dh, dW3, db3 = L.dense_backward(dz3, (h, p["W3"], np.ones_like(z3)))
    da, dh0, dW2, dU, db2 = L.rnn_backward(dh, c2)
    dx, dW1, db1 = L.dense_backward(da, c1)
    want_value, want, h_last = reference.loss_and_grads(p, data.x, data.y, data.h0,
                                                        **config.model_options)
    got = dict(W1=dW1, b1=db1, W2=dW2, U=dU, b2=db2, W3=dW3, b3=db3, x=dx, h0=dh0)
    assert abs(value - want_value) <= AGREE * abs(want_value)
    np.testing.assert_allclose(h[-1], h_last, rtol=0, atol=AGREE)
    for name, g in got.items():
        scale = np.max(np.abs(want[name]))
        assert np.max(np.abs(g - want[name])) <= AGREE * scale, name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layer", LAYER_SPECS)
def test_reference_layers_pass_their_layer_check(layer, dtype):
    report = check_layer(layer, dtype=dtype, **SMALL)
    assert report.passed, report.format_table()
    names = {r.name for r in report.results}
    assert set(LAYER_SPECS[layer].input_names) <= names
    assert {r.oracle for r in report.results} == {"jax", "fd"}


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_reference_loss_layers_pass(loss):
    assert check_layer("loss", loss=loss, **SMALL).passed


@pytest.mark.parametrize("name", LAYER_BUGS)
def test_layer_bug_is_caught_and_named(name):
    bug = LAYER_BUGS[name]
    report = check_layer(bug.layer, bug.forward, bug.backward, **SMALL, **bug.options)
    assert not report.passed
    assert {r.name for r in report.failures} == set(bug.breaks), report.format_table()
    assert re.search(bug.diagnosis, report.diagnosis), report.diagnosis
    assert json.dumps(report.to_dict(), allow_nan=False)


# The kind each layer bug's diagnosis names: the same kinds as the whole window's.
LAYER_KINDS = {"rnn_dU_first_from_last_state": "dU_first_step",
               "rnn_no_dh_next": "dh_next_not_passed",
               "rnn_step_dh_prev_through_U": "dh_next_through_U",
               "dense_backward_without_f_prime": "f1_derivative",
               "l2_loss_without_half": "l2_half"}


@pytest.mark.parametrize("name", sorted(LAYER_BUGS))
def test_layer_bug_is_diagnosed_with_the_kind_of_the_whole_window(name):
    bug = LAYER_BUGS[name]
    report = check_layer(bug.layer, bug.forward, bug.backward, **SMALL, **bug.options)
    assert report.finding.kind == LAYER_KINDS[name], report.diagnosis
    assert report.finding.text == report.diagnosis
    doc = report.to_dict()
    assert doc["diagnosis_kind"] == LAYER_KINDS[name]
    assert doc["diagnosis_detail"]["hint"] == report.finding.hint


def _in_float32(fn):
    """``fn`` (a reference layer's forward) computing in float32 whatever it is given."""
    def forward(*arrays, **kw):
        return fn(*(np.asarray(a, np.float32) for a in arrays), **kw)
    return forward


@pytest.mark.parametrize("layer,forward,backward", [
    ("dense1", reference.layers.dense_forward, reference.layers.dense_backward),
    ("rnn", reference.layers.rnn_forward, reference.layers.rnn_backward)], ids=["dense1", "rnn"])
def test_a_layer_computing_in_float32_gets_the_float32_hint(layer, forward, backward):
    report = check_layer(layer, _in_float32(forward), backward, **SMALL)
    assert not report.passed
    assert report.finding.kind == "float32", report.diagnosis
    assert "float32 rounding level" in report.diagnosis
    assert "--dtype float32" in report.diagnosis
    assert report.finding.evidence["ratio"] <= 1
    assert_figures_agree(report.finding)


def test_first_step_bug_of_the_rnn_layer_is_at_step_1_alone():
    bug = LAYER_BUGS["rnn_dU_first_from_last_state"]
    report = check_layer("rnn", bug.forward, bug.backward, **SMALL)
    assert {tuple(r.steps) for r in report.failures} == {(1,)}


def test_a_layer_that_raises_is_a_verdict():
    def forward(*args, **kw):
        raise RuntimeError("boom")
    report = check_layer("dense1", forward, reference.layers.dense_backward, **SMALL)
    assert not report.passed and "raised RuntimeError: boom" in report.diagnosis


def test_a_layer_that_declines_is_not_supported():
    def forward(*args, **kw):
        raise NotImplementedError("no relu here")
    report = check_layer("dense1", forward, reference.layers.dense_backward, **SMALL)
    assert report.status == "not_supported" and not report.passed
    assert "no relu here" in report.format_table()


@pytest.mark.parametrize("kwargs,message", [
    ({"layer": "lstm_cell"}, "layer='lstm_cell': expected one of dense1, rnn_step, rnn, dense2, "
                             "loss, lstm_step, lstm, gru_step, gru"),
    ({"layer": "rnn", "activations": ("tanh",)}, "activations=('tanh',): expected three"),
    ({"layer": "rnn", "dtype": "float16"}, "dtype='float16': expected one of float64"),
    ({"layer": "rnn", "batch": 0}, "batch=0: expected an integer >= 1"),
    ({"layer": "rnn", "forward": print}, "forward=<built-in function print>: give both"),
], ids=["layer", "activations", "dtype", "batch", "forward-alone"])
def test_bad_layer_options_name_the_option(kwargs, message):
    layer = kwargs.pop("layer")
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        check_layer(layer, **kwargs)


def test_cli_layer_subcommand(capsys):
    flags = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert main(["layer", "rnn", "--json"] + flags) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["config"]["layer"] == "rnn"
    assert main(["layer", "lstm_cell"]) == 2
    assert "--layer lstm_cell: expected one of" in capsys.readouterr().err


GOOD_FORWARD, GOOD_BACKWARD = "reference.layers:rnn_forward", "reference.layers:rnn_backward"


@pytest.mark.parametrize("given,bad,message", [
    ("forward", "no_such_file.py:f", "no such file 'no_such_file.py'"),
    ("backward", "no_such_file.py:f", "no such file 'no_such_file.py'"),
    ("forward", "reference.layers:nope", "reference.layers has no attribute 'nope'"),
    ("backward", "reference.layers:nope", "reference.layers has no attribute 'nope'"),
    ("forward", "no_such_module_here:f", "importing no_such_module_here raised "
                                         "ModuleNotFoundError"),
    ("backward", "no_such_module_here:f", "importing no_such_module_here raised "
                                          "ModuleNotFoundError"),
    ("forward", "f", "expected FILE.py[:FUNC] or MODULE:FUNC naming a function"),
], ids=["forward-file", "backward-file", "forward-name", "backward-name", "forward-import",
        "backward-import", "forward-form"])
def test_a_forward_or_backward_that_cannot_load_names_its_own_option(given, bad, message,
                                                                      capsys):
    pair = {"forward": GOOD_FORWARD, "backward": GOOD_BACKWARD, given: bad}
    assert main(["layer", "rnn", "--forward", pair["forward"],
                 "--backward", pair["backward"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gradcheck layer: error: --{given} {bad}: {message}"), err
    assert err.count("\n") == 1 and "--impl" not in err


@pytest.mark.parametrize("layer", ["rnn", "dense1"])
def test_a_forward_and_backward_file_alone_name_the_layer_s_functions(layer, tmp_path, capsys):
    """FILE.py alone means its LAYER_forward / LAYER_backward, as --impl FILE.py does (it
    named loss_and_grads, the whole window's function)."""
    path = tmp_path / "my_layers.py"
    path.write_text("from reference.layers import rnn_forward, rnn_backward  # noqa: F401\n")
    code = main(["layer", layer, "--forward", str(path), "--backward", str(path)])
    if layer == "rnn":
        assert code == 0 and capsys.readouterr().out.startswith("PASSED")
    else:
        assert code == 2
        assert capsys.readouterr().err == (
            f"gradcheck layer: error: --forward {path}:dense1_forward: {path} has no "
            f"attribute 'dense1_forward'; expected FILE.py[:FUNC] or MODULE:FUNC naming a "
            f"function\n")


def test_a_forward_whose_package_is_missing_is_told_the_forward_option(tmp_path, capsys):
    path = tmp_path / "imports_its_package.py"
    path.write_text("import no_such_package_here  # noqa: F401\n")
    assert main(["layer", "rnn", "--forward", f"{path}:f", "--backward", GOOD_BACKWARD]) == 2
    err = capsys.readouterr().err
    assert ("checked from the package's root as --forward PACKAGE.MODULE:FUNC, or given "
            "that root with --path DIR") in err
    assert "--impl" not in err


def test_a_layer_result_with_a_non_finite_oracle_says_so():
    """A layer's Result is judge.result_of's (its own copy formatted None and crashed)."""
    import numpy as np

    from gradcheck.compare import compare
    from gradcheck.layer_check import _result
    from gradcheck.tolerances import tolerance
    tol = tolerance("jax", "float64")
    r = _result("U", "jax", compare(np.ones(3), np.array([1.0, np.inf, 1.0]), tol), tol, [2])
    assert not r.passed and r.steps == [2]
    assert r.message.startswith("the jax oracle is not finite at [1]")
