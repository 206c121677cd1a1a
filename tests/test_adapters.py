"""Code written the way people write it (tests/impls/styles/, written here from the styles'
public descriptions), checked through adapters: no false alarm in float64 and float32 over
several windows; each injected bug caught with the right diagnosis; --skip; options the
code declines are "not supported"; the declaration is plain JSON and its errors are plain."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from gradcheck import adapters
from gradcheck.cli import main
from tests.helpers import SMALL, assert_figures_agree

STYLES_DIR = Path(__file__).resolve().parent / "impls" / "styles"
FILES = {"course": "course.py", "textbook": "textbook.py", "cell": "cell.py",
         "function": "minchar.py"}
# several windows, the last one shorter; small sizes (the function style fixes B = 1, H = I)
SIZES = dict(interval=3, seq_len=7, input_size=3, state_size=3, output_size=5)
LAYERED = dict(SIZES, batch=4, hidden_size=4)
FLAGS = [a for k, v in LAYERED.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _module(style, **globals_):
    """A fresh copy of the style's module (each load re-executes it), globals set."""
    module = adapters._module_of(str(STYLES_DIR / FILES[style]), adapters.declaration(style))
    for k, v in globals_.items():
        setattr(module, k, v)
    return module


def _sizes(style):
    return SIZES if style == "function" else LAYERED


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("style", FILES)
def test_correct_code_of_each_style_passes(style, dtype):
    report = gradcheck.check(_module(style), adapter=style, dtype=dtype, **_sizes(style))
    assert report.passed, report.format_table()
    assert len(report.windows) == 3


BUGS = [
    ("course", "BUG", "first_step_last_state",
     r"Only dU disagrees: dU's term of the window's first step is built from the wrong state"
     r".*LAST state.*in step 1 alone"),
    ("course", "BUG", "float32_buffer",
     r"float32 rounding level.*computes in float32.*--dtype float32"),
    ("course", "BUG", "dh_next_U_untransposed",
     r"through U instead of U\^T.*transposed U in the state's derivative"),
    ("course", "BUG", "no_dh_next", r"state derivative is not passed back through time"),
    ("course", "BUG", "dWh_from_next_h", r"Only dU disagrees.*dU is built from h_t instead of "
                                         r"h_\{t-1\}"),
    ("course", "BUG", "dh_next_halved",
     r"^Unclear: W1, b1, W2, U, b2, x, h0 disagree at every step but the last.*no candidate "
     r"mistake tested.*reproduces the numbers"),
    ("textbook", "BUG", "dh_next_skips_f2",
     r"^W1, b1, W2, U, b2, x, h0 disagree: the state's derivative is passed back without "
     r"f2'.*reproduces the numbers"),
    ("cell", "BUG", "dx_skips_f1",
     r"^Only dx disagrees at steps \[1, 2, 3, 4, 5, 6, 7\]: dx misses f1'\(z1\).*reproduces "
     r"the numbers"),
    ("textbook", "BUG", "grads_not_reset",
     r"from window 2 dW2, dU, db2 disagree while dx, dh0 and the first layer agree: the "
     r"weight-gradient buffers are not reset between windows"),
    ("cell", "BUG", "dx_missing_f1", r"first dense layer's backward.*misses f1'\(z1\)"),
    ("cell", "BUG", "l2_without_half",
     r"2x JAX's: l2 is 0\.5 \* sum of squares.*factor of 2 in every gradient, not a wrong "
     r"reduction"),
    ("cell", "BUG", "dU_transposed", r"dU is transposed"),
    ("function", "CLIP", 0.05, r"clipped inside the code.*\+-0\.05"),
]


@pytest.mark.parametrize("style,name,value,diagnosis", BUGS,
                         ids=[f"{b[0]}-{b[2]}" for b in BUGS])
def test_injected_bug_is_caught_with_its_diagnosis(style, name, value, diagnosis):
    report = gradcheck.check(_module(style, **{name: value}), adapter=style, **_sizes(style))
    assert not report.passed
    assert re.search(diagnosis, report.diagnosis), report.diagnosis


# Textbook-style layers that compute and keep their gradients in float32 (DTYPE), in a
# float64 check: alone, and with buffers that are not reset, a bug seen only from window 2.
@pytest.mark.parametrize("bug,kind", [(None, "float32"), ("grads_not_reset", "buffers_not_reset")])
def test_float32_layers_are_judged_over_every_window_and_array(bug, kind):
    report = gradcheck.check(_module("textbook", DTYPE=np.float32, BUG=bug),
                             adapter="textbook", **LAYERED)
    finding = report.finding
    assert not report.passed and finding.kind == kind, report.diagnosis
    assert_figures_agree(finding)
    if bug is None:          # every window and array is at float32 level, and says so
        assert finding.evidence["windows"] == [1, 2, 3]
        assert "float32 rounding level" in report.diagnosis
        return
    # a real bug beside float32 rounding is the diagnosis, the float32 part a second finding
    assert "float32" not in report.diagnosis.split("(up to float32 rounding)")[1]
    assert re.search(r"from window 2 dW2, dU, db2 disagree.*buffers are not reset",
                     report.diagnosis)
    assert finding.second.kind == "float32"
    assert "float32 rounding level only" in finding.second.text
    assert {(w, n) for w in (2, 3) for n in ("W2", "U", "b2")} <= {
        (r.window, r.name) for r in report.failures}
    doc = report.to_dict()
    assert doc["diagnosis_detail"]["second"]["kind"] == "float32"
    assert "second finding: Besides" in report.format_table()


def test_a_float32_buffer_quotes_figures_within_its_allowance():
    report = gradcheck.check(_module("course", BUG="float32_buffer"), adapter="course",
                             **LAYERED)
    assert report.finding.kind == "float32" and report.finding.second is None
    assert_figures_agree(report.finding)


def test_first_step_bug_is_attributed_to_each_windows_first_step_alone():
    report = gradcheck.check(_module("course", BUG="first_step_last_state"), adapter="course",
                             **LAYERED)
    u = {r.window: r.steps for r in report.failures if r.name == "U" and r.oracle == "jax"}
    assert u == {1: [1], 2: [4], 3: [7]}


def test_not_reset_buffers_agree_in_window_1_only():
    report = gradcheck.check(_module("textbook", BUG="grads_not_reset"), adapter="textbook",
                             **LAYERED)
    assert {(r.window, r.name) for r in report.failures} >= {(2, "W2"), (2, "U"), (2, "b2")}
    assert not {r.name for r in report.failures} & {"x", "h0", "W1"}
    assert all(r.window > 1 for r in report.failures)


def test_function_style_skips_what_it_does_not_compute():
    report = gradcheck.check(_module("function"), adapter="function", **SIZES)
    doc = report.to_dict()
    assert doc["skipped"] == ["W1", "b1", "x", "h0"]
    assert not {r["name"] for r in doc["results"]} & set(doc["skipped"])
    assert doc["config"]["batch"] == 1 and doc["status"] == "passed"


def test_skip_reports_skipped_arrays_never_as_passed(capsys):
    flags = FLAGS
    assert main(flags + ["--skip", "x,h0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["skipped"] == ["x", "h0"]
    assert not {r["name"] for r in doc["results"]} & {"x", "h0"}
    assert main(flags + ["--skip", "x,h7"]) == 2
    assert capsys.readouterr().err.strip() == (
        "gradcheck: error: --skip h7: expected gradient names among W1, b1, W2, U, b2, W3, "
        "b3, x, h0")


def test_an_option_the_code_declines_is_not_supported(capsys):
    spec = str(STYLES_DIR / "course.py")
    assert main(["--interval", "2", "--batch", "3", "--impl", spec, "--adapter", "course",
                 "--loss", "l2"]) == 1
    out = capsys.readouterr().out
    assert "NOT SUPPORTED: NotImplementedError: this code computes loss ce" in out
    report = gradcheck.check(spec, adapter="course", loss="bce", batch=3, interval=2)
    assert report.status == "not_supported" and not report.passed


def test_the_declaration_is_plain_json_and_a_file_works(tmp_path, capsys):
    decl = adapters.declaration({"style": "course", "layout": "batch_first"})
    assert adapters.declaration(json.loads(json.dumps(decl))) == decl
    path = tmp_path / "adapter.json"
    path.write_text(json.dumps(decl))
    assert main(FLAGS + ["--impl", str(STYLES_DIR / "course.py"), "--adapter", str(path)]) == 0


@pytest.mark.parametrize("adapter,message", [
    ("nope", "--adapter nope: expected a style (course, textbook, cell, function), a JSON "
             "object or a .json file"),
    ('{"style": "lstm"}', "--adapter lstm: style must be one of course, textbook, cell, "
                          "function, layers, classes, cells, contract"),
    ('{"layout": "batch_first"}', '--adapter {"layout": "batch_first"}: names no "style" (one '
                                  'of course, textbook, cell, function, layers, classes, '
                                  'cells, contract), and not only a cell\'s conventions (the '
                                  'contract\'s own loss_and_grads in other conventions: '
                                  'gate_order, cell_state, update, reset)'),
], ids=["name", "style", "no-style"])
def test_bad_adapter_is_one_line(adapter, message, capsys):
    assert main(["--interval", "2", "--impl", str(STYLES_DIR / "course.py"),
                 "--adapter", adapter]) == 2
    assert capsys.readouterr().err.strip() == f"gradcheck: error: {message}"


def test_adapter_needs_impl(capsys):
    assert main(["--interval", "2", "--adapter", "course"]) == 2
    assert "--adapter needs --impl" in capsys.readouterr().err


@pytest.mark.parametrize("style,layer", [("course", "rnn"), ("course", "rnn_step"),
                                         ("course", "loss"), ("textbook", "rnn"),
                                         ("textbook", "dense2"), ("cell", "rnn_step"),
                                         ("cell", "dense1"), ("cell", "dense2"), ("cell", "loss")])
def test_a_style_layer_checked_by_itself(style, layer):
    from gradcheck.layer_check import check_layer
    acts = adapters.supported(adapters.declaration(style))[1]
    loss = adapters.supported(adapters.declaration(style))[0]
    report = check_layer(layer, _module(style), adapter=style, activations=acts, loss=loss,
                         batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)
    assert report.passed, report.format_table()


def test_a_style_layer_bug_names_layer_array_and_step():
    from gradcheck.layer_check import check_layer
    report = check_layer("rnn", _module("course", BUG="first_step_last_state"),
                         adapter="course", activations=("identity", "tanh", "identity"),
                         batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)
    assert re.search(r"Layer rnn .*only dU disagrees.*step 1 alone", report.diagnosis)


EMBEDDING = {"style": "textbook", "input": "ids",
             "layers": {"dense1": {"class": "TimeEmbedding", "args": ["W1"]}}}
CELL_INSIDE = {"style": "cell", "h0": "zeros", "carries_state": True, "params": "parameters",
               "grads": "gradients", "zero": "flush",
               "options": {"activations": ["identity", "tanh", "identity"]},
               "layers": {"dense1": None,
                          "rnn": {"class": "Cell", "args": ["U", "b2", "W2", "b2:zeros"],
                                  "keys": ["Waa", "ba", "Wax", "bx"],
                                  "kwargs": {"n_out": "R:size"}},
                          "dense2": {"class": "Dense", "args": ["W3", "b3"]}}}


# The same cell, given each window's h0 and read back dh0 through its declared attributes.
CELL_STATE = dict({k: v for k, v in CELL_INSIDE.items() if k != "h0"},
                  state={"h0": "a0", "dh0": "dA_next"})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path,decl,sizes,skipped", [
    ("textbook_embedding.py", EMBEDDING, LAYERED, ["b1", "x"]),
    ("cell_inside.py", CELL_INSIDE, dict(SIZES, batch=4), ["W1", "b1", "h0"]),
    ("cell_inside.py", CELL_STATE, dict(SIZES, batch=4), ["W1", "b1"]),
], ids=["embedding-ids-no-bias", "cell-state-inside-two-biases", "cell-state-given-h0"])
def test_declared_variations_pass(path, decl, sizes, skipped, dtype):
    report = gradcheck.check(str(STYLES_DIR / path), adapter=json.loads(json.dumps(decl)),
                             dtype=dtype, **sizes)
    assert report.passed, report.format_table()
    assert report.skipped == skipped


@pytest.mark.parametrize("style,kwargs,message", [
    ("function", {"batch": 4}, "batch=4: this code takes batch 1 only"),
    ("function", {"hidden_size": 7}, "hidden_size=7: this code has no first dense layer (a = "
                                     "x), so H must equal I = 3"),
], ids=["batch", "hidden"])
def test_sizes_the_code_cannot_take_are_usage_errors(style, kwargs, message):
    with pytest.raises(gradcheck.UsageError, match="^" + re.escape(message)):
        gradcheck.check(_module(style), adapter=style, **dict(SIZES, **kwargs))


# ------------------------------------------------ a NumPy library's layers, no glue code

LIBRARY = STYLES_DIR / "library.json"


def _library(*overrides):
    return adapters.read_declaration([str(LIBRARY), *map(json.dumps, overrides)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_library_layers_pass_from_a_json_declaration(dtype):
    """Constructed from sizes, parameters written after construction, [1, n] row biases,
    whole-sequence layers, a reset method of each layer's own name."""
    report = gradcheck.check(str(STYLES_DIR / "library.py"), adapter=_library(), dtype=dtype,
                             **LAYERED)
    assert report.passed, report.format_table()
    assert report.skipped == [] and len(report.windows) == 3


def test_library_from_the_command_line_with_an_inline_override(capsys):
    argv = FLAGS + ["--impl", str(STYLES_DIR / "library.py"), "--adapter", str(LIBRARY)]
    assert main(argv) == 0
    override = json.dumps({"layers": {"rnn": {"reset": None}}})     # forget one reset
    assert main(argv + ["--adapter", override]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^  (W2|U|b2) \(windows 2-3\)", out, re.MULTILINE), out


def test_a_row_bias_declared_as_a_vector_is_a_shape_verdict():
    decl = _library({"layers": {"dense1": {"set": {"b": "b1"}, "get": {"db": "b1"}}}})
    report = gradcheck.check(str(STYLES_DIR / "library.py"), adapter=decl, **LAYERED)
    assert not report.passed
    assert any("grads['b1'] has shape (1, 4); expected (4,)" in r.message
               for r in report.failures), report.format_table()


@pytest.mark.parametrize("layer", ["dense1", "rnn", "dense2", "loss"])
def test_library_layers_checked_by_themselves_name_the_users_code(layer):
    from gradcheck.layer_check import check_layer
    decl = _library()
    loss, acts, _ = adapters.supported(decl)
    report = check_layer(layer, str(STYLES_DIR / "library.py"), adapter=decl, loss=loss,
                         activations=acts, batch=4, input_size=3, hidden_size=4,
                         state_size=3, output_size=5)
    assert report.passed, report.format_table()
    assert report.impl.startswith(f"{STYLES_DIR / 'library.py'}: ")
    assert "<locals>" not in report.impl


@pytest.mark.parametrize("layer", ["rnn_step", "rnn"])
def test_a_cell_that_keeps_its_state_is_checked_by_itself(layer):
    """Its declared attributes give it h0 and read dh0; its size keyword, its parameter
    dict's keys and the bias passed as zeros (no gradient kept) are honoured as in the
    whole-window check."""
    from gradcheck.layer_check import check_layer
    decl = json.loads(json.dumps(CELL_STATE))
    report = check_layer(layer, str(STYLES_DIR / "cell_inside.py"), adapter=decl,
                         activations=("identity", "tanh", "identity"), batch=4, input_size=3,
                         hidden_size=4, state_size=3, output_size=5)
    assert report.passed, report.format_table()
    assert {r.name for r in report.results} >= {"h_prev" if layer == "rnn_step" else "h0"}


def test_a_cell_that_keeps_its_state_without_its_attributes_is_a_usage_error():
    from gradcheck.layer_check import check_layer
    with pytest.raises(gradcheck.UsageError, match=r"^adapter='carries_state': a cell that "
                                                   r"keeps its own state is checked by itself"):
        check_layer("rnn_step", str(STYLES_DIR / "cell_inside.py"),
                    adapter=json.loads(json.dumps(CELL_INSIDE)), batch=4)


METHOD = {"style": "function", "function": "loss_fun",
          "object": {"class": "RNN", "kwargs": {"hidden_size": "R:size", "vocab_size": "O:size"}}}


def test_a_function_style_method_of_an_object_built_from_declared_arguments():
    report = gradcheck.check(str(STYLES_DIR / "minchar_class.py"), adapter=METHOD,
                             **dict(SIZES, output_size=3))
    assert report.passed, report.format_table()
    assert len(report.windows) == 3


def test_without_its_object_the_method_is_not_found():
    plain = {k: v for k, v in METHOD.items() if k != "object"}
    with pytest.raises(gradcheck.UsageError, match=r"loss_fun"):
        gradcheck.check(str(STYLES_DIR / "minchar_class.py"), adapter=plain, **SIZES)


PKGROOT = STYLES_DIR / "pkgroot"


def _gradcheck_in(folder, *argv):
    import os
    import subprocess
    import sys
    script = Path(sys.executable).with_name("gradcheck")     # as a user runs it
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gradcheck"]
    return subprocess.run([*command, "--interval", "2", "--batch", "2", *argv], cwd=folder,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)


def test_code_that_imports_its_own_package_runs_in_the_module_form():
    done = _gradcheck_in(PKGROOT, "--impl", "models.rnn:loss_and_grads")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PASSED")


def test_its_file_form_says_to_use_the_module_form():
    done = _gradcheck_in(PKGROOT, "--impl", "models/rnn.py")
    assert done.returncode == 2
    assert "No module named 'common'" in done.stderr
    assert "from the package's root as --impl PACKAGE.MODULE:FUNC" in done.stderr


# Code whose adapter-made calls fail: the blame names the user's code (its frame that
# raised, or the declaration's key and what the code lacks), never gradcheck's own files.
USER_CODE = '''from textbook import *  # noqa: F401,F403
from textbook import TimeRNN as _TimeRNN


class RaisingRNN(_TimeRNN):
    def set_state(self, h):
        raise ValueError("no state today")


class PropertyRNN(_TimeRNN):
    @property
    def set_state(self):
        raise AttributeError("a property of the user's")
'''
# case: (the declaration's override, the diagnosis's kind, what it says after its lead)
WRONG_DECLARATIONS = {
    "missing_method": ({"layers": {"rnn": {"set_state": "load_state"}}}, "declaration",
                       'adapter key "set_state": TimeRNN has no method "load_state"'),
    "user_method_raises": ({"layers": {"rnn": {"class": "RaisingRNN"}}}, "exception",
                           "raised ValueError: no state today at user_code.py:7 in set_state"),
    "user_property_raises": ({"layers": {"rnn": {"class": "PropertyRNN"}}}, "exception",
                             "raised AttributeError: a property of the user's at "
                             "user_code.py:13 in set_state"),
}
# The leads of the two kinds, in the whole window and in a layer check.
WINDOW_LEAD = {"declaration": "The adapter declaration does not match the code",
               "exception": "The implementation raised an exception"}
LAYER_LEAD = {"declaration": "Layer rnn: the adapter declaration does not match the code",
              "exception": "Layer rnn raised an exception"}


@pytest.fixture
def user_code(tmp_path):
    (tmp_path / "textbook.py").write_text((STYLES_DIR / "textbook.py").read_text())
    path = tmp_path / "user_code.py"
    path.write_text(USER_CODE)
    return str(path)


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in_process"])
@pytest.mark.parametrize("case", WRONG_DECLARATIONS)
def test_a_failing_adapter_made_call_blames_the_users_code(user_code, case, in_process):
    override, kind, blame = WRONG_DECLARATIONS[case]
    report = gradcheck.check(user_code, adapter=dict(override, style="textbook"),
                             in_process=in_process, **LAYERED)
    assert not report.passed and report.finding.kind == kind
    assert report.diagnosis == f"{WINDOW_LEAD[kind]}: {blame} (window 1)."
    assert {r.name for r in report.failures} == {kind}
    assert "adapters.py" not in json.dumps(report.to_dict())


@pytest.mark.parametrize("case", WRONG_DECLARATIONS)
def test_a_failing_adapter_made_call_in_a_layer_check_blames_the_users_code(user_code, case):
    from gradcheck.layer_check import check_layer
    override, kind, blame = WRONG_DECLARATIONS[case]
    report = check_layer("rnn", user_code, adapter=dict(override, style="textbook"),
                         activations=adapters.supported(adapters.declaration("textbook"))[1],
                         **SMALL)
    assert report.finding.kind == kind
    assert report.diagnosis == f"{LAYER_LEAD[kind]}: {blame}."


# A class or function the declaration names that the module lacks: a usage line when the
# code loads (exit 2), whichever entry names it, never a verdict from inside a call.
MISSING_NAMES = {
    "first_layer_class": ("textbook", {"layers": {"dense1": {"class": "Dense"}}},
                          'adapter key "class": user_code.py has no class "Dense"'),
    "rnn_class": ("textbook", {"layers": {"rnn": {"class": "TimeRnn"}}},
                  'adapter key "class": user_code.py has no class "TimeRnn"'),
    "backward_function": ("course", {"layers": {"rnn": {"backward": "rnn_back"}}},
                          'adapter key "backward": user_code.py has no function "rnn_back"'),
    "loss_function": ("cell", {"layers": {"loss": {"function": "l2"}}},
                      'adapter key "function": user_code.py has no function "l2"'),
    "function_style": ("function", {"function": "loss_fun"},
                       'adapter key "function": user_code.py has no function "loss_fun"'),
}


# Each case run as a whole window in a worker and in-process, and as a layer check of the
# entry that names it (a function declaration has no layers).
MISSING_RUNS = [(case, run) for case in MISSING_NAMES for run in ("worker", "in_process", "layer")
                if not (run == "layer" and MISSING_NAMES[case][0] == "function")]


@pytest.mark.parametrize(("case", "run"), MISSING_RUNS, ids=[f"{c}-{r}" for c, r in MISSING_RUNS])
def test_a_name_the_declaration_gives_that_the_module_lacks_is_one_usage_line(case, run,
                                                                              tmp_path, capsys):
    style, override, line = MISSING_NAMES[case]
    path = tmp_path / "user_code.py"
    path.write_text((STYLES_DIR / FILES[style]).read_text())
    decl = json.dumps(dict(override, style=style))
    if run == "layer":
        argv = ["layer", next(iter(override["layers"])), "--impl", str(path), "--adapter", decl]
    else:
        flags = [a for k, v in _sizes(style).items()
                 for a in (f"--{k.replace('_', '-')}", str(v))]
        argv = flags + ["--impl", str(path), "--adapter", decl] + (
            ["--in-process"] if run == "in_process" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"user_code.py: {line}\n") and err.count("\n") == 1, err


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in_process"])
def test_what_only_the_adapter_saw_fail_is_said_to_be_on_what_the_code_returned(tmp_path,
                                                                                 in_process):
    (tmp_path / "course.py").write_text((STYLES_DIR / "course.py").read_text())
    (tmp_path / "returns_none.py").write_text(
        "from course import *  # noqa: F401,F403\n\n\n"
        "def rnn_forward(x, h0, Wx, Wh, b):\n    return None\n")
    report = gradcheck.check(str(tmp_path / "returns_none.py"), adapter="course",
                             in_process=in_process, **LAYERED)
    assert ("raised TypeError: cannot unpack non-iterable NoneType object, in the adapter, on "
            "what your code returned (window 1)") in report.diagnosis
    assert "adapters.py" not in json.dumps(report.to_dict())


# A declared backward that gives no gradient for an input (None) or fewer values than its
# "grads" names: the gradient is said to be missing, in a layer check and the whole window.
NO_GRADIENT = {
    "none": ("    return (*_rnn_backward(dh, cache)[:1], None, *_rnn_backward(dh, cache)[2:])",
             "Layer rnn (the RNN over a window of T steps): backward returned no dh0 (None).",
             "grads has keys W3, b3, W2, U, b2, W1, b1, x; expected W1, b1, W2, U, b2, W3, b3, "
             "x, h0 (missing h0)"),
    "fewer": ("    return _rnn_backward(dh, cache)[:4]",
              'Layer rnn: the adapter declaration does not match the code: adapter key '
              '"grads": rnn_backward returned 4 values; the declaration names 5 (a, h0, W2, '
              'U, b2).',
              'adapter key "grads": rnn_backward returned 4 values; the declaration names 5 '
              '(a, h0, W2, U, b2)'),
}


@pytest.mark.parametrize("case", NO_GRADIENT)
def test_a_declared_backward_that_gives_no_gradient_is_said_to(tmp_path, case):
    from gradcheck.layer_check import check_layer
    body, layer_line, window_text = NO_GRADIENT[case]
    (tmp_path / "course.py").write_text((STYLES_DIR / "course.py").read_text())
    path = tmp_path / "no_gradient.py"
    path.write_text("from course import *  # noqa: F401,F403\n"
                    "from course import rnn_backward as _rnn_backward\n\n\n"
                    f"def rnn_backward(dh, cache):\n{body}\n")
    acts = adapters.supported(adapters.declaration("course"))[1]
    report = check_layer("rnn", str(path), adapter="course", activations=acts, **SMALL)
    assert report.diagnosis == layer_line
    window = gradcheck.check(str(path), adapter="course", **LAYERED)
    assert not window.passed and window_text in window.diagnosis
