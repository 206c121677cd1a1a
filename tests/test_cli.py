"""Tests of gradcheck.cli: the table, the JSON document, exit codes and usage errors.

Everything runs in-process through ``main(argv)`` except two real subprocesses that
check what a shell user sees (``python -m gradcheck``).
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck.cli import main
from gradcheck.errors import ExitCode
from gradcheck.untrusted import GRAD_NAMES
from tests.helpers import SMALL

ROOT = Path(__file__).resolve().parents[1]
IMPLS = Path(__file__).resolve().parent / "impls"
SMALL_FLAGS = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]
ORACLES = ("jax", "fd")


def _reject_constant(token):
    raise ValueError(f"non-standard JSON token {token}")


def strict_json(text):
    """Parse ``text`` as exactly one strict JSON document (no NaN/Infinity, nothing after)."""
    return json.loads(text, parse_constant=_reject_constant)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param('{"a": NaN}', "non-standard JSON token NaN", id="nan"),
    pytest.param('{"a": -Infinity}', "non-standard JSON token -Infinity", id="infinity"),
    pytest.param('{"a": 1}\n{"a": 1}\n', "Extra data", id="two-documents"),
    pytest.param("", "Expecting value", id="empty"),
])
def test_strict_json_rejects_what_the_cli_must_not_print(text, message):
    with pytest.raises(ValueError, match=message):
        strict_json(text)


def run_json(capfd, *argv):
    """Run ``main`` with --json; return (exit code, parsed stdout, stderr).

    capfd, not capsys, so that anything written at the file-descriptor level counts."""
    code = main(["--interval", "3", *argv, "--json"])
    out, err = capfd.readouterr()
    return code, strict_json(out), err


# ------------------------------------------------------------------ the table

def test_passing_output_is_short_the_verdict_first(capsys):
    assert main(["--interval", "3"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("PASSED: all 20 comparisons agree (the largest error is ")
    assert "B=128 I=10 H=20 R=5 O=100" in lines[2]
    assert len(lines) == 4, lines


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_adds_the_table_of_every_comparison(capsys, flag):
    assert main(["--interval", "3", flag]) == ExitCode.OK
    out, _ = capsys.readouterr()
    assert out.startswith("PASSED")
    for name in GRAD_NAMES + ("loss", "h_last"):
        assert re.search(rf"^1\s+{name}\s+jax\s", out, re.MULTILINE), name


def test_a_failing_check_leads_with_verdict_and_diagnosis_one_line_per_array(capsys):
    argv = ["--bug", "no_dh_next", "--seq-len", "7", *SMALL_FLAGS]
    assert main(argv) == ExitCode.FAILED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAILED: ")
    assert lines[1].startswith("diagnosis: The state derivative is not passed back")
    arrays = [line for line in lines if line.startswith("  ")]
    assert [a.split()[0] for a in arrays] == ["W1", "b1", "W2", "U", "b2", "x", "h0"]
    for a in arrays:            # both oracles on one line, the windows grouped
        assert "(windows 1-3)" in a or "(windows 1-2)" in a or "(window" in a, a
        assert ", jax " in a and ", fd " in a, a
    assert not any(line.startswith("FAIL window") for line in lines)
    assert not any(re.match(r"^\d+\s+W1\s+jax", line) for line in lines)   # no table
    assert lines[-1] == "(every comparison, in a table: --verbose)"


# ------------------------------------------------------------------ the JSON document

def test_json_is_one_strict_document_with_the_promised_keys(capfd):
    code, doc, _ = run_json(capfd, *SMALL_FLAGS)
    assert code == ExitCode.OK
    assert doc["passed"] is True
    assert {k: doc["config"][k] for k in SMALL} == SMALL
    assert doc["config"]["interval"] == 3
    for r in doc["results"]:
        assert {"name", "oracle", "passed"} <= r.keys()
        assert r["passed"] is True
    compared = {(r["name"], r["oracle"]) for r in doc["results"]}
    expected = ({(n, o) for n in GRAD_NAMES for o in ORACLES}
                | {("loss", "jax"), ("h_last", "jax")})
    assert compared == expected


def _without_timings(doc):
    return {k: v for k, v in doc.items() if k != "timings"}


def test_json_same_seed_same_document(capfd):
    _, first, _ = run_json(capfd, *SMALL_FLAGS, "--seed", "7", "--seq-len", "5")
    _, second, _ = run_json(capfd, *SMALL_FLAGS, "--seed", "7", "--seq-len", "5")
    assert "timings" in first
    assert _without_timings(first) == _without_timings(second)


def test_json_different_seed_different_figures(capfd):
    _, first, _ = run_json(capfd, *SMALL_FLAGS, "--seed", "1")
    _, second, _ = run_json(capfd, *SMALL_FLAGS, "--seed", "2")
    figures = [[(r["name"], r["oracle"], r["max_abs_err"], r["impl_value"])
                for r in doc["results"]] for doc in (first, second)]
    assert figures[0] != figures[1]
    assert [r[:2] for r in figures[0]] == [r[:2] for r in figures[1]]   # same comparisons


def test_json_goes_to_sys_stdout():
    """An in-process caller (a notebook, redirect_stdout) receives the document."""
    with contextlib.redirect_stdout(io.StringIO()) as buffer:
        assert main(["--interval", "3", *SMALL_FLAGS, "--json"]) == ExitCode.OK
    assert strict_json(buffer.getvalue())["passed"] is True


# ------------------------------------------------------------------ usage errors

BAD_USAGE = [
    pytest.param(["--interval", "0"], r"--interval 0: expected an integer >= 1",
                 id="interval-zero"),
    pytest.param(["--interval", "x"], r"--interval: expected an integer, got 'x'",
                 id="interval-not-int"),
    pytest.param(["--interval", "3", "--seq-len", "0"], r"--seq-len 0: .*>= 1",
                 id="seq-len-zero"),
    pytest.param(["--interval", "3", "--batch", "-1"], r"--batch -1: .*>= 1",
                 id="batch-negative"),
    pytest.param(["--interval", "3", "--hidden-size", "2.5"],
                 r"--hidden-size: expected an integer, got '2.5'", id="hidden-size-float"),
    pytest.param(["--interval", "3", "--loss", "foo"], r"--loss foo: expected one of l2, ce, bce",
                 id="loss-unknown"),
    pytest.param(["--interval", "3", "--activations", "tanh,tanh"],
                 r"--activations tanh,tanh: expected three names", id="activations-two"),
    pytest.param(["--interval", "3", "--activations", "tanh,foo,identity"],
                 r"--activations tanh,foo,identity: .*each one of tanh, sigmoid, relu, identity",
                 id="activations-unknown"),
    pytest.param(["--interval", "3", "--loss", "ce", "--output-size", "1"],
                 r"--output-size 1: loss ce is a softmax .* use an output size >= 2",
                 id="ce-one-class"),
    pytest.param(["--interval", "3", "--loss", "ce", "--activations", "tanh,tanh,tanh"],
                 r"--activations tanh,tanh,tanh: loss ce .*needs f3 = identity",
                 id="ce-needs-identity"),
    pytest.param(["--interval", "3", "--loss", "bce", "--activations", "tanh,tanh,sigmoid"],
                 r"--activations tanh,tanh,sigmoid: loss bce .*needs f3 = identity",
                 id="bce-needs-identity"),
    pytest.param(["--interval", "3", "--reduction", "avg"],
                 r"--reduction avg: expected one of mean, sum", id="reduction-unknown"),
    pytest.param(["--interval", "3", "--dtype", "float16"],
                 r"--dtype float16: expected one of float64, float32", id="dtype-float16"),
    pytest.param(["--interval", "3", "--seed", "-1"], r"--seed -1: expected an integer >= 0",
                 id="seed-negative"),
    pytest.param(["--interval", "3", "--mode", "bogus"],
                 r"--mode bogus: expected one of full", id="mode-unknown"),
    pytest.param(["--interval", "3", "--impl", "m:f", "--timeout", "-1"],
                 r"^gradcheck: error: --timeout -1: expected a number of seconds > 0$",
                 id="timeout-negative"),
    pytest.param(["--interval", "3", "--impl", "m:f", "--timeout", "inf"],
                 r"^gradcheck: error: --timeout inf: expected a number of seconds > 0$",
                 id="timeout-inf"),
    pytest.param(["--interval", "3", "--impl", "m:f", "--time-budget", "x"],
                 r"^gradcheck: error: --time-budget x: expected a number of seconds > 0$",
                 id="time-budget-text"),
    pytest.param(["--interval", "3", "--impl", "m:f", "--memory-limit", "4X"],
                 r"^gradcheck: error: --memory-limit 4X: expected a size such as 512M or 4G "
                 r"\(K, M, G, T: powers of 1024\), at least 128M$", id="memory-limit-unit"),
    pytest.param(["--interval", "3", "--impl", "m:f", "--memory-limit", "1M"],
                 r"^gradcheck: error: --memory-limit 1M: .* at least 128M$",
                 id="memory-limit-too-small"),
    pytest.param(["--interval", "3", "--timeout", "5"],
                 r"^gradcheck: error: --timeout, --time-budget and --memory-limit apply to "
                 r"--impl$", id="timeout-without-impl"),
    pytest.param(["--interval", "3", "--impl", "nofile.py:f"],
                 r"--impl nofile.py:f: no such file 'nofile.py'", id="impl-no-file"),
    pytest.param(["--interval", "3", "--impl", f"{IMPLS / 'broken.py'}:nosuch"],
                 r"--impl .*broken.py:nosuch: .*has no attribute 'nosuch'",
                 id="impl-no-function"),
    pytest.param(["--interval", "3", "--impl", "justtext"],
                 r"--impl justtext: expected FILE\.py\[:FUNC\] or MODULE:FUNC", id="impl-no-colon"),
    pytest.param(["--interval", "3", "--impl", "reference:"],
                 r"--impl reference:: expected FILE\.py\[:FUNC\] or MODULE:FUNC", id="impl-no-func"),
    pytest.param(["--interval", "3", "--impl", "no_such_module_xyz:f"],
                 r"--impl no_such_module_xyz:f: importing no_such_module_xyz raised "
                 r"ModuleNotFoundError: No module named 'no_such_module_xyz'$",
                 id="impl-no-module"),     # (no frame of the import machinery named)
    pytest.param(["--interval", "3", "--impl", "gradcheck:__version__"],
                 r"--impl gradcheck:__version__: gradcheck.__version__ is not callable",
                 id="impl-not-callable"),
    pytest.param(["--interval", "3", "--impl", f"{IMPLS / 'raises_on_import.py'}:f"],
                 r"--impl .*raises_on_import.py:f: importing .* raised RuntimeError: "
                 r"raises_on_import.py fails on purpose", id="impl-raises-on-import"),
    pytest.param(["--interval", "3", "--batch", "100000000"],
                 r"--batch 100000000: these sizes need about [\d.]+ GiB; this machine allows",
                 id="too-large-for-memory"),
    pytest.param(["--interval", "3", "--bogus"], r"unrecognized arguments: --bogus",
                 id="unknown-flag"),
    pytest.param(["--batch", "4"], r"--interval is required", id="interval-missing"),
    pytest.param([], r"--interval is required", id="no-arguments"),
    pytest.param(["--interval"], r"--interval: expected one argument", id="interval-no-value"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_USAGE)
def test_bad_usage_is_one_stderr_line_and_exit_2(capfd, argv, message):
    assert main(argv) == ExitCode.USAGE
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradcheck: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_bad_usage_with_json_is_one_stderr_line_and_exit_2(capfd):
    assert main(["--interval", "3", "--loss", "foo", "--json"]) == ExitCode.USAGE
    out, err = capfd.readouterr()
    assert out == ""
    assert err == "gradcheck: error: --loss foo: expected one of l2, ce, bce\n"


def test_too_large_for_memory_names_the_size_that_was_given(capfd):
    assert main(["--interval", "3", "--output-size", "1000000000"]) == ExitCode.USAGE
    _, err = capfd.readouterr()
    assert "--batch" not in err
    assert "--output-size 1000000000" in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == ExitCode.OK
    out, _ = capsys.readouterr()
    assert "--interval" in out and "Exit codes" in out


# ------------------------------------------------------------------ a real process

def _run_module(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gradcheck", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_subprocess_default_config_json():
    proc = _run_module("--interval", "3", "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    doc = strict_json(proc.stdout)
    assert doc["passed"] is True
    assert doc["config"]["batch"] == 128


def test_subprocess_bad_flag_is_one_line_without_traceback():
    proc = _run_module("--interval", "3", "--loss", "foo")
    assert proc.returncode == ExitCode.USAGE
    assert proc.stdout == ""
    assert proc.stderr == "gradcheck: error: --loss foo: expected one of l2, ce, bce\n"
    assert "Traceback" not in proc.stderr


def test_an_unloadable_impl_is_named_as_the_user_gave_it_not_the_workers_copy(capfd):
    # The worker loads a private copy of the file; the message names the user's path.
    spec = f"{IMPLS / 'raises_on_import.py'}:f"
    assert main(["--interval", "3", "--impl", spec]) == ExitCode.USAGE
    err = capfd.readouterr().err
    assert err.startswith(f"gradcheck: error: --impl {spec}: "), err
    assert "gradcheck-worker" not in err, err
