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
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck.errors import ExitCode
from gradcheck.grade import main
from gradcheck.grade.battery import DEFAULT_BATTERY, ITEMS, load_battery
from gradcheck.isolation import parse_size
from gradcheck.kinds import KINDS
from gradcheck.sandbox import HIDING
from gradcheck.grade.submission import resolve
from gradcheck.zoo import BUGS

HERE = Path(__file__).resolve().parent
SUBS = HERE / "grade_submissions"
ROOT = HERE.parent
SMALL = HERE / "grade_small_battery.toml"
TIMEOUT = "3"          # seconds per call: the tiny battery's calls take milliseconds


def _grade(*args):
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "grade", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    return proc.stdout


# A float32 cast of correct_loop.py: its only finding is precision.
FLOAT32_CAST = ("    W1, b1, W2, U, b2, W3, b3 = (",
                "    params = {k: v.astype(np.float32) for k, v in params.items()}\n"
                "    x, h0 = x.astype(np.float32), h0.astype(np.float32)\n"
                "    W1, b1, W2, U, b2, W3, b3 = (")

# Students' bugs, each one line of correct_loop.py changed (the rest of the file as is).
MUTANTS = {
    "buggy_no_dh_next.py": ('dh = c["d3"] @ W3.T + dh_next', 'dh = c["d3"] @ W3.T'),
    "buggy_dU_transposed.py": ('g["U"] += c["hp"].T @ d2', 'g["U"] += d2.T @ c["hp"]'),
    "buggy_float32_cast.py": FLOAT32_CAST,
    "buggy_keys_named_dW1.py": ("return total / scale, g, h",
                                'return total / scale, {"d" + k: v for k, v in g.items()}, h'),
}


def _specs():
    files = sorted([p.name for p in SUBS.glob("*.py")] + list(MUTANTS))
    return files + ["copied_reference.py", "folder_student", "folder_one_down",
                    "folder_load_error", "no_such_file.py"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The submissions made from others: the MUTANTS, the JAX fallback (its header and
    correct_loop.py's code), and a student's folder (the
    submission, correct_vectorized.py's code as rnn.py, beside a helper file that defines
    no loss_and_grads)."""
    where = tmp_path_factory.mktemp("submissions")
    source = (SUBS / "correct_loop.py").read_text()
    for name, (line, bug) in MUTANTS.items():
        assert source.count(line) == 1, name
        (where / name).write_text(source.replace(line, bug))
    (where / "hostile_jax_fallback.py").write_text(
        (SUBS / "hostile_jax_fallback.py").read_text() + source)
    folder = where / "folder_student"
    folder.mkdir()
    shutil.copy(SUBS / "correct_vectorized.py", folder / "rnn.py")
    (folder / "helpers.py").write_text("SEED = 0\n")
    (where / "folder_one_down" / "hw3").mkdir(parents=True)       # zipped one level too deep
    shutil.copy(SUBS / "correct_loop.py", where / "folder_one_down" / "hw3" / "rnn.py")
    # the reference's modules pasted into one file, a variable renamed, imports mended
    parts = [(ROOT / "reference" / f"{m}.py").read_text()
             for m in ("activations", "losses", "layers", "network")]
    pasted = "\n".join(line for part in parts for line in part.splitlines()
                       if not line.startswith("from ."))
    (where / "copied_reference.py").write_text(pasted.replace("dh_next", "carry"))
    (where / "folder_load_error").mkdir()
    (where / "folder_load_error" / "rnn.py").write_text(
        "import numpy as np\n\nSCALE = 1 / 0\n\n\ndef loss_and_grads(*args, **options):\n"
        "    pass\n")
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


@pytest.mark.parametrize("name", ["correct_loop.py", "correct_vectorized.py", "folder_student",
                                  "folder_one_down"])
def test_correct_submissions_get_full_marks(graded, name):
    s = graded[1][name]
    assert s["passed"] and s["score"] == s["max_score"] == 15, s
    assert s["diagnosis"] is None and s["problem"] is None


def test_a_file_one_folder_down_is_graded_and_the_student_told(graded):
    s = graded[1]["folder_one_down"]
    note = f"found {Path('hw3', 'rnn.py')} one folder down; move it up next time"
    assert all(note in t["output"] for t in s["tests"])


CONCEPTUAL = ["buggy_no_dh_next.py", "buggy_dU_transposed.py"]


def test_a_float32_cast_scores_below_full_marks_and_above_every_conceptual_bug(graded):
    cast = graded[1]["buggy_float32_cast.py"]
    assert cast["kinds"] == ["float32"] and cast["score"] < cast["max_score"], cast
    assert all(cast["score"] > graded[1][name]["score"] for name in CONCEPTUAL)
    float64_test = cast["tests"][0]
    assert float64_test["output"].splitlines()[1].startswith("float32-level rounding only")


@pytest.mark.parametrize(("factor", "rounding"), [
    pytest.param(1 + 8.5e-8, True, id="a-factor-at-rounding-level"),
    pytest.param(1 + 1e-6, False, id="a-tiny-real-scale-error"),
    pytest.param(0.5, False, id="a-real-scale-error"),
])
def test_a_common_factor_within_float32_rounding_is_rounding(factor, rounding):
    """A few elements off by float32 rounding fit a common factor by chance: that factor,
    that close to 1, must not veto the float32 finding (it did: a float32 cast graded
    as a conceptual bug)."""
    import numpy as np
    from gradcheck.diagnose import float32_ratio
    want = np.array([0.3, -0.7, 1.1])
    ratio = float32_ratio({(1, "b3"): (want * factor, want)}, {(1, "b3"): ("scale", factor)})
    assert (ratio is not None) == rounding


def test_a_copy_of_the_reference_is_flagged_for_the_instructor_not_marked_down(graded):
    s = graded[1]["copied_reference.py"]
    assert s["score"] == s["max_score"] and s["kinds"] == ["reference_copy"]
    assert s["honesty"]["reference_share"] > 0.9
    assert not any("reference" in t["output"] for t in s["tests"])     # not in its text
    assert all(not graded[1][name]["kinds"] and graded[1][name]["honesty"]["reference_share"]
               < 0.5 for name in ("correct_loop.py", "correct_vectorized.py", "folder_student"))


def test_wrong_key_set_lists_returned_against_expected_everywhere(graded):
    s = graded[1]["buggy_keys_named_dW1.py"]
    keys = ("grads has keys dW1, db1, dW2, dU, db2, dW3, db3, dx, dh0; expected W1, b1, W2, "
            "U, b2, W3, b3, x, h0 (missing W1, b1, W2, U, b2, W3, b3, x, h0)")
    assert keys in s["diagnosis"] and s["kinds"] == ["missing_grad"]
    for t in s["tests"]:
        lines = [line for line in t["output"].splitlines() if line.startswith("window")]
        assert lines and all(keys in line for line in lines), t["output"]


def test_load_error_names_the_file_as_submitted_and_the_line(graded):
    s = graded[1]["folder_load_error"]
    assert s["problem"] == "unloadable" and s["kinds"] == ["unloadable"]
    assert s["diagnosis"] == ("the submission could not be loaded: importing rnn.py raised "
                              "ZeroDivisionError: division by zero at rnn.py:3 in <module>")


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


# Submissions that look for the checker's files: the honesty guard flags the reads where
# the worker can see them (gradcheck.sandbox hides them under HIDING mechanisms).
READS_CHECKER_FILES = {"hostile_reference_by_path.py", "hostile_removes_guard.py"}


@pytest.mark.parametrize(("name", "problem", "words"), [
    pytest.param("broken_syntax.py", "unloadable", "SyntaxError", id="syntax-error"),
    pytest.param("broken_no_function.py", "unloadable", "has no attribute 'loss_and_grads'",
                 id="no-such-function"),
    pytest.param("no_such_file.py", "unloadable", "no such file", id="missing-file"),
    pytest.param("hostile_sys_exit_on_import.py", "unloadable", "SystemExit", id="exit-on-import"),
    pytest.param("broken_raises.py", None, "raised ValueError: not implemented yet",
                 id="raises"),
    pytest.param("hostile_hang.py", "timeout", "window 1; the limit is 3 s per call (set by "
                 "your instructor), so it was stopped", id="hang"),
    pytest.param("hostile_exit.py", "exited", "exited with status 0", id="os-exit"),
    pytest.param("hostile_segfault.py", "crashed", "SIGSEGV", id="segfault"),
    pytest.param("hostile_imports_reference.py", "honesty",
                 "reference is not allowed in a graded submission, and your code used it",
                 id="imports-reference"),
    pytest.param("hostile_imports_oracle.py", "honesty",
                 "gradcheck is not allowed in a graded submission, and your code used it",
                 id="imports-the-oracle"),
    pytest.param("hostile_reference_by_path.py", "honesty",
                 "tried to read the grader's own files (reference/__init__.py)",
                 id="reference-by-file"),
    pytest.param("hostile_removes_guard.py", "honesty",
                 "tried to read the grader's own files (reference/__init__.py)",
                 id="removes-the-guard"),
    pytest.param("hostile_memory.py", None, "your code ran out of memory in test",
                 id="memory-hog"),
    pytest.param("hostile_forges_reply.py", "protocol", "not in the checker's format",
                 id="forges-reply"),
    pytest.param("hostile_patches_checker.py", None, "forward pass is wrong",
                 id="patches-checker"),
])
def test_broken_and_hostile_get_zero_with_the_reason(graded, name, problem, words,
                                                    sandbox_mechanism):
    if name in READS_CHECKER_FILES and sandbox_mechanism in HIDING:
        # the worker's view has no reference/ to find: it falls back to zeros
        problem, words = None, "forward pass is wrong"
    s = graded[1][name]
    assert s["score"] == 0 and not s["passed"], s
    assert s["problem"] == problem
    assert words in s["diagnosis"]
    assert all(words in t["output"] for t in s["tests"])


def _kinds(summary):
    return {k: set(map(lambda n: Path(n).name, v["submissions"]))
            for k, v in summary["kinds"].items()}


@pytest.mark.parametrize(("name", "kind"), [
    ("buggy_dU_transposed.py", "transposed"), ("buggy_no_dh_next.py", "dh_next_not_passed"),
    ("broken_raises.py", "exception"), ("hostile_hang.py", "timeout"),
    ("correct_loop.py", None)])
def test_graded_json_gives_the_diagnosis_kind_and_detail_beside_its_sentence(graded, name,
                                                                             kind):
    s = graded[1][name]
    for doc in [s] + s["tests"]:
        assert doc["diagnosis_kind"] == kind, doc
        if kind is None:
            assert doc["diagnosis_detail"] is None
            continue
        detail = doc["diagnosis_detail"]
        assert detail["kind"] == kind and detail["hint"] == KINDS[kind].hint
    assert (s["diagnosis"] is None) == (kind is None)


def test_the_check_s_evidence_reaches_the_graded_json(graded):
    test = graded[1]["buggy_no_dh_next.py"]["tests"][0]
    evidence = test["diagnosis_detail"]["evidence"]
    assert evidence["candidate"] == "no_dh_next" and "U" in evidence["arrays"]


def test_summary_gives_each_kind_its_count_and_submissions(graded, sandbox_mechanism):
    doc, _ = graded
    summary, kinds = doc["summary"], _kinds(doc["summary"])
    for k, v in summary["kinds"].items():
        assert v["count"] == len(v["submissions"]) == len(set(v["submissions"])), k
    assert kinds["banned_library_used"] == {"hostile_imports_reference.py",
                                            "hostile_imports_oracle.py"}
    assert kinds["banned_library_imported"] == {"hostile_jax_fallback.py"}
    assert kinds.get("read_checker_files", set()) == (
        set() if sandbox_mechanism in HIDING else READS_CHECKER_FILES)
    assert kinds["unloadable"] == {"broken_syntax.py", "broken_no_function.py",
                                   "hostile_sys_exit_on_import.py", "folder_load_error"}
    assert kinds["no_entry_file"] == {"no_such_file.py"}
    assert kinds["timeout"] == {"hostile_hang.py"}
    assert kinds["crashed"] == {"hostile_segfault.py"}
    assert kinds["reference_copy"] == {"copied_reference.py"}
    assert summary["full_marks"] == 6        # four correct, a copy, an unused import of jax
    assert summary["scores"][str(SUBS / "correct_loop.py")] == 15


def test_summary_counts_arrays_only_for_the_maths_and_the_contract(graded):
    """Honesty, crash, timeout and packaging problems fail every array of a test; they
    are kept out of the per-array counts (which say what the class gets wrong)."""
    doc, by_name = graded
    kept_out = {"honesty", "crash", "timeout", "memory", "packaging"}
    counted = [s for s in doc["submissions"]
               if any(t["score"] < t["max_score"] and (t["diagnosis_kind"] is None or
                      KINDS[t["diagnosis_kind"]].group not in kept_out) for t in s["tests"])]
    assert "hostile_segfault.py" not in {Path(s["submission"]).name for s in counted}
    failing_U = sum("U" in {i for t in s["tests"] for i in t["failing"]} for s in counted)
    assert doc["summary"]["failing_arrays"]["U"] == failing_U
    assert failing_U < sum(t["score"] < t["max_score"] for s in doc["submissions"]
                           for t in s["tests"][:1])


def test_summary_says_whether_the_checkers_files_were_out_of_reach(graded):
    doc, _ = graded
    iso = doc["summary"]["isolation"]
    try:
        from gradcheck.sandbox import STRONG
    except ImportError:
        STRONG = ()
    assert iso["mechanisms"]
    if all(m in STRONG for m in iso["mechanisms"]):
        assert iso["checker_files"].startswith("out of the workers' reach")
    else:
        assert iso["checker_files"].startswith("refused by the honesty audit hook only")


def test_a_same_user_worker_is_reported_as_the_hook_alone():
    from gradcheck.grade.formats import summary
    from gradcheck.grade.mark import SubmissionGrade
    grade = SubmissionGrade("a.py", 1.0, 1.0, [], None, None, None, 0.0, isolation="same-user")
    iso = summary([grade], DEFAULT_BATTERY, 0)["isolation"]
    assert iso == {"mechanisms": ["same-user"], "checker_files": (
        "refused by the honesty audit hook only: the workers ran as the grader's own user, "
        "so code that reaches below Python could read them")}


def test_unused_banned_import_is_told_to_the_student_at_no_cost():
    from gradcheck.grade.formats import render
    from gradcheck.grade.mark import SubmissionGrade
    grade = SubmissionGrade("a.py", 15.0, 15.0, [], None, None, None, 0.0,
                            flags=("banned_library_imported", "reference_copy"))
    doc = json.loads(render("gradescope", [grade], DEFAULT_BATTERY, 0))
    assert doc["output"] == KINDS["banned_library_imported"].hint     # not the copy flag


def test_unused_banned_import_costs_nothing_and_is_listed(graded):
    s = graded[1]["hostile_jax_fallback.py"]
    assert s["score"] == s["max_score"] and s["problem"] is None
    assert {k: s["honesty"][k] for k in ("imported", "used", "read")} == {
        "imported": ["jax"], "used": [], "read": []}
    assert s["kinds"] == ["banned_library_imported"]


@pytest.mark.parametrize("name", ["hostile_imports_reference.py", "hostile_jax_fallback.py",
                                  "hostile_reference_by_path.py", "broken_syntax.py",
                                  "hostile_hang.py", "hostile_memory.py"])
def test_no_instructor_flag_reaches_a_students_text(graded, name):
    s = graded[1][name]
    texts = [s["diagnosis"] or "", s["reason"] or ""] + [t["output"] for t in s["tests"]]
    assert not any("--" in text for text in texts), texts


# ------------------------------------------------------------------ the zoo

@pytest.fixture(scope="module")
def zoo_graded(tmp_path_factory):
    """Every zoo bug as a submission file, through the real grading path (the zoo is
    ours, so importing gradcheck is allowed here), under the default battery."""
    folder = tmp_path_factory.mktemp("zoo")
    for name in BUGS:
        (folder / f"{name}.py").write_text(
            f"from gradcheck.zoo import BUGS\nloss_and_grads = BUGS[{name!r}].make()\n")
    source = (SUBS / "correct_loop.py").read_text()
    assert source.count(FLOAT32_CAST[0]) == 1
    (folder / "float32_cast.py").write_text(source.replace(*FLOAT32_CAST))
    doc = json.loads(_grade(*sorted(folder.glob("*.py")), "--format", "json", "--jobs", "2",
                            "--allow-import", "gradcheck", "--timeout", "20"))
    return {Path(s["submission"]).stem: s for s in doc["submissions"]}


def test_a_float32_cast_scores_above_every_bug_of_the_zoo(zoo_graded):
    """decisions.md: precision findings across the default battery never cost more than
    the least any conceptual bug of the zoo costs."""
    cast = zoo_graded["float32_cast"]
    assert cast["score"] < cast["max_score"] and cast["kinds"] == ["float32"], cast
    worst_bug_best_score = max(zoo_graded[name]["score"] for name in BUGS)
    assert cast["score"] > worst_bug_best_score


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


def _graded_in_process(*argv):
    from gradcheck.grade.cli import build_parser, run
    args = build_parser().parse_args([str(a) for a in argv])
    return run(args, parse_size("1G"))


@pytest.fixture(scope="module")
def levels(made, tmp_path_factory):
    """The buggy submission graded at each feedback level, and with a battery whose tests
    choose their own."""
    battery = tmp_path_factory.mktemp("levels") / "levels.toml"
    battery.write_text(SMALL.read_text().replace('name = "two_windows"',
                                                 'name = "two_windows"\nfeedback = "score"')
                       .replace('name = "ce_f32"', 'name = "ce_f32"\nfeedback = "hint"'))
    buggy = made / "buggy_no_dh_next.py"
    out = {level: _graded_in_process(buggy, "--battery", SMALL, "--timeout", TIMEOUT,
                                     "--feedback", level, "--seed", "3")[0][0]
           for level in ("full", "hint", "score")}
    out["battery"] = _graded_in_process(buggy, "--battery", battery, "--timeout", TIMEOUT,
                                        "--seed", "3")[0][0]
    return out


def test_hint_names_arrays_and_steps_without_numbers_or_the_diagnosis(levels):
    full, hint = levels["full"], levels["hint"]
    assert hint.diagnosis == full.diagnosis and "not passed back" in hint.diagnosis
    for t_full, t_hint in zip(full.tests, hint.tests):
        assert t_hint.score == t_full.score
        assert "lost: W1, b1, W2, U, b2, x, h0" in t_hint.output
        assert "window 1: U disagrees [steps that disagree:" in t_hint.output
        assert "worst element" in t_full.output and "worst element" not in t_hint.output
        assert "diagnosis:" in t_full.output and "diagnosis:" not in t_hint.output
        assert full.diagnosis not in t_hint.output
        assert f"the kind of mistake: {KINDS['dh_next_not_passed'].hint}" in t_hint.output


def test_score_says_only_pass_or_fail(levels):
    assert [t.output for t in levels["score"].tests] == ["two_windows: 3/10\nfailed",
                                                         "ce_f32: 1.5/5\nfailed"]


def test_a_battery_test_chooses_its_own_feedback_level(levels):
    own = levels["battery"].tests
    assert own[0].output == levels["score"].tests[0].output
    assert own[1].output == levels["hint"].tests[1].output


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
    assert "U 1" in text and "buggy_dU_transposed.py" in text.split("per kind")[1]


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


def test_precision_costs_the_tests_share_or_its_part_of_the_batterys_cap():
    from gradcheck.grade.battery import PRECISION_CAP, make_test, precision_loss
    tests = load_battery(SMALL)                      # 10 and 5 points: the least item 0.5
    assert precision_loss(tests[0], tests) == pytest.approx(PRECISION_CAP * 0.5 / 2)
    generous = make_test("g", {"interval": 2}, points=10, precision_credit=0.999)
    assert precision_loss(generous, [generous]) == pytest.approx(0.01)
    # whatever the credits, the whole battery's precision findings cost less than an item
    assert sum(precision_loss(t, DEFAULT_BATTERY) for t in DEFAULT_BATTERY) < 1.0


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


def test_folder_with_several_candidates_names_them(tmp_path):
    for n in ("a.py", "b.py"):
        (tmp_path / n).write_text("def loss_and_grads(*a, **k):\n    pass\n")
    sub = resolve(str(tmp_path))
    assert sub.error == ("cannot tell which file to grade: a.py and b.py all define "
                         "loss_and_grads(); keep loss_and_grads() in one file")
    assert sub.kind == "ambiguous_entry"
    assert Path(resolve(str(tmp_path), entry="b").path).name == "b.py"


def test_folder_whose_files_define_no_function_names_them(tmp_path):
    for n in ("a.py", "b.py"):
        (tmp_path / n).write_text("X = 1\n")
    sub = resolve(str(tmp_path))
    assert sub.error == "cannot tell which file to grade: none of a.py and b.py defines " \
                        "loss_and_grads()" and sub.kind == "no_entry_file"


def test_file_one_folder_down_is_found_with_a_note(tmp_path):
    (tmp_path / "hw3").mkdir()
    (tmp_path / "hw3" / "rnn.py").write_text("def loss_and_grads(*a, **k):\n    pass\n")
    sub = resolve(str(tmp_path))
    assert sub.error is None and sub.path == str(tmp_path / "hw3" / "rnn.py")
    assert sub.note == f"found {Path('hw3', 'rnn.py')} one folder down; move it up next time"


def test_files_one_folder_down_that_cannot_be_told_apart_are_named(tmp_path):
    for d in ("hw3", "old"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "rnn.py").write_text("def loss_and_grads(*a, **k):\n    pass\n")
    sub = resolve(str(tmp_path))
    assert sub.kind == "ambiguous_entry" and "hw3/rnn.py and old/rnn.py all define" in sub.error


# ------------------------------------------------------------------ bad usage

def _usage(argv, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["x.py", "--jobs", "0"], "--jobs 0: expected an integer >= 1", id="jobs"),
    pytest.param(["x.py", "--format", "xml"], "--format xml: expected one of json", id="format"),
    pytest.param(["x.py", "--feedback", "all"], "--feedback all: expected one of full, hint, "
                 "score", id="feedback"),
    pytest.param(["x.py", "--memory-limit", "lots"], "--memory-limit lots: expected a size",
                 id="memory"),
    pytest.param(["x.py", "--timeout", "-1"], "--timeout -1: expected a number of seconds > 0",
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
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\nprecision_credit = 1.5\n",
                 "test a: precision_credit must be a number from 0 to 1", id="precision-credit"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\nfeedback = 'some'\n",
                 "test a: feedback must be one of full, hint, score", id="feedback"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\ncell = 'tcn'\n",
                 "--battery tcn: test a: cell must be one of rnn, lstm, gru", id="cell"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\ncell = 'gru'\nreset_after = 'yes'\n",
                 "test a: reset_after must be true or false", id="cell-option-value"),
    pytest.param("[[test]]\nname = 'a'\ninterval = 2\nreset_after = true\n",
                 "test a: reset_after=True: only for --cell gru", id="cell-option-of-another"),
    pytest.param("[[test]\n", "not valid TOML", id="toml"),
    pytest.param("[defaults]\nbatch = 2\n", "at least one [[test]]", id="no-tests"),
])
def test_bad_battery_file_is_usage(text, message, tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(text)
    code, err = _usage(["x.py", "--battery", str(path)], tmp_path)
    assert code == ExitCode.USAGE and message in err and err.count("\n") == 1, err


# ------------------------------------------------------------------ time limits

def test_default_time_limit_is_the_references_time_scaled_with_a_floor():
    from gradcheck.grade.runner import TIMEOUT_FACTOR, TIMEOUT_FLOOR, Limits, limit_of
    slow_reference = 2 * TIMEOUT_FLOOR / TIMEOUT_FACTOR
    assert limit_of(Limits(), 0.0) == (TIMEOUT_FLOOR, "the least the grader allows")
    assert limit_of(Limits(), slow_reference)[0] == pytest.approx(2 * TIMEOUT_FLOOR)
    assert "times the time a correct solution takes" in limit_of(Limits(), slow_reference)[1]
    assert limit_of(Limits(3.0), slow_reference) == (3.0, "set by your instructor")


def test_the_references_time_is_measured_for_each_test():
    from gradcheck.grade.prepare import prepare
    p = prepare(load_battery(SMALL)[0], seed=0)
    assert 0 < p.reference_seconds < 1


# CPU seconds the loop-heavy submission spends per call: more than the default limit's
# floor allows in wall time once the machine is loaded (BUSY processes beside it on its
# cores), well within it in the time the submission itself runs.
LOOP_SECONDS_OF_FLOOR = 0.3
BUSY_PER_CORE = 3


@pytest.fixture
def busy_machine():
    """Busy processes on every core of this machine, killed afterwards."""
    import os
    n = BUSY_PER_CORE * len(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    yield
    for p in procs:
        p.kill()
        p.wait()


def test_a_correct_loop_heavy_submission_gets_full_marks_on_a_loaded_machine(tmp_path,
                                                                             busy_machine):
    from gradcheck.grade.runner import TIMEOUT_FLOOR
    student = tmp_path / "student"               # a folder: its helper file comes along
    student.mkdir()
    shutil.copy(SUBS / "correct_loop.py", student / "correct_loop.py")
    (student / "slow.py").write_text(
        "import time\n\nfrom correct_loop import loss_and_grads as _step\n\n\n"
        "def loss_and_grads(params, x, y, h0, **options):\n"
        "    start = time.process_time()      # the CPU time of a solution with many loops\n"
        f"    while time.process_time() - start < {LOOP_SECONDS_OF_FLOOR * TIMEOUT_FLOOR}:\n"
        "        pass\n"
        "    return _step(params, x, y, h0, **options)\n")
    (tmp_path / "one.toml").write_text(
        "[[test]]\nname = 'one_window'\ninterval = 2\nseq_len = 2\nbatch = 2\n"
        "input_size = 2\nhidden_size = 2\nstate_size = 2\noutput_size = 2\n")
    doc = json.loads(_grade(student, "--entry", "slow", "--battery", tmp_path / "one.toml",
                            "--format", "json", "--jobs", "1"))
    s = doc["submissions"][0]
    assert s["score"] == s["max_score"] and s["problem"] is None, s["diagnosis"]


# ------------------------------------------------------------------ bundles

def _platform_tree(tmp_path, platform, submission):
    """A fake platform: the bundle unpacked where the platform puts it, the student's
    folder filled with ``submission``; returns (the command to run, results.json)."""
    import zipfile
    bundle = tmp_path / "bundle"
    code, err = _usage(["--bundle", platform, str(bundle), "--battery", str(SMALL),
                        "--timeout", TIMEOUT, "--feedback", "hint"], tmp_path)
    assert code == ExitCode.OK, err
    if platform == "gradescope":
        root = tmp_path / "autograder"
        with zipfile.ZipFile(bundle / "autograder.zip") as z:
            z.extractall(root / "source")
        run = root / "run_autograder"                  # Gradescope copies it up one level
        shutil.copy(root / "source" / "run_autograder", run)
        student = root / "submission"
    else:
        root = tmp_path / "grade"
        shutil.copytree(bundle / "tests", root / "tests")
        run = root / "tests" / "run_autograder"
        student = root / "student"
    student.mkdir(parents=True)
    (student / "rnn.py").write_text(submission)
    run.chmod(0o755)
    return run, root / "results" / "results.json"


def _run_tree(run):
    env = dict(os.environ, GRADCHECK_PYTHON=sys.executable)   # setup.sh's packages: here
    proc = subprocess.run([str(run)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_bundle_writes_what_each_platform_needs(tmp_path):
    for platform, files in (("gradescope", {"setup.sh", "run_autograder", "battery.toml",
                                            "requirements.txt", "autograder.zip"}),
                            ("prairielearn", {"tests/run_autograder", "tests/battery.toml",
                                              "requirements.txt", "Dockerfile",
                                              "externalGradingOptions.json"})):
        folder = tmp_path / platform
        code, err = _usage(["--bundle", platform, str(folder), "--seed", "5"], tmp_path)
        assert code == ExitCode.OK, err
        written = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert files <= written
        assert any(w.endswith("vendor/gradcheck/oracle_jax.py") for w in written)
        assert any(w.endswith("vendor/reference/network.py") for w in written)
    battery = load_battery(tmp_path / "gradescope" / "battery.toml")
    assert battery == DEFAULT_BATTERY            # the battery file reads back the same tests
    assert "--seed 5" in (tmp_path / "gradescope" / "run_autograder").read_text()


@pytest.mark.parametrize("platform", ["gradescope", "prairielearn"])
def test_generated_run_autograder_grades_a_submission_on_a_fake_platform(tmp_path, platform):
    buggy = (SUBS / "correct_loop.py").read_text().replace(*MUTANTS["buggy_dU_transposed.py"])
    run, results = _platform_tree(tmp_path, platform, buggy)
    _run_tree(run)
    doc = json.loads(results.read_text())
    if platform == "gradescope":
        assert set(doc) <= _GS_TOP and len(doc["tests"]) == 2
        for t in doc["tests"]:
            assert set(t) <= _GS_TEST and {"name", "score", "max_score", "output"} <= set(t)
            assert t["visibility"] in _GS_VISIBILITY
        assert doc["score"] == 13.5 == sum(t["score"] for t in doc["tests"])
        outputs = [t["output"] for t in doc["tests"]]
    else:
        assert doc["gradable"] is True and doc["score"] == pytest.approx(13.5 / 15)
        assert doc["message"] == ""                 # never the diagnosis: hint level
        assert [(t["points"], t["max_points"]) for t in doc["tests"]] == [(9, 10), (4.5, 5)]
        outputs = [t["message"] for t in doc["tests"]]
    # --feedback hint, as the bundle was made: the arrays, no diagnosis, no flag
    assert all("window 1: U disagrees" in o and "diagnosis:" not in o and "--" not in o
               for o in outputs), outputs


def test_run_autograder_writes_results_even_when_grading_fails(tmp_path):
    run, results = _platform_tree(tmp_path, "gradescope", "def loss_and_grads(:\n")
    (run.parent / "source" / "battery.toml").write_text("not toml [")   # the grader fails
    proc = _run_tree(run)
    doc = json.loads(results.read_text())
    assert doc["score"] == 0 and "could not grade" in doc["output"]
    assert "--battery" in proc.stderr                     # the instructor's log says why


def test_bundle_of_an_unknown_platform_is_usage(tmp_path):
    code, err = _usage(["--bundle", "moodle", str(tmp_path / "b")], tmp_path)
    assert code == ExitCode.USAGE
    assert "--bundle moodle: expected one of gradescope, prairielearn" in err


def test_bundle_with_submissions_is_usage(tmp_path):
    code, err = _usage(["x.py", "--bundle", "gradescope", str(tmp_path / "b")], tmp_path)
    assert code == ExitCode.USAGE and "give no SUBMISSION with it" in err
