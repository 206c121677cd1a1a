"""Tests of gradcheck.regression: what compare() flags, and the CI check itself.

The synthetic cases edit a document measured from one tiny configuration, so they
exercise the real layout of the baseline. ``test_baseline_matches_current_code`` is
the CI regression check: it fails when the committed ``gradcheck/baseline.json`` no
longer describes the code (rerun ``python -m gradcheck.regression --update`` if the
change is intended).
"""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck import oracle_fd, regression
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

def test_main_update_then_compare(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(regression, "CONFIGS", TINY)
    path = tmp_path / "baseline.json"
    assert regression.main(["--update", "--baseline", str(path)]) == ExitCode.OK
    assert load_baseline(path)["configs"].keys() == {"tiny"}
    capsys.readouterr()
    assert regression.main(["--baseline", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    n = len(load_baseline(path)["configs"]["tiny"]["results"])
    assert out == f"regression check: 1 configurations, {n} results, no regression\n"


def test_main_prints_each_regression_and_fails(tmp_path, monkeypatch, capsys, tiny_doc):
    monkeypatch.setattr(regression, "CONFIGS", TINY)
    baseline = copy.deepcopy(tiny_doc)
    baseline["configs"]["tiny"]["results"]["9/W1/fd"] = {"passed": True, "max_rel_err": 1e-11}
    path = tmp_path / "baseline.json"
    write_baseline(baseline, path)
    assert regression.main(["--baseline", str(path)]) == ExitCode.FAILED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"tiny: 9/W1/fd missing now  {TINY_DESCRIBED}"
    assert lines[-1].startswith("regression check: 1 regression(s) in 1 configurations")


def test_main_without_a_baseline_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "missing.json"
    assert regression.main(["--baseline", str(path)]) == ExitCode.USAGE
    assert "python -m gradcheck.regression --update" in capsys.readouterr().err


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
    assert regression.main(["--impl", correct, "--baseline", str(path), "--update"]) == \
        ExitCode.OK
    doc = load_baseline(path)
    assert doc["impl"] == correct and doc["configs"]["tiny"]["passed"]
    assert regression.main(["--impl", correct, "--baseline", str(path)]) == ExitCode.OK
    capsys.readouterr()
    assert gradcheck_check_passes(lossy)
    assert regression.main(["--impl", lossy, "--baseline", str(path)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if line.startswith("tiny: ")]
    assert flagged and all("/b2/" in line for line in flagged), out
    assert any("/b2/jax max_rel_err" in line and "limit 100x" in line for line in flagged)
    assert f"--baseline {path} --update" in out


def gradcheck_check_passes(spec):
    from gradcheck import check
    return check(spec, **TINY_OPTIONS).passed


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--impl", "x.py:f"], "--impl needs --baseline FILE", id="no-baseline"),
    pytest.param(["--impl", "nofile.py:f", "--baseline", "{tmp}/b.json", "--update"],
                 "--impl nofile.py:f: no such file", id="missing-file"),
    pytest.param(["--impl", "nocolon", "--baseline", "{tmp}/b.json"],
                 "cannot read the baseline", id="no-baseline-file"),
])
def test_impl_usage_errors(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert regression.main(argv) == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_gradcheck_regression_subcommand(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "regression", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--impl" in proc.stdout and "--baseline" in proc.stdout
