"""Hostile implementations (tests/impls/hostile/hostile.py) through the isolated path.

Each is handed to ``gradcheck --interval 3 --json --timeout T --memory-limit SIZE --impl``
(in-process ``main()``: the implementation itself runs in the worker process), and must
end in exit 1 with one strict JSON document saying ``"passed": false`` and naming what it
did; correct but noisy ones exit 0 with clean JSON. The ones that attack the process
(exit codes, Ctrl-C, leftover children) run the command as a subprocess.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import gradcheck
from gradcheck import _reference
from gradcheck.judge import NOT_JUDGED
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from tests.helpers import SMALL, processes_named
from tests.test_cli import IMPLS, SMALL_FLAGS, strict_json

HOSTILE = IMPLS / "hostile" / "hostile.py"
# Seconds per call for the hostile ones that hang: long enough for a small window's
# call (milliseconds) on a loaded CI machine, short enough to keep the suite fast.
HANG_TIMEOUT = "1"
WRONG_U = r"worst element .* error .* is .*x the allowed"

# (function, --timeout, --memory-limit, name of the failing result, regex on its message)
CASES = [
    pytest.param("patches_gradcheck", "10", "4G", "U", WRONG_U, id="patches-gradcheck"),
    pytest.param("patches_numpy", "10", "4G", "U", WRONG_U, id="patches-numpy"),
    pytest.param("patches_reference", "10", "4G", "U", WRONG_U, id="patches-reference"),
    pytest.param("exit_hooks", "10", "4G", "U", WRONG_U, id="exit-hooks"),
    pytest.param("rewrites_after_return", "10", "4G", "U", WRONG_U,
                 id="thread-rewrites-returned-arrays"),
    pytest.param("non_daemon_thread", "10", "4G", "U", WRONG_U, id="non-daemon-thread"),
    pytest.param("os_exit_0", "10", "4G", "crashed",
                 r"^its process exited with status 0 \(sys.exit, os._exit or an exit hook\) "
                 r"in window 1$", id="os-exit-0"),
    pytest.param("sys_exit_0", "10", "4G", "exception",
                 r"^raised SystemExit: 0 at hostile.py:\d+ in sys_exit_0$", id="sys-exit-0"),
    pytest.param("segfault", "10", "4G", "crashed",
                 r"^its process was killed by signal SIGSEGV \(a segmentation fault\) in "
                 r"window 1$", id="segfault"),
    pytest.param("kills_itself", "10", "4G", "crashed",
                 r"killed by signal SIGKILL .* in window 1$", id="sigkill-self"),
    pytest.param("infinite_loop", HANG_TIMEOUT, "4G", "timeout",
                 r"^did not return within --timeout 1 s in window 1; its process was killed$",
                 id="infinite-loop"),
    pytest.param("sleeps", HANG_TIMEOUT, "4G", "timeout", r"within --timeout 1 s in window 1",
                 id="sleep"),
    pytest.param("memory_hog", "10", "512M", "memory",
                 r"^ran out of memory under --memory-limit 512M in window 1: raised "
                 r"MemoryError.* at hostile.py:\d+ in memory_hog$", id="memory-hog"),
    pytest.param("evades_the_data_limit", "10", "512M", "memory",
                 r"^its process used more than --memory-limit 512M of memory in window 1; "
                 r"it was killed$", id="memory-hog-evading-the-rlimit"),
    pytest.param("complex_grads", "10", "4G", "return_value",
                 r"^grads\['W1'\] holds complex \(dtype complex128\); expected real floats",
                 id="complex"),
    pytest.param("object_grads", "10", "4G", "return_value",
                 r"^grads\['b2'\] holds Python objects \(dtype object\)", id="object"),
    pytest.param("bool_grads", "10", "4G", "return_value",
                 r"^grads\['b1'\] holds bool", id="bool"),
    pytest.param("str_grads", "10", "4G", "return_value",
                 r"^grads\['b3'\] holds strings", id="str"),
    pytest.param("huge_int_loss", "10", "4G", "return_value",
                 r"^the loss is an integer too large for a float$", id="huge-int"),
    pytest.param("unconvertible", "10", "4G", "return_value",
                 r"^grads\['W3'\] could not be converted to an array: raised RuntimeError: "
                 r"cannot be converted at hostile.py:\d+ in __array__$", id="unconvertible"),
    pytest.param("writes_to_every_pipe", "10", "4G", "protocol",
                 r"^its process sent an answer that is not in the checker's format in "
                 r"window 1; it was killed$", id="forged-answer"),
    pytest.param("raises_deep", "10", "4G", "exception",
                 r"^raised LinAlgError: Singular matrix at hostile.py:\d+ in raises_deep$",
                 id="raises-inside-numpy"),
]


def _flags(func, timeout, memory):
    return ["--interval", "3", *SMALL_FLAGS, "--json", "--timeout", timeout,
            "--memory-limit", memory, "--impl", f"{HOSTILE}:{func}"]


@pytest.mark.parametrize(("func", "timeout", "memory", "name", "message"), CASES)
def test_hostile_impl_is_a_verdict(capfd, func, timeout, memory, name, message):
    started = time.perf_counter()
    code = main(_flags(func, timeout, memory))
    out, err = capfd.readouterr()
    assert code == ExitCode.FAILED, err
    doc = strict_json(out)
    assert doc["passed"] is False
    assert doc["isolation"]["isolated"] is True
    found = [r for r in doc["results"] if r["name"] == name and not r["passed"]]
    assert found, doc["results"]
    assert any(re.search(message, r["message"]) for r in found), found
    assert "Traceback" not in err
    assert time.perf_counter() - started < 60


def test_noisy_threads_and_exit_hooks_do_not_touch_the_json(capfd):
    code = main(_flags("printing_thread", "10", "4G"))
    out, err = capfd.readouterr()
    assert code == ExitCode.OK, err
    assert strict_json(out)["passed"] is True
    assert "the implementation's stdout (excerpt)" in err
    assert '{"passed": true}' in err and "noise from a thread" in err


def test_time_budget_stops_the_extra_calls_and_says_so():
    report = gradcheck.check(f"{HOSTILE}:slow_and_wrong", interval=3, timeout=2,
                             time_budget=1.0, **SMALL)
    assert not report.passed
    assert "U" in {r.name for r in report.failures}
    assert report.skipped_calls and re.search(
        r"^the attribution of window 1 to time steps stopped: .*time budget",
        report.skipped_calls[0])
    assert report.to_dict()["skipped_calls"] == report.skipped_calls
    assert f"skipped: {report.skipped_calls[0]}" in report.format_table()
    assert report.skipped == []          # no gradient was left out of the comparison


# ------------------------------------------------------------------ as a real command

def _command(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "gradcheck", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_the_command_exits_1_with_one_json_document_when_the_worker_exits_0():
    proc = _command(*_flags("os_exit_0", "10", "4G"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert strict_json(out)["passed"] is False


def test_ctrl_c_is_one_line_exit_130_and_kills_the_worker(shared_dir):
    pidfile = shared_dir / "pids"
    name = f"gchost-{os.getpid()}"
    env = dict(os.environ, GRADCHECK_TEST_PIDFILE=str(pidfile), GRADCHECK_TEST_NAME=name)
    proc = _command(*_flags("pid_then_loop", "60", "4G"), env=env)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().count(" ") == 1
               and len(processes_named(name)) == 2):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == "gradcheck: interrupted" and out == ""
    time.sleep(0.2)
    assert not processes_named(name)


def test_children_of_the_implementation_die_with_the_check(shared_dir, monkeypatch):
    pidfile = shared_dir / "pids"
    name = f"gchost-{os.getpid()}"
    monkeypatch.setenv("GRADCHECK_TEST_PIDFILE", str(pidfile))
    monkeypatch.setenv("GRADCHECK_TEST_NAME", name)
    report = gradcheck.check(f"{HOSTILE}:child_processes", interval=3, timeout=3, **SMALL)
    assert [r.name for r in report.failures] == ["timeout"]
    assert len(pidfile.read_text().split()) == 4
    time.sleep(0.2)
    assert not processes_named(name)


# ------------------------------------------------------------------ calibration

@pytest.fixture
def reference_with_wrong_dU(monkeypatch):
    """The project's reference (as the checker loaded it) with dU 1% too large."""
    right = _reference.reference.loss_and_grads

    def wrong(params, x, y, h0, **options):
        value, grads, h_last = right(params, x, y, h0, **options)
        return value, dict(grads, U=grads["U"] * grads["U"].dtype.type(1.01)), h_last
    monkeypatch.setattr(_reference.reference, "loss_and_grads", wrong)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_reference_with_a_1_percent_dU_error_fails_its_own_check(reference_with_wrong_dU,
                                                                    dtype):
    report = gradcheck.check(interval=3, dtype=dtype, **SMALL)
    assert not report.passed
    failing = {r.name for r in report.failures}
    assert failing == {"U"}, report.format_table()
    assert not any(r.message.startswith(NOT_JUDGED) for r in report.failures)
