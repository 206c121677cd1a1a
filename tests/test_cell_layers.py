"""Layer checks of the cells (lstm_step, lstm, gru_step, gru): the reference's layers pass
and compose to its window; the command line takes a layer's two functions; every error."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gradcheck._reference import cell_module
from gradcheck.cli import main
from gradcheck.errors import UsageError
from gradcheck.layer_check import LAYER_SPECS, check_layer
from tests.helpers import SMALL

CELL_LAYERS = ["lstm_step", "lstm", "gru_step", "gru"]
# the layer command at the sizes check_layer's tests use (the JAX layers compiled once)
SMALL_FLAGS = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]
# Two float64 evaluations of the same sums in other orders: ~1e-15 of the scale.
AGREE = 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layer", ["gru_step", "gru"])
def test_reference_gru_layers_pass_with_the_reset_after(layer, dtype):
    report = check_layer(layer, dtype=dtype, reset_after=True, **SMALL)
    assert report.passed, report.format_table()
    assert {"bh"} <= {r.name for r in report.results}
    assert report.to_dict()["config"]["reset_after"] is True


@pytest.mark.parametrize("cell,states", [("lstm", ("h0", "c0")), ("gru", ("h0",))])
def test_reference_cell_layers_compose_to_the_window_s_cell(cell, states):
    """The layer over a window with W1 = I, W3 = I and the l2 loss's d3 as its upstream
    gives the window's gradients of the cell's arrays, x and the states."""
    rng = np.random.default_rng(0)
    ref = cell_module(cell)
    T, B, H, R = 3, 4, 3, 2
    k = 4 if cell == "lstm" else 3
    params = {"W1": np.eye(H), "b1": np.zeros(H), "Wx": rng.normal(size=(H, k * R)),
              "Wh": rng.normal(size=(R, k * R)), "b": rng.normal(size=k * R),
              "W3": np.eye(R), "b3": np.zeros(R)}
    x, y = rng.normal(size=(T, B, H)), rng.normal(size=(T, B, R))
    init = [rng.uniform(-1, 1, (B, R)) for _ in states]
    value, grads, *_ = ref.loss_and_grads(params, x, y, *init, loss="l2", reduction="sum",
                                          activations=("identity", "tanh", "identity"))
    forward, backward = (getattr(ref, f"{cell}_{what}") for what in ("forward", "backward"))
    h, cache = forward(x, *init, params["Wx"], params["Wh"], params["b"])
    got = backward(h - y, cache)                                  # l2, sum: d3 = h - y
    assert abs(0.5 * np.sum((h - y) ** 2) - value) <= AGREE * value
    for name, g in zip(("x",) + states + ("Wx", "Wh", "b"), got):
        assert np.max(np.abs(g - grads[name])) <= AGREE * np.max(np.abs(grads[name])), name


def _module(tmp_path, text):
    path = tmp_path / "my_cell.py"
    path.write_text(text)
    return str(path)


COPY = """from gradcheck._reference import cell_module
_ref = cell_module("{cell}")
{layer}_forward = _ref.{layer}_forward
{layer}_backward = _ref.{layer}_backward
def two_values(*args):
    return _ref.{layer}_forward(*args)[:2]
def none_out(*args):
    *outs, cache = _ref.{layer}_forward(*args)
    return (None,) * len(outs) + (cache,)
def not_an_array(*args):
    *outs, cache = _ref.{layer}_forward(*args)
    return ("h",) * len(outs) + (cache,)
def one_array(*args):
    return _ref.{layer}_forward(*args)[0]
def none_grads(*douts):
    return (None,) * 6
def word_grads(*douts):
    return ("d",) * 6
def five_grads(*douts):
    return _ref.{layer}_backward(*douts)[:5]
def wrong_shape(*douts):
    grads = list(_ref.{layer}_backward(*douts))
    grads[4] = grads[4].T
    return tuple(grads)
"""


@pytest.mark.parametrize("layer", CELL_LAYERS)
def test_cli_takes_a_layer_s_two_functions(layer, tmp_path, capsys):
    path = _module(tmp_path, COPY.format(cell=layer.split("_")[0], layer=layer))
    flags = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert main(["layer", layer, "--impl", path, "--json"] + flags) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["config"]["layer"] == layer
    assert main(["layer", layer, "--impl", f"{path}:{layer}_forward,{layer}_backward"]
                + flags) == 0


@pytest.mark.parametrize("forward,backward,line", [
    ("two_values", "lstm_step_backward",
     "forward returned 2 values; layer lstm_step expects (h_t, c_t, cache)"),
    ("none_out", "lstm_step_backward", "forward returned no h_t (None)"),
    ("not_an_array", "lstm_step_backward", "forward's h_t is not an array of numbers (str"),
    ("one_array", "lstm_step_backward",
     "forward returned one ndarray; layer lstm_step expects (h_t, c_t, cache)"),
    ("lstm_step_forward", "none_grads", "backward returned no da_t (None)"),
    ("lstm_step_forward", "word_grads", "backward's da_t is not an array of numbers (str"),
    ("lstm_step_forward", "five_grads",
     "backward returned 5 arrays; expected 6 (da_t, dh_prev, dc_prev, dWx, dWh, db)"),
    ("lstm_step_forward", "wrong_shape", "dWh has shape (20, 5); expected (5, 20)"),
], ids=["forward-arity", "no-output", "not-an-array", "not-a-tuple", "no-grad",
        "grad-not-an-array", "backward-arity", "shape"])
def test_a_broken_return_is_one_clear_line(forward, backward, line, tmp_path, capsys):
    path = _module(tmp_path, COPY.format(cell="lstm", layer="lstm_step"))
    code = main(["layer", "lstm_step", "--impl", f"{path}:{forward},{backward}", "--json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert line in doc["diagnosis"]
    assert doc["diagnosis"].count("\n") == 0
    assert doc["diagnosis_kind"] in ("return_value", "shape")


@pytest.mark.parametrize("argv,message", [
    (["layer", "lstm_step", "--impl", "my.py:f"],
     "--impl my.py:f: expected FILE.py:FORWARD,BACKWARD or MODULE:FORWARD,BACKWARD"),
    (["layer", "lstm_step", "--impl", "my.py:f,b,c"], "--impl my.py:f,b,c: expected FILE.py"),
    (["layer", "lstm_step", "--impl", "m:f,b", "--forward", "m:f", "--backward", "m:b"],
     "--impl m:f,b: names the layer's two functions already; give it or --forward/--backward"),
    (["layer", "lstm_stp", "--impl", "my.py"], "--layer lstm_stp: expected one of dense1"),
    (["layer", "lstm", "--reset-after"],
     "--reset-after: not an option of check_layer, nor of layer lstm (its cell's "
     "options: none)"),
    (["layer", "gru", "--impl", "no_such_file.py:f,b"], "no such file 'no_such_file.py'"),
], ids=["one-function", "three-functions", "impl-and-forward", "unknown-layer",
        "option-of-another-cell", "no-file"])
def test_bad_layer_command_lines_are_one_usage_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kwargs,message", [
    ({"reset_after": True}, "reset_after=True: not an option of check_layer, nor of layer "
                            "lstm_step (its cell's options: none)"),
    ({"reset_afte": True}, "reset_afte=True: not an option of check_layer, nor of layer "
                           "lstm_step"),
], ids=["option-of-another-cell", "typo"])
def test_bad_cell_options_of_check_layer(kwargs, message):
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        check_layer("lstm_step", **kwargs)


def test_a_cell_option_is_true_or_false():
    with pytest.raises(UsageError, match=re.escape("reset_after='yes': expected True or False")):
        check_layer("gru", reset_after="yes")


def test_every_cell_layer_flag_has_help():
    from gradcheck.cli.layer import build_parser
    actions = {a.dest: a for a in build_parser()._actions}
    assert "gru_step, gru" in actions["reset_after"].help
    assert "the cell's conventions alone" in actions["adapter"].help
    assert "is given c0 = 0; a dc0 the code cannot give is skipped" in actions["adapter"].help
    assert all(a.help for a in actions.values())


def test_the_layer_specs_name_the_contract_s_arguments():
    """Adapters map other styles onto these names: they are part of the contract."""
    assert LAYER_SPECS["lstm_step"].input_names == ("a_t", "h_prev", "c_prev", "Wx", "Wh", "b")
    assert [o.name for o in LAYER_SPECS["lstm_step"].outputs] == ["h_t", "c_t"]
    assert LAYER_SPECS["lstm"].input_names == ("a", "h0", "c0", "Wx", "Wh", "b")
    assert LAYER_SPECS["gru_step"].input_names == ("a_t", "h_prev", "Wx", "Wh", "b")
    assert LAYER_SPECS["gru"].input_names == ("a", "h0", "Wx", "Wh", "b")


# ------------------------------------------------------------------ wrong layers

# One-line (or one-mistake) mutants of the reference's cell layers (reference/lstm.py,
# reference/gru.py): (cell, the reference's text, the wrong text).
MUTANTS = {
    "dc_next_not_carried": ("lstm", "lstm_step_backward(dh[t] + dh_next, dc_next,",
                            "lstm_step_backward(dh[t] + dh_next, 0.0 * dc_next,"),
    "dc_t_ignored": ("lstm", "dc = dh_t * o * (1.0 - tc ** 2) + dc_t",
                     "dc = dh_t * o * (1.0 - tc ** 2)"),
    "forget_with_c_t": ("lstm", "dc * c_prev * f * (1.0 - f),",
                        "dc * (f * c_prev + i * g) * f * (1.0 - f),"),
    "no_tanh_prime_c": ("lstm", "dc = dh_t * o * (1.0 - tc ** 2) + dc_t", "dc = dh_t * o + dc_t"),
    "z_swapped": ("gru", "dzn = dh_t * (1.0 - z) * (1.0 - n ** 2)",
                  "dzn = dh_t * z * (1.0 - n ** 2)",
                  "dh_prev = dh_t * z + drh * r", "dh_prev = dh_t * (1.0 - z) + drh * r"),
    "dr_without_bh": ("gru", "dzr = dzn * u[:, 2 * R:] * r * (1.0 - r)",
                      "dzr = dzn * (h_prev @ Wh[:, 2 * R:]) * r * (1.0 - r)"),
    "half_dh_next": ("lstm", "lstm_step_backward(dh[t] + dh_next,",
                     "lstm_step_backward(dh[t] + 0.5 * dh_next,"),
}


def _mutant(tmp_path, name):
    """The reference's module of the cell with mutation ``name``, loaded from a file."""
    import importlib.util
    from gradcheck._reference import REFERENCE_DIR
    cell, *edits = MUTANTS[name]
    text = (REFERENCE_DIR / f"{cell}.py").read_text()
    for old, new in zip(edits[::2], edits[1::2]):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    text = text.replace("from .activations import", "from gradcheck._reference import reference\n"
                        "from _gradcheck_reference.activations import")
    text = re.sub(r"from \.(\w+) import", r"from _gradcheck_reference.\1 import", text)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"_mutant_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# (mutant, layer, the diagnosis kind, {array: the steps named}) for the layers over T = 3
CAUGHT = [
    ("dc_next_not_carried", "lstm", "lstm_no_dc_next",
     {"a": [1, 2], "Wx": [1, 2], "Wh": [1, 2], "b": [1, 2]}),
    ("dc_t_ignored", "lstm_step", "lstm_no_dc_next", {}),
    ("forget_with_c_t", "lstm", "lstm_forget_grad_with_c_t",
     {"a": [1, 2, 3], "Wx": [1, 2, 3], "Wh": [1, 2, 3], "b": [1, 2, 3]}),
    ("forget_with_c_t", "lstm_step", "lstm_forget_grad_with_c_t", {}),
    ("no_tanh_prime_c", "lstm", "lstm_no_tanh_prime_c",
     {"a": [1, 2, 3], "Wx": [1, 2, 3], "Wh": [1, 2, 3], "b": [1, 2, 3]}),
    ("no_tanh_prime_c", "lstm_step", "lstm_no_tanh_prime_c", {}),
    ("z_swapped", "gru", "gru_z_swapped",
     {"a": [1, 2, 3], "Wx": [1, 2, 3], "Wh": [1, 2, 3], "b": [1, 2, 3]}),
    ("z_swapped", "gru_step", "gru_z_swapped", {}),
]


@pytest.mark.parametrize("mutant,layer,kind,steps", CAUGHT,
                         ids=[f"{m}-{layer}" for m, layer, _, _ in CAUGHT])
def test_a_wrong_cell_layer_fails_with_its_zoo_diagnosis_and_steps(mutant, layer, kind, steps,
                                                                   tmp_path):
    module = _mutant(tmp_path, mutant)
    report = check_layer(layer, getattr(module, f"{layer}_forward"),
                         getattr(module, f"{layer}_backward"), **SMALL)
    assert not report.passed
    assert report.finding.kind == kind, report.diagnosis
    assert report.finding.evidence["steps"] == {n: s for n, s in steps.items()
                                                if n in report.finding.evidence["arrays"]}
    assert set(steps) <= set(report.finding.evidence["arrays"])
    assert json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("layer", ["gru_step", "gru"])
def test_a_wrong_reset_after_gru_layer_fails_with_its_zoo_diagnosis(layer, tmp_path):
    module = _mutant(tmp_path, "dr_without_bh")
    report = check_layer(layer, getattr(module, f"{layer}_forward"),
                         getattr(module, f"{layer}_backward"), reset_after=True, **SMALL)
    assert report.finding.kind == "gru_after_dr_without_bh", report.diagnosis
    assert check_layer(layer, getattr(module, f"{layer}_forward"),
                       getattr(module, f"{layer}_backward"), **SMALL).passed   # reset before


def test_a_wrong_lstm_layer_no_zoo_bug_explains_is_told_in_the_lstm_s_words(tmp_path):
    module = _mutant(tmp_path, "half_dh_next")
    report = check_layer("lstm", module.lstm_forward, module.lstm_backward, **SMALL)
    assert report.finding.kind == "state_derivative_unclear", report.diagnosis
    assert "dh_next or dc_next" in report.diagnosis
    assert "LSTM zoo mistake" in report.diagnosis
    assert "dWh wrong at steps [1, 2]" in report.diagnosis
    assert not re.search(r"\bd?U\b|\bW2\b|f2", report.diagnosis)


@pytest.mark.parametrize("mutant,layer,kind,steps", CAUGHT[:1] + CAUGHT[-2:-1],
                         ids=["lstm", "gru"])
def test_a_wrong_cell_layer_in_float32_is_still_caught(mutant, layer, kind, steps, tmp_path):
    module = _mutant(tmp_path, mutant)
    report = check_layer(layer, getattr(module, f"{layer}_forward"),
                         getattr(module, f"{layer}_backward"), dtype="float32", **SMALL)
    assert not report.passed
    assert report.finding.kind == kind, report.diagnosis


# ------------------------------------------------------------------ other conventions

# Correct code that follows another convention than the contract's (the reference's GRU
# layers edited consistently, forward and backward): z weighs the candidate, h = (1-z)*h_prev
# + z*n; the gate blocks in the order z, r, n.
MUTANTS.update({
    "z_takes": ("gru", "h_t = (1.0 - z) * n + z * h_prev", "h_t = (1.0 - z) * h_prev + z * n",
                "dzn = dh_t * (1.0 - z) * (1.0 - n ** 2)", "dzn = dh_t * z * (1.0 - n ** 2)",
                "dzz = dh_t * (h_prev - n) * z", "dzz = dh_t * (n - h_prev) * z",
                "dh_prev = dh_t * z + du", "dh_prev = dh_t * (1.0 - z) + du",
                "dh_prev = dh_t * z + drh", "dh_prev = dh_t * (1.0 - z) + drh"),
    "blocks_zrn": ("gru", "r = sigmoid(zx[:, :R] + u[:, :R])",
                   "r = sigmoid(zx[:, R:2 * R] + u[:, R:2 * R])",
                   "z = sigmoid(zx[:, R:2 * R] + u[:, R:2 * R])",
                   "z = sigmoid(zx[:, :R] + u[:, :R])",
                   "[dzr, dzz, dzn * r]", "[dzz, dzr, dzn * r]",
                   "drz = np.concatenate([dzr, dzz], axis=1)          #",
                   "drz = np.concatenate([dzz, dzr], axis=1)          #",
                   "dzx = np.concatenate([dzr, dzz, dzn], axis=1)         #",
                   "dzx = np.concatenate([dzz, dzr, dzn], axis=1)         #"),
})

# The reset gate on the other side of the product than the check's: code of the reset after
# whose bh is optional (zero when not given), checked before; code of the reset before that
# takes bh and ignores it, checked with reset_after.
RESET_CODE = {"after": """import numpy as np
from gradcheck._reference import cell_module
_ref = cell_module("gru")
def {layer}_forward(a, h, Wx, Wh, b, bh=None):
    out, cache = _ref.{layer}_forward(a, h, Wx, Wh, b, np.zeros_like(b) if bh is None else bh)
    return out, (cache, bh is None)
def {layer}_backward(dh, cache):
    grads = _ref.{layer}_backward(dh, cache[0])
    return grads[:5] if cache[1] else grads
""", "before": """import numpy as np
from gradcheck._reference import cell_module
_ref = cell_module("gru")
def {layer}_forward(a, h, Wx, Wh, b, bh=None):
    out, cache = _ref.{layer}_forward(a, h, Wx, Wh, b)
    return out, (cache, bh)
def {layer}_backward(dh, cache):
    grads = _ref.{layer}_backward(dh, cache[0])
    return grads if cache[1] is None else grads + (np.zeros_like(cache[1]),)
"""}


def _declare(keys):
    words = ", ".join(f'"{k}": "{v}"' for k, v in keys.items())
    return f"declare it: --adapter '{{{words}}}' (adapter={{{words}}} in check_layer)."


# (code, check_layer's options, the convention found, how the diagnosis says to declare it,
# the options under which the same code passes)
OTHER_CONVENTIONS = [
    ("z_takes", {}, {"update": "z_takes"}, _declare({"update": "z_takes"}),
     {"adapter": {"update": "z_takes"}}),
    ("blocks_zrn", {}, {"gate_order": "zrn"}, _declare({"gate_order": "zrn"}),
     {"adapter": {"gate_order": "zrn"}}),
    ("after", {}, {"reset": "after"},
     "check it with --reset-after (reset_after=True in check_layer).", {"reset_after": True}),
    ("before", {"reset_after": True}, {"reset": "before"},
     "check it without --reset-after (reset_after=False in check_layer).", {}),
]


def _gru_code(tmp_path, code, layer):
    """(module, its file) of the GRU code ``code`` (a MUTANTS edit or a RESET_CODE text)."""
    if code in RESET_CODE:
        path = tmp_path / f"{code}_{layer}.py"
        path.write_text(RESET_CODE[code].format(layer=layer))
        import importlib.util
        spec = importlib.util.spec_from_file_location(f"_reset_{code}_{layer}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, str(path)
    return _mutant(tmp_path, code), str(tmp_path / f"{code}.py")


@pytest.mark.parametrize("layer", ["gru_step", "gru"])
@pytest.mark.parametrize("code,options,found,act,passing", OTHER_CONVENTIONS,
                         ids=[c[0] for c in OTHER_CONVENTIONS])
def test_a_gru_layer_of_another_convention_is_told_its_convention(code, options, found, act,
                                                                  passing, layer, tmp_path):
    module, _ = _gru_code(tmp_path, code, layer)
    pair = getattr(module, f"{layer}_forward"), getattr(module, f"{layer}_backward")
    report = check_layer(layer, *pair, **options, **SMALL)
    key = next(iter(found))
    assert report.finding.kind == f"gru_convention_{key}", report.diagnosis
    assert report.finding.evidence["convention"] == found
    assert report.diagnosis.startswith(f"Layer {layer} (")
    assert "the forward disagrees with JAX and it is not a wrong gradient: your code follows " \
           "another convention" in report.diagnosis
    assert report.diagnosis.endswith("write it in the contract's convention, or " + act)
    assert check_layer(layer, *pair, **passing, **SMALL).passed


@pytest.mark.parametrize("code,found", [("z_takes", {"update": "z_takes"}),
                                        ("after", {"reset": "after"})])
def test_the_layer_command_names_the_gru_convention(code, found, tmp_path, capsys):
    _, path = _gru_code(tmp_path, code, "gru")
    flags = ["--impl", f"{path}:gru_forward,gru_backward", *SMALL_FLAGS, "--json"]
    assert main(["layer", "gru"] + flags) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["diagnosis_kind"] == f"gru_convention_{next(iter(found))}"
    assert doc["diagnosis_detail"]["evidence"]["convention"] == found
    fix = ["--reset-after"] if code == "after" else ["--adapter", json.dumps(found)]
    assert main(["layer", "gru"] + flags + fix) == 0
    assert json.loads(capsys.readouterr().out)["passed"]


COURSE_DIR = Path(__file__).resolve().parent / "impls" / "styles"


def test_the_course_lstm_step_is_told_its_gate_order(capsys):
    """The course's lstm_step_forward/backward have the contract's arguments and gates
    i, f, o, g."""
    flags = ["--impl", str(COURSE_DIR / "course_lstm.py"), "--path", str(COURSE_DIR),
             *SMALL_FLAGS, "--json"]
    assert main(["layer", "lstm_step"] + flags) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["diagnosis_kind"] == "lstm_convention_gate_order"
    assert doc["diagnosis"].endswith(
        "uses gate order i, f, o, g (this check: gate order i, f, g, o); write it in the "
        "contract's convention, or " + _declare({"gate_order": "ifog"}))
    assert main(["layer", "lstm_step", "--adapter", '{"gate_order": "ifog"}'] + flags) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and "declared gate_order=ifog" in doc["impl"]


def test_a_wrong_forward_of_no_convention_is_not_called_a_convention(tmp_path):
    module = _mutant(tmp_path, "z_takes")
    backward = module.gru_step_backward

    def forward(*args):                  # z_takes, and every h_t off by a little more
        h_t, cache = module.gru_step_forward(*args)
        return h_t + 1e-3, cache
    report = check_layer("gru_step", forward, backward, adapter={"update": "z_takes"}, **SMALL)
    assert not report.passed
    assert report.finding.kind == "arrays_disagree", report.diagnosis
    assert "convention" not in report.finding.evidence


@pytest.mark.parametrize("argv,message", [
    (["layer", "lstm_step", "--adapter", '{"gate_order": "ifog"}'],
     '--adapter {"gate_order": "ifog"}: of conventions alone needs the layer\'s two functions '
     '(--impl or --forward/--backward)'),
    (["layer", "lstm_step", "--impl", "my.py", "--adapter", '{"gate_order": "ifgx"}'],
     '--adapter gate_order=ifgx: "gate_order" of --cell lstm must be one of ifgo, ifog, fgio, '
     "igfo, iofg (ifgo: the contract's)"),
    (["layer", "lstm_step", "--impl", "my.py", "--adapter", '{"update": "z_takes"}'],
     '--adapter update=z_takes: "update" is not a convention of --cell lstm (its keys: '
     "gate_order, cell_state)"),
    (["layer", "rnn", "--impl", "my.py", "--adapter", '{"gate_order": "ifog"}'],
     '--adapter gate_order=ifog: "gate_order" is not a convention of --cell rnn (its keys: '
     "none)"),
    (["layer", "lstm_step", "--impl", "my.py", "--adapter",
      '{"gate_order": "zrn", "cell": "gru"}'],
     "--adapter cell=gru: this declaration is for --cell gru; the layer's cell is lstm"),
], ids=["no-functions", "value", "other-cells-key", "rnn", "cell"])
def test_a_bad_adapter_of_conventions_is_one_usage_line(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"gradcheck layer: error: {message}"


@pytest.mark.parametrize("adapter,message", [
    ("course", "adapter='course': with the layer's two functions, an adapter holds only its "
               "cell's conventions (keys: gate_order, cell_state); for code in another "
               "shape, give its module as forward and no backward"),
    ({"gate_order": "ifog", "layers": {}}, "with the layer's two functions, an adapter holds "
                                            "only its cell's conventions"),
], ids=["style", "other-keys"])
def test_check_layer_takes_conventions_alone_with_two_functions(adapter, message):
    ref = cell_module("lstm")
    with pytest.raises(UsageError, match=re.escape(message)):
        check_layer("lstm_step", ref.lstm_step_forward, ref.lstm_step_backward,
                    adapter=adapter)


RESETS_C = """import numpy as np
from gradcheck._reference import cell_module
_ref = cell_module("lstm")
def lstm_forward(a, h0, c0, Wx, Wh, b):          # c starts at zero: c0 is not read
    return _ref.lstm_forward(a, h0, np.zeros_like(c0), Wx, Wh, b)
def lstm_backward(dh, cache):
    da, dh0, dc0, dWx, dWh, db = _ref.lstm_backward(dh, cache)
    return da, dh0, np.zeros_like(dc0), dWx, dWh, db
"""


def test_an_lstm_layer_that_resets_c_is_told_to_declare_it(tmp_path, capsys):
    path = tmp_path / "resets_c.py"
    path.write_text(RESETS_C)
    flags = ["layer", "lstm", "--impl", str(path), *SMALL_FLAGS, "--json"]
    assert main(flags) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["diagnosis_kind"] == "lstm_convention_cell_state", doc["diagnosis"]
    assert doc["diagnosis"].endswith(_declare({"cell_state": "reset"}))
    assert main(flags + ["--adapter", '{"cell_state": "reset"}']) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["skipped"] == ["c0"]
    assert "c0" not in {r["name"] for r in doc["results"]}


@pytest.mark.parametrize("layer", ["lstm_step", "gru"])
def test_a_layer_of_another_convention_is_told_it_in_float32(layer, tmp_path):
    if layer == "gru":
        module = _mutant(tmp_path, "blocks_zrn")
        found = {"gate_order": "zrn"}
    else:                                # the course's functions: gates i, f, o, g
        from gradcheck.untrusted import load_impl
        path = COURSE_DIR / "course_lstm.py"
        module = SimpleNamespace(**{f"lstm_step_{what}": load_impl(f"{path}:lstm_step_{what}")
                                    for what in ("forward", "backward")})
        found = {"gate_order": "ifog"}
    pair = getattr(module, f"{layer}_forward"), getattr(module, f"{layer}_backward")
    report = check_layer(layer, *pair, dtype="float32", **SMALL)
    assert report.finding.evidence.get("convention") == found, report.diagnosis
    assert check_layer(layer, *pair, dtype="float32", adapter=found, **SMALL).passed
