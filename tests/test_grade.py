"""Tests of ``gradcheck grade``: a folder of submissions written here (correct in different
styles, buggy, broken, hostile) graded as an instructor would, every zoo bug under the
default battery, the output formats, the battery and bad usage.

The gradings run as subprocesses (``python -m gradcheck grade``), each once per module
(fixtures), with small batteries and short time limits; several tests read each run.
"""
import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck.errors import ExitCode
from gradcheck.grade import main
from gradcheck.grade.battery import DEFAULT_BATTERY, ITEMS, load_battery
from gradcheck.isolation import parse_size
from gradcheck.sandbox import HIDING
from gradcheck.grade.submission import resolve
from gradcheck.zoo import BUGS

HERE = Path(__file__).resolve().parent
SUBS = HERE / "grade_submissions"
SMALL = HERE / "grade_small_battery.toml"
TIMEOUT = "3"          # seconds per call: the tiny battery's calls take milliseconds


def _grade(*args):
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "grade", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    return proc.stdout


# Students' bugs, each one line of correct_loop.py changed (the rest of the file as is).
MUTANTS = {
    "buggy_no_dh_next.py": ('dh = c["d3"] @ W3.T + dh_next', 'dh = c["d3"] @ W3.T'),
    "buggy_dU_transposed.py": ('g["U"] += c["hp"].T @ d2', 'g["U"] += d2.T @ c["hp"]'),
}


def _specs():
    files = sorted([p.name for p in SUBS.glob("*.py")] + list(MUTANTS))
    return files + ["folder_student", "no_such_file.py"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The submissions made from others: the MUTANTS, and a student's folder (the
    submission, correct_vectorized.py's code as rnn.py, beside a helper file that defines
    no loss_and_grads)."""
    where = tmp_path_factory.mktemp("submissions")
    source = (SUBS / "correct_loop.py").read_text()
    for name, (line, bug) in MUTANTS.items():
        assert source.count(line) == 1, name
        (where / name).write_text(source.replace(line, bug))
    folder = where / "folder_student"
    folder.mkdir()
    shutil.copy(SUBS / "correct_vectorized.py", folder / "rnn.py")
    (folder / "helpers.py").write_text("SEED = 0\n")
    return where


def _at(name, made):
    """Where submission ``name`` is: made by a fixture, or in SUBS."""
    return made / name if (made / name).exists() else SUBS / name


@pytest.fixture(scope="module")
def graded(made):
    """The whole folder, as the issue grades it: json, a short timeout, two jobs."""
    specs = _specs()
    doc = json.loads(_grade(*[_at(s, made) for s in specs], "--battery", SMALL,
                            "--format", "json", "--timeout", TIMEOUT, "--jobs", "2",
                            "--seed", "7"))
    by_name = {Path(s["submission"]).name: s for s in doc["submissions"]}
    return doc, by_name


def test_every_submission_is_graded_in_order(graded):
    doc, _ = graded
    assert [Path(s["submission"]).name for s in doc["submissions"]] == _specs()
    assert doc["summary"]["submissions"] == len(_specs())
    assert doc["summary"]["seed"] == 7


@pytest.mark.parametrize("name", ["correct_loop.py", "correct_vectorized.py", "folder_student"])
def test_correct_submissions_get_full_marks(graded, name):
    s = graded[1][name]
    assert s["passed"] and s["score"] == s["max_score"] == 15, s
    assert s["diagnosis"] is None and s["problem"] is None


@pytest.mark.parametrize(("name", "lost", "diagnosis"), [
    pytest.param("buggy_dU_transposed.py", {"U"}, "dU is transposed", id="dU-transposed"),
    pytest.param("buggy_no_dh_next.py", {"W1", "b1", "W2", "U", "b2", "x", "h0"},
                 "not passed back through time", id="no-dh-next"),
])
def test_buggy_submissions_lose_the_arrays_they_break(graded, name, lost, diagnosis):
    s = graded[1][name]
    assert diagnosis in s["diagnosis"]
    for t in s["tests"]:
        assert set(t["failing"]) == lost, t
        # the marking scheme: each of the ten items is a tenth of the test's points
        assert t["score"] == pytest.approx(t["max_score"] * (1 - len(lost) / len(ITEMS)))


def test_feedback_names_arrays_steps_and_worst_element_only(graded):
    s = graded[1]["buggy_no_dh_next.py"]
    out = s["tests"][0]["output"]
    assert "lost: W1, b1, W2, U, b2, x, h0" in out
    assert "worst element" in out and "[steps that disagree:" in out
    assert "diagnosis: The state derivative is not passed back" in out
    # never an oracle's whole array: one worst element per failing array and window
    assert out.count("worst element") <= 13 and len(out) < 5000


@pytest.mark.parametrize(("name", "problem", "words"), [
    pytest.param("broken_syntax.py", "unloadable", "SyntaxError", id="syntax-error"),
    pytest.param("broken_no_function.py", "unloadable", "has no attribute 'loss_and_grads'",
                 id="no-such-function"),
    pytest.param("no_such_file.py", "unloadable", "no such file", id="missing-file"),
    pytest.param("hostile_sys_exit_on_import.py", "unloadable", "SystemExit", id="exit-on-import"),
    pytest.param("broken_raises.py", None, "raised ValueError: not implemented yet",
                 id="raises"),
    pytest.param("hostile_hang.py", "timeout", "did not return within --timeout 3 s", id="hang"),
    pytest.param("hostile_exit.py", "exited", "exited with status 0", id="os-exit"),
    pytest.param("hostile_segfault.py", "crashed", "SIGSEGV", id="segfault"),
    pytest.param("hostile_imports_reference.py", "honesty", "imported reference",
                 id="imports-reference"),
    pytest.param("hostile_imports_oracle.py", "honesty", "imported gradcheck",
                 id="imports-the-oracle"),
    pytest.param("hostile_jax_fallback.py", "honesty", "imported jax", id="tries-jax"),
    pytest.param("hostile_reference_by_path.py", "honesty", "imported reference",
                 id="reference-by-file"),
    pytest.param("hostile_memory.py", None, "ran out of memory under --memory-limit",
                 id="memory-hog"),
    pytest.param("hostile_forges_reply.py", "protocol", "not in the checker's format",
                 id="forges-reply"),
    pytest.param("hostile_patches_checker.py", None, "forward pass is wrong",
                 id="patches-checker"),
])
def test_broken_and_hostile_get_zero_with_the_reason(graded, name, problem, words,
                                                    sandbox_mechanism):
    if name == "hostile_reference_by_path.py" and sandbox_mechanism in HIDING:
        # the worker's view has no reference/ to find: it falls back to zeros
        problem, words = None, "forward pass is wrong"
    s = graded[1][name]
    assert s["score"] == 0 and not s["passed"], s
    assert s["problem"] == problem
    assert words in s["diagnosis"]
    assert all(words in t["output"] for t in s["tests"])


def test_summary_counts_arrays_and_bug_classes(graded, sandbox_mechanism):
    doc, by_name = graded
    summary = doc["summary"]
    failing_U = sum("U" in {i for t in s["tests"] for i in t["failing"]}
                    for s in doc["submissions"])
    assert summary["failing_arrays"]["U"] == failing_U
    assert summary["bug_classes"]["academic honesty"] == 4 - (sandbox_mechanism in HIDING)
    assert summary["bug_classes"]["transposed gradient"] == 1
    assert summary["bug_classes"]["dh_next not passed back through time"] == 1
    assert summary["full_marks"] == 3
    assert summary["scores"][str(SUBS / "correct_loop.py")] == 15


# ------------------------------------------------------------------ the zoo

@pytest.fixture(scope="module")
def zoo_graded(tmp_path_factory):
    """Every zoo bug as a submission file, through the real grading path (the zoo is
    ours, so importing gradcheck is allowed here), under the default battery."""
    folder = tmp_path_factory.mktemp("zoo")
    for name in BUGS:
        (folder / f"{name}.py").write_text(
            f"from gradcheck.zoo import BUGS\nloss_and_grads = BUGS[{name!r}].make()\n")
    doc = json.loads(_grade(*sorted(folder.glob("*.py")), "--format", "json", "--jobs", "2",
                            "--allow-import", "gradcheck", "--timeout", "20"))
    return {Path(s["submission"]).stem: s for s in doc["submissions"]}


_ITEM = {"loss": "forward", "h_last": "forward", "inputs_modified": "forward", "nan": None}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_every_zoo_bug_loses_marks_under_the_default_battery(zoo_graded, name):
    s = zoo_graded[name]
    assert s["score"] < s["max_score"] and s["problem"] is None, s
    failing = {i for t in s["tests"] for i in t["failing"]}
    broken = {_ITEM.get(n, n) for n in BUGS[name].breaks} - {None}
    assert failing & broken, (failing, broken)


# ------------------------------------------------------------------ formats

@pytest.fixture(scope="module")
def gradescope(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs") / "results.json"
    _grade(SUBS / "correct_loop.py", "--format", "gradescope", "--output", out, "--jobs", "1")
    return json.loads(out.read_text())


_GS_VISIBILITY = {"visible", "hidden", "after_due_date", "after_published"}
_GS_TOP = {"score", "output", "tests", "visibility", "stdout_visibility", "execution_time",
           "extra_data", "leaderboard", "output_format", "test_output_format",
           "test_name_format"}
_GS_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
            "output_format", "tags", "visibility", "extra_data"}


def test_gradescope_results_follow_its_schema_with_full_marks(gradescope):
    assert set(gradescope) <= _GS_TOP
    assert isinstance(gradescope["score"], float)
    assert len(gradescope["tests"]) == len(DEFAULT_BATTERY)
    for t in gradescope["tests"]:
        assert set(t) <= _GS_TEST and {"name", "score", "max_score", "output"} <= set(t)
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert t["visibility"] in _GS_VISIBILITY and t["status"] in ("passed", "failed")
        assert t["score"] == t["max_score"]
    assert gradescope["score"] == sum(t["max_score"] for t in gradescope["tests"])


@pytest.fixture(scope="module")
def grades(made):
    """A correct and a buggy submission graded in-process, rendered in every format."""
    from gradcheck.grade.cli import build_parser, run
    args = build_parser().parse_args([str(SUBS / "correct_loop.py"),
                                      str(made / "buggy_dU_transposed.py"),
                                      "--battery", str(SMALL), "--timeout", TIMEOUT])
    return run(args, parse_size("1G"))


def test_without_seed_a_fresh_one_is_drawn_and_recorded(grades):
    from gradcheck.grade.formats import render
    doc = json.loads(render("json", *grades))
    assert doc["summary"]["seed"] == grades[2] and isinstance(grades[2], int)


def test_prairielearn_score_is_a_fraction_with_points(grades):
    from gradcheck.grade.formats import render
    correct, buggy = json.loads(render("prairielearn", *grades))
    assert correct["score"] == 1.0 and buggy["score"] == pytest.approx(1 - 0.1)
    t = buggy["tests"][0]
    assert t["points"] == 9 and t["max_points"] == 10 and "dU is transposed" in t["message"]


def test_csv_has_a_row_per_submission_and_a_column_per_test(grades):
    from gradcheck.grade.formats import render
    rows = list(csv.DictReader(io.StringIO(render("csv", *grades))))
    assert [r["score"] for r in rows] == ["15", "13.5"]
    assert rows[1]["two_windows"] == "9" and rows[1]["ce_f32"] == "4.5"


def test_table_shows_scores_and_the_class_summary(grades):
    from gradcheck.grade.formats import render
    text = render("table", *grades)
    assert "buggy_dU_transposed.py   13.5/15" in text
    assert "U 1" in text and "transposed gradient 1" in text


# ------------------------------------------------------------------ the battery

def test_default_battery_covers_what_the_zoo_needs():
    opts = [t.options for t in DEFAULT_BATTERY]
    assert {o.get("loss", "l2") for o in opts} == {"l2", "ce", "bce"}
    assert any(o.get("dtype") == "float32" for o in opts)
    assert any(o["batch"] == 1 for o in opts)
    assert any("relu" in o.get("activations", ()) for o in opts)
    assert any(o.get("activations", ("",) * 3)[2] == "sigmoid" for o in opts)
    # each loss averaged over a batch of more than one; l2 and ce summed too
    for loss in ("l2", "ce", "bce"):
        assert any(o.get("loss", "l2") == loss and o.get("reduction", "mean") == "mean"
                   and o["batch"] > 1 for o in opts), loss
    for loss in ("l2", "ce"):
        assert any(o.get("loss", "l2") == loss and o.get("reduction") == "sum" for o in opts)
    # several windows with a short last one
    assert any(o["seq_len"] > o["interval"] and o["seq_len"] % o["interval"] for o in opts)


def test_battery_file_gives_names_points_and_defaults():
    tests = load_battery(SMALL)
    assert [(t.name, t.points) for t in tests] == [("two_windows", 10.0), ("ce_f32", 5.0)]
    assert tests[1].options["activations"] == ("relu", "sigmoid", "identity")
    assert tests[1].options["batch"] == 3 and tests[1].visibility == "after_due_date"


@pytest.mark.parametrize(("where", "func", "file"), [
    pytest.param("folder_student", "", "rnn.py", id="the-one-defining-the-function"),
    pytest.param("correct_loop.py", ":loss_and_grads", "correct_loop.py", id="file-func"),
])
def test_submission_resolves_to_its_file(where, func, file, made):
    sub = resolve(f"{_at(where, made)}{func}")
    assert sub.error is None and Path(sub.path).name == file


def test_folder_with_several_candidates_needs_entry(tmp_path):
    for n in ("a.py", "b.py"):
        (tmp_path / n).write_text("def loss_and_grads(*a, **k):\n    pass\n")
    assert "--entry" in resolve(str(tmp_path)).error
    assert Path(resolve(str(tmp_path), entry="b").path).name == "b.py"


# ------------------------------------------------------------------ bad usage

def _usage(argv, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["x.py", "--jobs", "0"], "--jobs 0: expected an integer >= 1", id="jobs"),
    pytest.param(["x.py", "--format", "xml"], "--format xml: expected one of json", id="format"),
    pytest.param(["x.py", "--memory-limit", "lots"], "--memory-limit lots: expected a size",
                 id="memory"),
    pytest.param(["x.py", "--timeout", "-1"], "--timeout: expected a number of seconds > 0",
                 id="timeout"),
    pytest.param(["x.py", "--allow-import", "numpy"], "--allow-import numpy: expected one of",
                 id="allow-import"),
    pytest.param(["x.py", "--loss", "ce"], "--interval is required", id="no-interval"),
    pytest.param(["x.py", "--interval", "0"], "--battery 0: test custom: interval=0",
                 id="bad-config"),
    pytest.param(["x.py", "--battery", "nope.toml"], "--battery nope.toml: cannot read it",
                 id="battery-missing"),
    pytest.param(["x.py", "--battery", str(SMALL), "--loss", "ce"], "--battery and --loss",
                 id="battery-and-flags"),
    pytest.param(["x.py", "--output", "/no/such/folder/r.json"],
                 "--output /no/such/folder/r.json: cannot write there", id="output"),
    pytest.param([], "the following arguments are required: SUBMISSION", id="none"),
])
def test_bad_usage_is_one_line_exit_2(argv, message, tmp_path):
    code, err = _usage(argv, tmp_path)
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("[[test]]\nname = 'a'\nwidth = 3\n", "not an option of the check", id="unknown"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\n[[test]]\nname = 'a'\ninterval = 2\n",
                 "two tests have this name", id="duplicate"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\npoints = 0\n", "points must be",
                 id="points"),
    pytest.param("[[test]\n", "not valid TOML", id="toml"),
    pytest.param("[defaults]\nbatch = 2\n", "at least one [[test]]", id="no-tests"),
])
def test_bad_battery_file_is_usage(text, message, tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(text)
    code, err = _usage(["x.py", "--battery", str(path)], tmp_path)
    assert code == ExitCode.USAGE and message in err and err.count("\n") == 1, err
