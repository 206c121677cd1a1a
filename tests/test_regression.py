"""Tests of gradcheck.regression: what compare() flags, and the CI check itself.

The synthetic cases edit a document measured from one tiny configuration, so they
exercise the real layout of the baseline. ``test_baseline_matches_current_code`` is
the CI regression check: it fails when the committed ``tests/regression_baseline.json``
no longer describes the code (rerun ``python -m gradcheck.regression --update`` if the
change is intended).
"""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck import oracle_fd, regression
from gradcheck.cli.regression import main
from gradcheck.errors import ExitCode, UsageError
from gradcheck.regression import (CONFIGS, FLOORS, GROWTH, compare, load_baseline, measure,
                                  notes, write_baseline)

ROOT = Path(__file__).resolve().parents[1]
TINY_OPTIONS = dict(interval=2, seq_len=3, batch=2, input_size=2, hidden_size=3,
                    state_size=2, output_size=3)
TINY = {"tiny": TINY_OPTIONS}
TINY_DESCRIBED = "config: interval=2 seq_len=3 batch=2 input_size=2 hidden_size=3 " \
                 "state_size=2 output_size=3"
KEY = "1/W1/fd"
# A figure well above every floor, so growth is measured from the figure itself.
FIGURE = 1e-6


@pytest.fixture(scope="module")
def tiny_doc():
    return measure(TINY)


@pytest.fixture
def docs(tiny_doc):
    """(baseline, current): two independent copies of the tiny document."""
    return copy.deepcopy(tiny_doc), copy.deepcopy(tiny_doc)


def _results(doc):
    return doc["configs"]["tiny"]["results"]


def _one_message(messages):
    """The single message, which must name the configuration and its options."""
    assert len(messages) == 1, messages
    (message,) = messages
    assert message.startswith("tiny: ")
    assert message.endswith(TINY_DESCRIBED)
    return message


# ------------------------------------------------------------------ the rules

def test_identical_documents_have_no_regression(docs):
    baseline, current = docs
    assert compare(baseline, current) == []
    assert notes(baseline, current) == []


@pytest.mark.parametrize(("factor", "expected"), [
    pytest.param(101.0, "1.0e-06 -> 1.0e-04 (101x, limit 100x)", id="101x-flagged"),
    pytest.param(2116.0, "1.0e-06 -> 2.1e-03 (2116x, limit 100x)", id="2116x-flagged"),
    pytest.param(100.0, None, id="100x-allowed"),
    pytest.param(99.0, None, id="99x-allowed"),
    pytest.param(0.01, None, id="shrunk-allowed"),
])
def test_growth_beyond_the_limit_is_flagged(docs, factor, expected):
    baseline, current = docs
    _results(baseline)[KEY]["max_rel_err"] = FIGURE
    _results(current)[KEY]["max_rel_err"] = FIGURE * factor
    messages = compare(baseline, current)
    if expected is None:
        assert messages == []
    else:
        assert f": {KEY} max_rel_err {expected}  config: " in _one_message(messages)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("oracle", ["jax", "fd"])
@pytest.mark.parametrize(("times_floor", "flagged"), [
    pytest.param(101.0, True, id="101x-floor-flagged"),
    pytest.param(99.0, False, id="99x-floor-allowed"),
])
def test_growth_from_a_zero_figure_counts_from_the_floor(docs, dtype, oracle, times_floor,
                                                         flagged):
    baseline, current = docs
    key = f"1/W1/{oracle}"
    for doc in docs:                       # the floor follows the config's dtype
        doc["configs"]["tiny"]["config"]["dtype"] = dtype
    floor = FLOORS[dtype][oracle]
    _results(baseline)[key]["max_rel_err"] = 0.0
    _results(current)[key]["max_rel_err"] = floor * times_floor
    messages = compare(baseline, current)
    if flagged:
        assert f"max_rel_err 0 -> {floor * 101:.1e} (101x the floor {floor:g}, limit 100x)" \
            in _one_message(messages)
    else:
        assert messages == []


def test_pass_to_fail_is_flagged_without_growth(docs):
    baseline, current = docs
    _results(current)[KEY]["passed"] = False
    current["configs"]["tiny"]["passed"] = False
    message = _one_message(compare(baseline, current))
    assert f"{KEY} passed -> FAILED" in message


def test_fail_to_pass_is_not_a_regression(docs):
    baseline, current = docs
    _results(baseline)[KEY]["passed"] = False
    baseline["configs"]["tiny"]["passed"] = False
    assert compare(baseline, current) == []


def test_a_missing_result_is_flagged(docs):
    baseline, current = docs
    del _results(current)[KEY]
    assert f"{KEY} missing now" in _one_message(compare(baseline, current))


def test_a_missing_configuration_is_flagged(docs):
    baseline, current = docs
    current["configs"].clear()
    assert "configuration missing now" in _one_message(compare(baseline, current))


def test_a_changed_option_is_flagged(tiny_doc):
    changed = measure({"tiny": dict(TINY_OPTIONS, batch=3)})
    (message,) = compare(tiny_doc, changed)
    assert message.startswith("tiny: options changed (batch 2 -> 3)")
    assert "config: interval=2 seq_len=3 batch=3" in message


def test_a_check_that_raises_is_flagged(tiny_doc, monkeypatch):
    def broken(*impl, **options):
        raise RuntimeError("boom")
    monkeypatch.setattr(regression, "check", broken)
    message = _one_message(compare(tiny_doc, measure(TINY)))
    assert "check raised RuntimeError: boom" in message


def test_a_new_failing_result_is_flagged(docs):
    baseline, current = docs
    _results(current)["1/h_last/contract"] = {"passed": False, "max_rel_err": None}
    current["configs"]["tiny"]["passed"] = False
    assert "1/h_last/contract new and FAILED" in _one_message(compare(baseline, current))


@pytest.mark.parametrize("what", ["result", "configuration"])
def test_new_passing_entries_are_notes_not_regressions(docs, what):
    baseline, current = docs
    if what == "result":
        _results(current)["4/W1/fd"] = {"passed": True, "max_rel_err": 1e-11}
        expected = "tiny: 1 new result(s) not in the baseline: 4/W1/fd"
    else:
        current["configs"]["extra"] = copy.deepcopy(current["configs"]["tiny"])
        expected = "extra: new configuration, not in the baseline"
    assert compare(baseline, current) == []
    (note,) = notes(baseline, current)
    assert note.startswith(expected)


def test_a_too_large_fd_step_passes_every_check_but_is_a_regression(tiny_doc, monkeypatch):
    # 1000x the step: truncation error ~1e6x larger (~1e-10), still within the FD
    # tolerance, but far above the FD floor's 100x (1e-12).
    monkeypatch.setattr(oracle_fd, "FD_STEP", oracle_fd.FD_STEP * 1000)
    current = measure(TINY)
    assert current["configs"]["tiny"]["passed"]
    messages = compare(tiny_doc, current)
    assert messages
    assert all(m.startswith("tiny: ") and "/fd max_rel_err" in m for m in messages)


# ------------------------------------------------------------------ the document

def test_measure_is_deterministic(tiny_doc):
    assert measure(TINY) == tiny_doc


def test_baseline_file_is_strict_sorted_json(tiny_doc, tmp_path):
    path = tmp_path / "baseline.json"
    write_baseline(tiny_doc, path)
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(tiny_doc, sort_keys=True, indent=1, allow_nan=False) + "\n"
    assert load_baseline(path) == tiny_doc


@pytest.mark.parametrize("text", [
    pytest.param("[]", id="not-an-object"),
    pytest.param('{"format": 99, "configs": {}}', id="wrong-format"),
    pytest.param('{"format": 1}', id="no-configs"),
])
def test_load_baseline_rejects_other_documents(tmp_path, text):
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=r"baseline=.*expected a format-1 document"):
        load_baseline(path)


# ------------------------------------------------------------------ the CI check

def test_baseline_has_exactly_the_configs():
    assert list(load_baseline()["configs"]) == sorted(CONFIGS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_baseline_matches_current_code(name):
    """The CI regression check, one configuration at a time (all together: a few s)."""
    baseline = load_baseline()
    assert name in baseline["configs"], "run python -m gradcheck.regression --update"
    old = {"configs": {name: baseline["configs"][name]}}
    problems = compare(old, measure({name: CONFIGS[name]}), growth=GROWTH)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the command

@pytest.fixture
def project(tmp_path, monkeypatch):
    """The project's own check cut to the tiny config, its baseline in a temporary folder."""
    monkeypatch.setattr(regression, "CONFIGS", TINY)
    path = tmp_path / "regression_baseline.json"
    monkeypatch.setattr(regression, "BASELINE", path)
    return path


def test_the_project_baseline_lives_in_the_checkout_not_the_package():
    package = Path(regression.__file__).resolve().parent
    assert regression.project_baseline() == ROOT / "tests" / "regression_baseline.json"
    assert package not in regression.BASELINE.parents
    assert not list(package.glob("*.json"))


def test_main_update_then_compare(project, capsys):
    assert main(["--update"]) == ExitCode.OK
    assert load_baseline(project)["configs"].keys() == {"tiny"}
    capsys.readouterr()
    assert main([]) == ExitCode.OK
    out = capsys.readouterr().out
    n = len(load_baseline(project)["configs"]["tiny"]["results"])
    assert out == f"regression check: 1 configurations, {n} results, no regression\n"


def test_main_summary_first_then_one_line_per_configuration(project, capsys, tiny_doc):
    baseline = copy.deepcopy(tiny_doc)
    for key in ("9/W1/fd", "9/W2/fd", "9/U/fd"):
        baseline["configs"]["tiny"]["results"][key] = {"passed": True, "max_rel_err": 1e-11}
    write_baseline(baseline, project)
    assert main([]) == ExitCode.FAILED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("regression check: 1 of 1 configurations regressed (3 "
                               "result(s)); if intended, run python -m gradcheck.regression "
                               "--update")
    assert lines[1] == f"tiny: 9/U/fd missing now; 9/W1/fd missing now; and 1 more  " \
                       f"{TINY_DESCRIBED}"
    assert len(lines) == 2


def test_main_json_is_one_document_naming_what_regressed(project, capsys, tiny_doc):
    baseline = copy.deepcopy(tiny_doc)
    baseline["configs"]["tiny"]["results"]["9/W1/fd"] = {"passed": True, "max_rel_err": 1e-11}
    write_baseline(baseline, project)
    assert main(["--json"]) == ExitCode.FAILED
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False and doc["configurations"] == 1
    assert doc["regressed"] == {"tiny": {"problems": ["9/W1/fd missing now"],
                                         "options": TINY_DESCRIBED[len("config: "):]}}


def test_main_verbose_names_every_regression(project, capsys, tiny_doc):
    baseline = copy.deepcopy(tiny_doc)
    for key in ("9/W1/fd", "9/W2/fd", "9/U/fd"):
        baseline["configs"]["tiny"]["results"][key] = {"passed": True, "max_rel_err": 1e-11}
    write_baseline(baseline, project)
    assert main(["-v"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "9/U/fd missing now; 9/W1/fd missing now; 9/W2/fd missing now  config:" in out


def test_main_without_a_baseline_is_a_usage_error(project, capsys):
    assert main([]) == ExitCode.USAGE
    assert "python -m gradcheck.regression --update" in capsys.readouterr().err


def test_installed_package_has_no_reference_baseline_to_advise(monkeypatch, capsys):
    """Outside a source checkout, nothing advises rewriting a file inside the package."""
    monkeypatch.setattr(regression, "project_baseline", lambda: None)
    assert main([]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not in an installed package" in err
    assert "--impl FILE.py --baseline FILE" in err


def test_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "gradcheck.regression", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--update" in proc.stdout


# ------------------------------------------------ a user's implementation (--impl)

LOSSY = '''
import reference

def loss_and_grads(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["b2"] = grads["b2"] * (1 + 1e-12)     # a precision loss every check still passes
    return loss, grads, h_last
'''


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    """(correct spec, lossy spec, baseline path), the battery cut to the tiny config."""
    monkeypatch.setattr(regression, "IMPL_CONFIGS", TINY)
    (tmp_path / "lossy.py").write_text(LOSSY)
    return (f"{ROOT / 'tests' / 'impls' / 'correct.py'}:wrapped",
            f"{tmp_path / 'lossy.py'}:loss_and_grads", tmp_path / "mine.json")


def test_impl_update_then_a_tiny_precision_loss_is_flagged(user_files, capsys):
    correct, lossy, path = user_files
    assert main(["--impl", correct, "--baseline", str(path), "--update"]) == ExitCode.OK
    doc = load_baseline(path)
    assert doc["impl"] == correct and doc["configs"]["tiny"]["passed"]
    assert main(["--impl", correct, "--baseline", str(path)]) == ExitCode.OK
    capsys.readouterr()
    assert gradcheck_check_passes(lossy)
    assert main(["--impl", lossy, "--baseline", str(path), "-v"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if line.startswith("tiny: ")]
    assert len(flagged) == 1 and "/b2/jax max_rel_err" in flagged[0], out
    assert "limit 100x" in flagged[0]
    assert all(p.split()[0].split("/")[1] == "b2"
               for p in flagged[0].split("  config:")[0][len("tiny: "):].split("; ")), out
    assert f"--baseline {path} --update" in out


def gradcheck_check_passes(spec):
    from gradcheck import check
    return check(spec, **TINY_OPTIONS).passed


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--impl", "x.py:f"], "--impl needs --baseline FILE", id="no-baseline"),
    pytest.param(["--baseline", "{tmp}/b.json"], "--baseline needs --impl", id="no-impl"),
    pytest.param(["--baseline", "{tmp}/b.json", "--update"], "--baseline needs --impl",
                 id="update-no-impl"),
    pytest.param(["--bogus"], "unrecognized arguments: --bogus", id="unknown-flag"),
    pytest.param(["--impl", "nofile.py:f", "--baseline", "{tmp}/b.json", "--update"],
                 "--impl nofile.py:f: no such file", id="missing-file"),
    pytest.param(["--impl", "nocolon", "--baseline", "{tmp}/b.json"],
                 "cannot read the baseline", id="no-baseline-file"),
])
def test_impl_usage_errors(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "b.json").exists()


def test_subcommand_bad_flag_returns_2_without_systemexit(capsys):
    from gradcheck.cli import main as gradcheck_main
    assert gradcheck_main(["regression", "--bogus"]) == ExitCode.USAGE


def test_gradcheck_regression_subcommand(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "regression", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--impl" in proc.stdout and "--baseline" in proc.stdout


# ------------------------------------------------ a cell's implementation (--cell)

def test_impl_of_a_cell_update_then_a_zoo_bug_regresses(tmp_path, monkeypatch, capsys):
    """--cell lstm: the battery's configurations with the cell, against the user's file."""
    monkeypatch.setattr(regression, "IMPL_CONFIGS", TINY)
    loop = ROOT / "tests" / "impls" / "cells" / "lstm_loop.py"
    line = "        dc = dh * o * (1 - tc ** 2) + dc_next"
    assert loop.read_text().count(line) == 1
    (tmp_path / "bug.py").write_text(loop.read_text().replace(line, line[:-len(" + dc_next")]))
    path = tmp_path / "mine.json"
    assert main(["--cell", "lstm", "--impl", f"{loop}:loss_and_grads", "--baseline", str(path),
                 "--update"]) == ExitCode.OK
    doc = load_baseline(path)
    assert doc["configs"]["tiny"]["passed"] and doc["configs"]["tiny"]["config"]["cell"] == "lstm"
    assert any("/c0/" in k for k in doc["configs"]["tiny"]["results"])
    capsys.readouterr()
    assert main(["--cell", "lstm", "--impl", f"{tmp_path / 'bug.py'}:loss_and_grads",
                 "--baseline", str(path)]) == ExitCode.FAILED
    assert "tiny: " in capsys.readouterr().out


def test_for_cell_leaves_out_what_the_cell_cannot_run():
    configs = {"tanh": dict(interval=2), "relu_f2": dict(interval=2, activations=(
        "tanh", "relu", "identity"))}
    assert regression.for_cell(configs) is configs
    assert regression.for_cell(configs, "lstm") == {"tanh": dict(interval=2, cell="lstm")}
    assert regression.for_cell(configs, "gru", reset_after=True) == {
        "tanh": dict(interval=2, cell="gru", reset_after=True)}


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--cell", "lstm"], "--cell lstm needs --impl and --baseline", id="no-impl"),
    pytest.param(["--cell", "tcn", "--impl", "x.py:f", "--baseline", "{tmp}/b.json"],
                 "--cell tcn: expected one of rnn, lstm, gru", id="unknown"),
    pytest.param(["--reset-after", "--impl", "x.py:f", "--baseline", "{tmp}/b.json"],
                 "only for --cell gru", id="option-of-another-cell"),
])
def test_cell_usage_errors(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
