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


def test_the_steps_of_code_that_resets_c_are_not_named_wrongly():
    """Suffix windows cannot start the course code from c_{t-1} (it starts at c = 0): the
    weights' steps are not named (they were: every step, though the last step of a window
    is right for this bug), the report says why, and dx's steps are still named."""
    report = gradcheck.check(_module(COURSE, "course", "lstm", BUG="no_dnext_c"),
                             adapter="course", cell="lstm", **SIZES)
    assert report.finding.kind == "lstm_no_dc_next", report.diagnosis
    failing = [r for r in report.results if not r.passed and r.oracle == "jax"]
    assert {r.name for r in failing} >= {"Wx", "Wh", "b", "x"}
    assert all(r.steps is None for r in failing if r.name != "x")
    assert {r.window: r.steps for r in failing if r.name == "x"} == {1: [1, 2], 2: [4, 5]}
    assert report.skipped_calls == [
        "naming the time steps of dW1, db1, dWx, dWh, db: this code starts every call from "
        "c0 = 0, so it cannot be started from the state entering a later step, which "
        "attributing a step needs"]


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
        return value, {n: to_code(n, g, {"gate_order": "fgio"}, "lstm")
                       for n, g in grads.items()}, h, c
    report = gradcheck.check(loss_and_grads, cell="lstm", **SIZES)
    assert report.finding.kind == "lstm_convention_gate_order", report.diagnosis
    assert report.diagnosis.endswith(
        "uses gate order f, g, i, o (this check: gate order i, f, g, o); write it in the "
        "contract's convention, or declare it: --adapter '{\"gate_order\": \"fgio\"}' "
        "(adapter={\"gate_order\": \"fgio\"} in gradcheck.check).")
    declared = gradcheck.check(loss_and_grads, cell="lstm", adapter={"gate_order": "fgio"},
                               **SIZES)
    assert declared.passed, declared.format_table()


def _edited_loop(tmp_path, edits):
    """tests/impls/cells/lstm_loop.py with ``edits`` ((old, new) lines, each found once)
    made, as FILE.py of its own."""
    text = (Path(__file__).resolve().parent / "impls" / "cells" / "lstm_loop.py").read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "mine.py"
    path.write_text(text)
    return str(path)


# The loop-style LSTM read as blocks i, f, o, g: the forward's slices and the backward's
# concatenation, nothing else.
IFOG = [("g, o = np.tanh(z[:, 2 * R:3 * R]), sigmoid(z[:, 3 * R:])",
         "o, g = sigmoid(z[:, 2 * R:3 * R]), np.tanh(z[:, 3 * R:])"),
        ("dc * i * (1 - g ** 2), dh * tc * o * (1 - o)]",
         "dh * tc * o * (1 - o), dc * i * (1 - g ** 2)]")]
# ... and one that starts every call from c = 0: it takes no c0 and returns no c_last.
RESETS_C = [("def loss_and_grads(params, x, y, h0, c0, *,",
             "def loss_and_grads(params, x, y, h0, *,"),
            ("h, c, total, steps = h0, c0, 0.0, []",
             "h, c, total, steps = h0, np.zeros_like(h0), 0.0, []"),
            ("dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)",
             "dh_next, dc_next = np.zeros_like(h0), np.zeros_like(h0)"),
            ("grads.update(x=dx, h0=dh_next, c0=dc_next)", "grads.update(x=dx, h0=dh_next)"),
            ("return total, grads, h, c", "return total, grads, h")]


@pytest.mark.parametrize("edits, adapter, kind", [
    (IFOG, {"gate_order": "ifog"}, "lstm_convention_gate_order"),
    (RESETS_C, {"cell_state": "reset"}, "exception"),
], ids=["ifog", "resets-c"])
def test_a_contract_file_in_another_convention_passes_once_declared(tmp_path, capsys, edits,
                                                                     adapter, kind):
    """The whole window's own loss_and_grads, written in another convention: through the
    worker, told what to declare, then passing with what it declared; on the command
    line too. Code that resets c is called without c0, and c0 and c_last are skipped."""
    path = _edited_loop(tmp_path, edits)
    report = gradcheck.check(path, cell="lstm", **SIZES)
    assert report.finding.kind == kind, report.diagnosis
    declared = gradcheck.check(path, cell="lstm", adapter=adapter, **SIZES)
    assert declared.passed, declared.format_table()
    assert declared.isolation["isolated"]
    if "cell_state" in adapter:
        assert set(declared.skipped) >= {"c0", "c_last"}
    assert main(["--cell", "lstm", *FLAGS, "--impl", path, "--adapter", json.dumps(adapter),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]


def test_a_wrong_gradient_under_a_declared_convention_fails_with_its_diagnosis(tmp_path):
    """The declaration maps arrays, never hides a mistake: the i, f, o, g file without
    dc_next fails, and the zoo's diagnosis names it."""
    path = _edited_loop(tmp_path, IFOG + [("        dc = dh * o * (1 - tc ** 2) + dc_next",
                                          "        dc = dh * o * (1 - tc ** 2)")])
    report = gradcheck.check(path, cell="lstm", adapter={"gate_order": "ifog"}, **SIZES)
    assert not report.passed
    assert report.finding.kind == "lstm_no_dc_next", report.diagnosis


def test_a_declared_contract_file_s_gradient_that_is_no_array_is_told_as_such(tmp_path):
    """What the code returns for a blocked array is mapped back only when it is an array
    of its blocks; anything else reaches the check as it is, which names it (it was an
    IndexError inside the adapter)."""
    path = _edited_loop(tmp_path, IFOG + [("grads.update(x=dx, h0=dh_next, c0=dc_next)",
                                          "grads.update(x=dx, h0=dh_next, c0=dc_next, "
                                          "Wx=\"nope\")")])
    report = gradcheck.check(path, cell="lstm", adapter={"gate_order": "ifog"}, **SIZES)
    assert report.finding.kind == "return_value", report.diagnosis
    assert ("grads['Wx'] holds strings (dtype <U4); expected real floats (float32 or "
            "float64)") in report.diagnosis


def test_a_gru_of_the_contract_in_blocks_z_r_n_passes_once_declared():
    """A whole-window GRU whose Wx, Wh and b hold the blocks z, r, n (swapped by hand
    around the reference: the swap is its own inverse), in-process."""
    from gradcheck._reference import cell_module
    reference = cell_module("gru")

    def zr_swapped(a):
        R = a.shape[-1] // 3
        return np.concatenate([a[..., R:2 * R], a[..., :R], a[..., 2 * R:]], axis=-1)

    def loss_and_grads(params, x, y, h0, **options):
        mine = {n: zr_swapped(p) if n in ("Wx", "Wh", "b") else p for n, p in params.items()}
        value, grads, h = reference.loss_and_grads(mine, x, y, h0, **options)
        return value, {n: zr_swapped(g) if n in ("Wx", "Wh", "b") else g
                       for n, g in grads.items()}, h
    report = gradcheck.check(loss_and_grads, cell="gru", **SIZES)
    assert report.finding.kind == "gru_convention_gate_order", report.diagnosis
    declared = gradcheck.check(loss_and_grads, cell="gru", adapter={"gate_order": "zrn"},
                               **SIZES)
    assert declared.passed, declared.format_table()


def test_conventions_alone_with_a_module_s_layers_is_one_usage_line():
    from gradcheck.layer_check import check_layer
    with pytest.raises(gradcheck.UsageError, match=r"a declaration of conventions alone goes "
                       r"with the layer's own two functions"):
        check_layer("lstm", COURSE, adapter={"gate_order": "ifog"}, batch=4, interval=2)


@pytest.mark.parametrize("reset_after", [True, False])
def test_code_of_the_contract_with_the_other_reset_is_told_the_option(reset_after):
    """Checked with reset_after, code of the reset before (it ignores bh) is named by the
    reset convention, and told the option, the contract's own form of it (and vice versa:
    code of the reset after with bh = 0 when it has none)."""
    import numpy as np
    from gradcheck._reference import cell_module
    reference = cell_module("gru")

    def loss_and_grads(params, x, y, h0, **options):
        mine = {n: p for n, p in params.items() if n != "bh"}
        if not reset_after:                            # the reset after, with bh = 0
            mine["bh"] = np.zeros_like(params["b"])
        value, grads, h = reference.loss_and_grads(mine, x, y, h0, **options)
        if reset_after:
            grads["bh"] = np.zeros_like(params["bh"])        # ignored: its gradient zero
        else:
            del grads["bh"]
        return value, grads, h
    report = gradcheck.check(loss_and_grads, cell="gru", reset_after=reset_after, **SIZES)
    assert report.finding.kind == "gru_convention_reset", report.diagnosis
    assert report.diagnosis.endswith(
        f"write it in the contract's convention, or check it "
        f"{'without' if reset_after else 'with'} --reset-after (reset_after="
        f"{not reset_after} in gradcheck.check).")


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
LAYER_FLAGS = [a for k, v in LAYER_SIZES.items() for a in (f"--{k.replace('_', '-')}", str(v))]


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
    assert main(["layer", "lstm_step", "--impl", COURSE, "--adapter", "course", *LAYER_FLAGS,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]


# The course style's lstm_forward starts c at zero in every call and takes no c0; the textbook
# TimeLSTM takes c0 (set_state) but keeps no dc0: c0 is given as zero to the first only, and
# dc0 is skipped for both, as in the whole window.
LSTM_LAYER = [(COURSE, "course"), (TEXTBOOK, "textbook")]


@pytest.mark.parametrize("path,style", LSTM_LAYER, ids=["course", "textbook"])
def test_the_styles_lstm_layer_passes_with_dc0_skipped(path, style, capsys):
    assert main(["layer", "lstm", "--impl", path, "--adapter", style, *LAYER_FLAGS,
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["skipped"] == ["c0"]
    assert "c0" not in {r["name"] for r in doc["results"]}
    assert {"a", "h0", "Wx", "Wh", "b"} <= {r["name"] for r in doc["results"]}


def test_the_textbook_lstm_layer_is_given_c0():
    """c0 is zero only for code that resets it: a TimeLSTM that drops the c0 it is given
    disagrees in its forward."""
    module = _module(TEXTBOOK, "textbook", "lstm")
    module.TimeLSTM.set_state = lambda self, h, c=None: setattr(self, "h", h)
    from gradcheck.layer_check import check_layer
    report = check_layer("lstm", module, adapter="textbook", **LAYER_SIZES)
    assert not report.passed
    assert "h" in report.finding.evidence["arrays"], report.diagnosis


NOT_NAMED = ("naming the time steps of dWx, dWh, db: this code starts every call from c0 = 0, "
             "so it cannot be started from the state entering a later step, which attributing "
             "a step needs")
LSTM_LAYER_BUGS = [
    # (path, style, bug, kind, the steps of da, of dWx: None when they cannot be named)
    (COURSE, "course", "no_dnext_c", "lstm_no_dc_next", [1, 2], None),
    (COURSE, "course", "no_tanh_prime_c", "lstm_no_tanh_prime_c", [1, 2, 3], None),
    (TEXTBOOK, "textbook", "lstm_df_with_c_t", "lstm_forget_grad_with_c_t", [1, 2, 3],
     [1, 2, 3]),
]


@pytest.mark.parametrize("path,style,bug,kind,da_steps,dWx_steps", LSTM_LAYER_BUGS,
                         ids=[b[2] for b in LSTM_LAYER_BUGS])
def test_a_zoo_bug_in_the_styles_lstm_layer_fails_with_its_diagnosis(path, style, bug, kind,
                                                                     da_steps, dWx_steps):
    """Steps of the weights come from windows started at a later step's state: code that
    resets c cannot run them, and the report says so rather than naming wrong steps."""
    from gradcheck.layer_check import check_layer
    report = check_layer("lstm", _module(path, style, "lstm", BUG=bug), adapter=style,
                         **LAYER_SIZES)
    assert not report.passed and report.skipped == ["c0"]
    assert report.finding.kind == kind, report.diagnosis
    steps = report.finding.evidence["steps"]
    assert steps["a"] == da_steps and steps.get("Wx") == dWx_steps
    assert report.skipped_calls == ([NOT_NAMED] if dWx_steps is None else [])


def test_the_layer_command_fails_a_course_lstm_bug(tmp_path, capsys):
    buggy = tmp_path / "rnn_layers.py"
    text = Path(COURSE).read_text()
    assert text.count("\nBUG = None") == 1
    buggy.write_text(text.replace("\nBUG = None", '\nBUG = "no_dnext_c"'))
    argv = ["layer", "lstm", "--impl", str(buggy), "--path", str(STYLES_DIR), "--adapter",
            "course", *LAYER_FLAGS]
    assert main(argv + ["--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["diagnosis_kind"] == "lstm_no_dc_next"
    assert doc["skipped_calls"] == [NOT_NAMED]
    assert main(argv) == 1
    assert f"skipped: {NOT_NAMED}" in capsys.readouterr().out


# A declaration naming another convention than the code's, in a layer checked by itself: the
# diagnosis of the whole window, and the declaration it names makes the layer pass.
WRONG_LAYER = [
    ("lstm_step", COURSE, {"style": "course", "gate_order": "ifgo"}, {"gate_order": "ifog"}),
    ("lstm", COURSE, {"style": "course", "gate_order": "fgio"}, {"gate_order": "ifog"}),
    ("lstm", COURSE, {"style": "course", "cell_state": "carried"}, {"cell_state": "reset"}),
    ("gru", TEXTBOOK, {"style": "textbook", "gate_order": "rzn"}, {"gate_order": "zrn"}),
    ("gru", TEXTBOOK, {"style": "textbook", "update": "z_keeps"}, {"update": "z_takes"}),
    ("gru", TEXTBOOK, {"style": "textbook", "layers": {"rnn": {"class": "TimeGRUAfter"}}},
     {"reset": "after"}),
    ("gru", TEXTBOOK, {"style": "textbook", "reset": "after"}, {"reset": "before"}),
    ("gru", TEXTBOOK, {"style": "textbook", "gate_order": "rzn", "update": "z_keeps"},
     {"gate_order": "zrn", "update": "z_takes"}),
]


@pytest.mark.parametrize("layer,path,adapter,found", WRONG_LAYER,
                         ids=[f"{w[0]}-{'-'.join(w[3].values())}" for w in WRONG_LAYER])
def test_a_wrong_convention_in_a_layer_is_named_with_its_key(layer, path, adapter, found,
                                                              capsys):
    cell = layer.split("_")[0]
    assert main(["layer", layer, "--impl", path, "--adapter", json.dumps(adapter),
                 *LAYER_FLAGS, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    key = next(iter(found))
    assert doc["diagnosis_kind"] == f"{cell}_convention_{key}", doc["diagnosis"]
    assert doc["diagnosis_detail"]["group"] == "contract"
    assert doc["diagnosis_detail"]["evidence"]["convention"] == found
    keys = ", ".join(f'"{k}": "{v}"' for k, v in found.items())
    assert doc["diagnosis"].endswith(f"declare {keys} in the adapter.")
    assert "the forward disagrees with JAX and it is not a wrong gradient" in doc["diagnosis"]
    assert main(["layer", layer, "--impl", path, "--adapter", json.dumps(adapter),
                 "--adapter", json.dumps(found), *LAYER_FLAGS, "--json"]) == 0
    passed = json.loads(capsys.readouterr().out)
    assert passed["passed"]
    assert passed["config"].get("reset_after", False) is (found.get("reset") == "after")


def test_a_declared_reset_after_gives_the_one_bias_code_bh_as_zero():
    from gradcheck.layer_check import check_layer
    report = check_layer("gru", _module(TEXTBOOK, "textbook", "gru"), adapter={
        "style": "textbook", "reset": "after", "layers": {"rnn": {"class": "TimeGRUAfter"}}},
        **LAYER_SIZES)
    assert report.passed, report.format_table()
    assert report.skipped == ["bh"] and "bh" not in {r.name for r in report.results}


@pytest.mark.parametrize("argv,message", [
    (["--adapter", '{"style": "textbook", "reset": "before"}', "--reset-after"],
     '--reset-after: the adapter declares "reset": "before", which needs reset_after=False'),
    (["--adapter", '{"style": "textbook", "reset": "after"}', "--reset-after"], None),
], ids=["against", "agreeing"])
def test_a_declared_reset_against_the_flag_is_a_usage_error(argv, message, capsys):
    code = main(["layer", "gru", "--impl", TEXTBOOK, *LAYER_FLAGS] + argv)
    if message is None:          # TimeGRU is before: a verdict, not a usage error
        assert code == 1
    else:
        assert code == 2
        assert capsys.readouterr().err.strip() == f"gradcheck layer: error: {message}"
