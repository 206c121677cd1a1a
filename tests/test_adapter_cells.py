"""LSTM and GRU code as courses and textbooks write it (tests/impls/styles/course_lstm.py,
textbook_cells.py, written here from the styles' public descriptions), checked through the
adapters with no glue: the conventions (gate order, update, reset, a cell state reset in
every call) are keys of the declaration; a zoo-style bug fails with its diagnosis; a
declaration that names the wrong convention gets the convention's diagnosis, naming the
key to declare, through the isolated path; a bad key or value is one usage line."""
import json
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from gradcheck import adapters
from gradcheck.cells.convention_arrays import from_code, to_code
from gradcheck.cli import main
from gradcheck.model import cell as cell_of

STYLES_DIR = Path(__file__).resolve().parent / "impls" / "styles"
COURSE = str(STYLES_DIR / "course_lstm.py")
TEXTBOOK = str(STYLES_DIR / "textbook_cells.py")
# several windows, the last one shorter; small sizes
SIZES = dict(interval=3, seq_len=7, batch=4, input_size=3, hidden_size=4, state_size=3,
             output_size=5)
FLAGS = [a for k, v in SIZES.items() for a in (f"--{k.replace('_', '-')}", str(v))]

STYLED = [("course", "lstm", COURSE), ("textbook", "lstm", TEXTBOOK), ("textbook", "gru", TEXTBOOK)]
IDS = [f"{s}-{c}" for s, c, _ in STYLED]
# what each style's code does not give back, skipped as declared (never compared)
SKIPPED = {("course", "lstm"): ["c0", "c_last"], ("textbook", "lstm"): ["c0"],
           ("textbook", "gru"): []}


def _module(path, style, cell, **globals_):
    """A fresh copy of the file's module (each load re-executes it), globals set."""
    module = adapters._module_of(path, adapters.declaration(style, cell))
    for k, v in globals_.items():
        setattr(module, k, v)
    return module


@pytest.mark.parametrize("style,cell,path", STYLED, ids=IDS)
def test_the_styles_code_passes_through_the_worker(style, cell, path):
    report = gradcheck.check(path, adapter=style, cell=cell, **SIZES)
    assert report.passed, report.format_table()
    doc = report.to_dict()
    assert doc["skipped"] == SKIPPED[(style, cell)]
    assert not {r["name"] for r in doc["results"]} & set(doc["skipped"])
    assert len(report.windows) == 3 and report.isolation["isolated"]


@pytest.mark.parametrize("style,cell,path", STYLED, ids=IDS)
def test_the_styles_code_passes_in_float32(style, cell, path):
    report = gradcheck.check(_module(path, style, cell), adapter=style, cell=cell,
                             dtype="float32", **SIZES)
    assert report.passed, report.format_table()


@pytest.mark.parametrize("style,cell,path", STYLED, ids=IDS)
def test_the_command_line_takes_the_styles_file_as_it_is(style, cell, path, capsys):
    assert main(FLAGS + ["--cell", cell, "--adapter", style, "--impl", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["config"]["cell"] == cell


BUGS = [
    (COURSE, "course", "lstm", "no_dnext_c", "lstm_no_dc_next"),
    (COURSE, "course", "lstm", "no_tanh_prime_c", "lstm_no_tanh_prime_c"),
    (TEXTBOOK, "textbook", "lstm", "lstm_df_with_c_t", "lstm_forget_grad_with_c_t"),
    (TEXTBOOK, "textbook", "gru", "gru_no_direct_path", "gru_no_direct_path"),
]


@pytest.mark.parametrize("path,style,cell,bug,kind", BUGS, ids=[b[3] for b in BUGS])
def test_a_zoo_bug_in_the_styles_code_fails_with_its_diagnosis(path, style, cell, bug, kind):
    report = gradcheck.check(_module(path, style, cell, BUG=bug), adapter=style, cell=cell,
                             **SIZES)
    assert not report.passed
    assert report.finding.kind == kind, report.diagnosis
    assert "reproduces the numbers" in report.diagnosis


# A declaration naming another convention than the code's (through the worker): the
# forward disagrees, and the diagnosis names what the code does and the key to declare.
WRONG = [
    (COURSE, "lstm", {"style": "course", "gate_order": "ifgo"}, "lstm_convention_gate_order",
     'uses gate order i, f, o, g (this check: gate order i, f, g, o); declare "gate_order": '
     '"ifog" in the adapter.'),
    (COURSE, "lstm", {"style": "course", "cell_state": "carried"},
     "lstm_convention_cell_state",
     'uses a cell state that starts at zero in every call (this check: the cell state '
     'carried in (c0) and out (c_last)); declare "cell_state": "reset" in the adapter.'),
    (TEXTBOOK, "gru", {"style": "textbook", "gate_order": "rzn"}, "gru_convention_gate_order",
     'uses gate blocks z, r, n (this check: gate blocks r, z, n); declare "gate_order": "zrn"'),
    (TEXTBOOK, "gru", {"style": "textbook", "update": "z_keeps"}, "gru_convention_update",
     'uses h = (1-z)*h_prev + z*n (z weighs the candidate n) (this check: h = (1-z)*n + '
     'z*h_prev (z weighs the previous state)); declare "update": "z_takes" in the adapter.'),
    (TEXTBOOK, "gru", {"style": "textbook", "layers": {"rnn": {"class": "TimeGRUAfter"}}},
     "gru_convention_reset",
     'uses the reset gate after the recurrent product, n = tanh(a Wx_n + b_n + r*(h_prev '
     'Wh_n)) (this check: the reset gate before'),
]


@pytest.mark.parametrize("path,cell,adapter,kind,words", WRONG, ids=[w[3] for w in WRONG])
def test_a_wrong_convention_is_named_with_its_key(path, cell, adapter, kind, words):
    report = gradcheck.check(path, adapter=adapter, cell=cell, **SIZES)
    assert not report.passed and report.isolation["isolated"]
    assert report.finding.kind == kind, report.diagnosis
    assert report.diagnosis.startswith("The forward disagrees with JAX and it is not a wrong "
                                       "gradient")
    assert words in report.diagnosis
    doc = report.to_dict()
    assert doc["diagnosis_kind"] == kind
    assert doc["diagnosis_detail"]["group"] == "contract"
    key = kind.split("_convention_")[1]
    assert key in doc["diagnosis_detail"]["evidence"]["convention"]


def test_two_wrong_conventions_are_named_together():
    report = gradcheck.check(TEXTBOOK, cell="gru", adapter={
        "style": "textbook", "gate_order": "rzn", "update": "z_keeps"}, **SIZES)
    assert report.finding.evidence["convention"] == {"gate_order": "zrn", "update": "z_takes"}
    assert 'declare "gate_order": "zrn", "update": "z_takes" in the adapter' in report.diagnosis


def test_the_declaration_the_diagnosis_names_makes_the_code_pass():
    adapter = {"style": "textbook", "layers": {"rnn": {"class": "TimeGRUAfter"}},
               "reset": "after"}
    report = gradcheck.check(TEXTBOOK, cell="gru", adapter=adapter, **SIZES)
    assert report.passed, report.format_table()
    doc = report.to_dict()
    assert doc["config"]["reset_after"] is True
    assert doc["skipped"] == ["bh"]          # its one bias: bh is zero and not compared


def test_an_option_against_the_declaration_is_a_usage_error():
    adapter = {"style": "textbook", "reset": "after"}
    with pytest.raises(gradcheck.UsageError, match=r'^reset_after=False: the adapter '
                       r'declares "reset": "after", which needs reset_after=True$'):
        gradcheck.check(TEXTBOOK, cell="gru", adapter=adapter, reset_after=False, **SIZES)


def test_code_of_the_contract_with_another_gate_order_is_told_to_use_the_contracts():
    from gradcheck._reference import cell_module
    reference = cell_module("lstm")

    def loss_and_grads(params, x, y, h0, c0, **options):      # blocks read as f, g, i, o
        mine = {n: from_code(n, p, {"gate_order": "fgio"}, "lstm") for n, p in params.items()}
        value, grads, h, c = reference.loss_and_grads(mine, x, y, h0, c0, **options)
        return value, grads, h, c
    report = gradcheck.check(loss_and_grads, cell="lstm", **SIZES)
    assert report.finding.kind == "lstm_convention_gate_order", report.diagnosis
    assert report.diagnosis.endswith(
        "uses gate order f, g, i, o (this check: gate order i, f, g, o); write it in the "
        "contract's convention, or check it through an adapter declaring \"gate_order\": "
        "\"fgio\".")


@pytest.mark.parametrize("cell,values", [
    ("lstm", {"gate_order": g}) for g in cell_of("lstm").conventions["gate_order"].values
] + [("gru", {"gate_order": g, "update": u})
     for g in cell_of("gru").conventions["gate_order"].values
     for u in cell_of("gru").conventions["update"].values])
def test_the_gradients_come_back_by_the_inverse_map(cell, values):
    rng = np.random.default_rng(0)
    n = len(cell_of(cell).conventions["gate_order"].contract)
    W = rng.standard_normal((3, 2 * n))
    code = to_code("Wx", W, values, cell)
    assert np.array_equal(from_code("Wx", code, values, cell), W)
    # orthogonal: <to_code(W), G> == <W, from_code(G)> for any G, so gradients map back
    G = rng.standard_normal(code.shape)
    assert np.isclose(np.sum(code * G), np.sum(W * from_code("Wx", G, values, cell)))
    assert np.array_equal(to_code("W1", W, values, cell), W)       # not a gate array


def test_the_gate_blocks_go_where_the_order_says():
    R = 2
    b = np.repeat(np.arange(4.0), R)                      # blocks i=0, f=1, g=2, o=3
    assert to_code("b", b, {"gate_order": "ifog"}, "lstm").tolist() == [0, 0, 1, 1, 3, 3, 2, 2]
    b = np.repeat(np.arange(1.0, 4.0), R)                 # blocks r=1, z=2, n=3
    assert to_code("b", b, {"gate_order": "zrn", "update": "z_takes"}, "gru").tolist() == [
        -2, -2, 1, 1, 3, 3]


@pytest.mark.parametrize("cell,adapter,message", [
    ("lstm", '{"style": "course", "gate_order": "ifgx"}',
     '--adapter gate_order=ifgx: "gate_order" of --cell lstm must be one of ifgo, ifog, fgio, '
     "igfo, iofg (ifgo: the contract's)"),
    ("gru", '{"style": "textbook", "update": "z"}',
     '--adapter update=z: "update" of --cell gru must be one of z_keeps, z_takes (z_keeps: the '
     "contract's)"),
    ("lstm", '{"style": "course", "update": "z_takes"}',
     '--adapter update=z_takes: "update" is not a convention of --cell lstm (its keys: '
     "gate_order, cell_state)"),
    ("rnn", '{"style": "course", "gate_order": "ifog"}',
     '--adapter gate_order=ifog: "gate_order" is not a convention of --cell rnn (its keys: '
     "none)"),
    ("gru", "course", "--adapter course: the course style has no --cell gru entries (styles "
                      "with them: textbook; or declare the layers yourself, see README, "
                      "Adapters)"),
    ("gru", '{"style": "textbook", "cell": "lstm"}',
     "--adapter cell=lstm: this declaration is for --cell lstm; the check's cell is gru"),
    ("lstm", '{"style": "cells", "layers": {}}',
     "--adapter cells: a cells declaration checks --cell rnn only; for --cell lstm, a layers "
     "or classes declaration (the course or textbook style)"),
], ids=["value", "value-gru", "other-cells-key", "rnn", "no-section", "cell", "cells-style"])
def test_a_bad_key_or_value_is_one_usage_line(cell, adapter, message, capsys):
    assert main(["--interval", "2", "--cell", cell, "--impl", COURSE, "--adapter", adapter]) == 2
    assert capsys.readouterr().err.strip() == f"gradcheck: error: {message}"


def test_course_code_sliced_in_another_order_is_named_by_that_order():
    module = _module(COURSE, "course", "lstm", GATES="iofg")
    report = gradcheck.check(module, adapter="course", cell="lstm", **SIZES)
    assert report.finding.kind == "lstm_convention_gate_order", report.diagnosis
    assert report.finding.evidence["convention"] == {"gate_order": "iofg"}
    assert gradcheck.check(module, adapter={"style": "course", "gate_order": "iofg"},
                           cell="lstm", **SIZES).passed


LAYER_SIZES = dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)


@pytest.mark.parametrize("layer,path,style,bug,kind", [
    ("lstm_step", COURSE, "course", None, None),
    ("lstm_step", COURSE, "course", "no_tanh_prime_c", "lstm_no_tanh_prime_c"),
    ("gru", TEXTBOOK, "textbook", None, None),
    ("gru", TEXTBOOK, "textbook", "gru_no_direct_path", "gru_no_direct_path"),
], ids=["lstm_step", "lstm_step-bug", "gru", "gru-bug"])
def test_a_styles_cell_layer_checked_by_itself(layer, path, style, bug, kind):
    from gradcheck.layer_check import check_layer
    cell = layer.split("_")[0]
    report = check_layer(layer, _module(path, style, cell, BUG=bug), adapter=style,
                         **LAYER_SIZES)
    assert report.passed is (bug is None), report.format_table()
    assert (report.finding and report.finding.kind) == kind, report.diagnosis


def test_the_layer_command_takes_the_course_lstm_step(capsys):
    assert main(["layer", "lstm_step", "--impl", COURSE, "--adapter", "course", "--batch",
                 "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]


@pytest.mark.parametrize("path,style,message", [
    (COURSE, "course", 'this code starts every call from zero further states (its '
                       'declaration\'s "cell_state": "reset"), so it cannot take the ones the '
                       'lstm layer check gives it; check lstm_step, or the whole window '
                       '(--cell lstm)'),
    (TEXTBOOK, "textbook", 'the declaration names no attribute holding dc0 ("dc0": ATTRIBUTE '
                           'in its "rnn" entry), which the lstm layer check compares; check '
                           'the whole window (--cell lstm), where it is skipped'),
], ids=["reset", "no-dc0"])
def test_a_cell_layer_the_code_cannot_give_is_one_usage_line(path, style, message, capsys):
    assert main(["layer", "lstm", "--impl", path, "--adapter", style]) == 2
    assert capsys.readouterr().err.strip() == f"gradcheck layer: error: --layer lstm: {message}"
