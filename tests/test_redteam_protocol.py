"""Red-team tests of the checker's protocol with its worker (issue 16, items 1, 4, 5, 6).

Each test is one attack by code written to cheat (tests/impls/hostile/protocol.py) and
the verdict it must end in. Whatever the attack, a wrong implementation never exits 0,
the run never hangs and never ends in a traceback. They run as root and as an ordinary
user (CI runs them twice, ``-m redteam``); what the kernel lets only one of them do is
said where a test depends on it.
"""
import json
import os
import subprocess
import sys
import time

import jax  # noqa: F401  (imported before pytester's in-process runs, as in
import pytest  # test_pytest_plugin.py: pytester drops the modules an inner run imported,
#                and a second import of jaxlib in one process aborts it)

import gradcheck
import gradcheck.oracle_jax  # noqa: F401  (likewise: the inner runs' oracle)
from gradcheck import sandbox
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from tests.helpers import SMALL, processes_named
from tests.test_cli import IMPLS, SMALL_FLAGS, strict_json

pytestmark = pytest.mark.redteam
pytest_plugins = ["pytester"]

ATTACKS = IMPLS / "hostile" / "protocol.py"
ROOT = IMPLS.parent.parent


def _spec(func):
    return f"{ATTACKS}:{func}"


def _flags(func, *more, timeout="10"):
    return ["--interval", "3", *SMALL_FLAGS, "--json", "--timeout", timeout, *more,
            "--impl", _spec(func)]


def _failed_with(capfd, argv, names):
    """Runs the command line in this process; asserts exit 1, a strict JSON document that
    does not pass, no traceback, and a failing result for each of ``names``; the doc."""
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == ExitCode.FAILED, err
    assert "Traceback" not in err
    doc = strict_json(out)
    assert doc["passed"] is False
    failing = {r["name"] for r in doc["results"] if not r["passed"]}
    assert set(names) <= failing, doc["results"]
    return doc


# ------------------------------------------------------------------ 1. what is compared

GRADS = ("W1", "b1", "W2", "U", "b2", "W3", "b3", "x", "h0")


@pytest.mark.parametrize(("func", "missing"), [
    pytest.param("claims_no_grads", GRADS, id="answer-says-no-grads"),
    pytest.param("loss_alone", GRADS + ("h_last",), id="loss-alone-on-the-pipe"),
    pytest.param("forward_alone", GRADS, id="loss-and-h_last-on-the-pipe-then-exit-0"),
    pytest.param("grads_alone", ("loss", "h_last"), id="grads-without-loss-or-h_last"),
])
def test_an_answer_lacking_arrays_fails_naming_each(capfd, func, missing):
    doc = _failed_with(capfd, _flags(func), ["missing_grad" if m in GRADS else "return_value"
                                             for m in missing])
    messages = " ".join(r["message"] for r in doc["results"] if not r["passed"])
    for name in missing:
        assert (f"the answer carries no {name}, so it could not be compared" in messages
                or f"grads has no {name!r}" in messages), messages
    compared = {r["name"] for r in doc["results"] if r["oracle"] in ("jax", "fd")}
    assert not compared & set(missing)


@pytest.mark.parametrize("func", ["claims_no_grads", "loss_alone", "grads_alone"])
def test_the_library_check_fails_an_answer_lacking_arrays(func):
    report = gradcheck.check(_spec(func), interval=3, timeout=10, **SMALL)
    assert not report.passed and report.status == "failed"


def test_skipped_gradients_are_the_only_ones_left_out():
    """--skip x,h0 is the user's word, not the worker's: the rest must all be there."""
    report = gradcheck.check(_spec("claims_no_grads"), interval=3, timeout=10,
                             skip=("x", "h0"), **SMALL)
    assert not report.passed
    named = {r.message for r in report.failures if r.oracle == "contract"}
    assert any("'U'" in m or " U," in m for m in named), named
    assert not any("'x'" in m or "'h0'" in m for m in named), named


@pytest.mark.parametrize("func", ["claims_no_grads", "forward_alone"])
def test_the_pytest_battery_fails_an_answer_lacking_arrays(pytester, func):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={_spec(func)}", "-k", "loss_ce")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("func", ["declines_everything", "declines_by_forgery"])
def test_a_pytest_battery_where_every_configuration_is_declined_fails(pytester, func):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={_spec(func)}", "-k",
                                          "loss_ce or all_sizes_1")
    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "declined every configuration of the battery that ran (2): nothing was checked" \
        in result.stdout.str()


def test_the_regression_check_fails_an_answer_lacking_arrays():
    from gradcheck.regression import measure
    doc = measure({"small": dict(interval=3, **SMALL)}, impl=_spec("claims_no_grads"))
    entry = doc["configs"]["small"]
    assert entry["passed"] is False
    assert not any(key.endswith(("/U/jax", "/U/fd")) for key in entry["results"])


def test_grade_gives_no_gradient_points_to_an_answer_lacking_them(tmp_path):
    from gradcheck.grade.cli import main as grade
    out = tmp_path / "grades.json"
    code = grade([f"{ATTACKS}:claims_no_grads", "--interval", "3", *SMALL_FLAGS,
                  "--format", "json", "--output", str(out), "--timeout", "10",
                  "--jobs", "1", "--seed", "1", "--allow-import", "reference"])
    assert code == ExitCode.OK
    doc = json.loads(out.read_text())
    (sub,) = doc["submissions"]
    assert sub["score"] < sub["max_score"]
    (test,) = sub["tests"]
    for name in GRADS:
        assert test["items"][name] == 0, test["items"]


def test_judge_names_every_expected_array_an_answer_lacks():
    """The rule in one place (check and grade judge through it): an answer without
    problems that lacks an expected array, skipped ones aside, gets a failing contract
    result naming it."""
    import numpy as np
    from gradcheck.judge import judge_window
    from gradcheck.oracles import Expected
    from gradcheck.untrusted import Outcome
    expected = [Expected(n, "jax", "jax", np.zeros(2)) for n in ("loss", "h_last", "U", "x")]
    out = Outcome(0.0, {"U": np.zeros(2)}, None, [])
    results = judge_window(1, out, expected, {}, "float64", skip=("x",))
    failing = [(r.name, r.message) for r in results if not r.passed]
    assert failing == [("return_value", "the answer carries no h_last, so it could not be "
                                        "compared")]


# ------------------------------------------------------------------ 4. waits and answers

# Wall seconds a call may take past --timeout before its verdict: the checker's margin
# for a loaded machine (isolation.LOAD_MARGIN_SECONDS) and for the worker's end
# (EOF_GRACE_SECONDS), plus what killing and reporting take on a busy CI machine.
from gradcheck.isolation import EOF_GRACE_SECONDS, LOAD_MARGIN_SECONDS  # noqa: E402

VERDICT_MARGIN = LOAD_MARGIN_SECONDS + EOF_GRACE_SECONDS + 10.0


def _command(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "gradcheck", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


def test_a_worker_that_closes_its_answer_pipe_and_stays_alive_is_a_verdict(capfd):
    started = time.monotonic()
    doc = _failed_with(capfd, _flags("closes_answer_pipe_and_stays", timeout="30"),
                       ["protocol"])
    assert time.monotonic() - started < EOF_GRACE_SECONDS + 15       # far from --timeout 30
    assert any("closed its pipe to the checker in window 1 and did not end" in r["message"]
               for r in doc["results"])


def test_a_worker_that_stops_itself_times_out_within_the_margin(capfd):
    started = time.monotonic()
    _failed_with(capfd, _flags("stops_itself", timeout="2"), ["timeout"])
    assert time.monotonic() - started < 2 + VERDICT_MARGIN


@pytest.mark.parametrize("func", [
    "deep_nesting", "list_as_dtype", "huge_shape", "huge_number", "not_utf8",
    "problem_as_dict", "header_is_a_list", "deep_problem"])
def test_a_malformed_answer_header_is_a_verdict_not_a_traceback(capfd, func):
    code = main(_flags(func, timeout="10"))
    out, err = capfd.readouterr()
    assert code == ExitCode.FAILED, err
    assert "Traceback" not in err
    doc = strict_json(out)
    assert doc["passed"] is False
    assert {r["name"] for r in doc["results"] if not r["passed"]} & {"protocol", "return_value",
                                                                     "missing_grad"}


def test_the_checker_stopped_by_its_worker_ends_in_a_verdict_once_continued():
    """SIGSTOP to the checker (and its fork server) from the worker, at every call: as
    the same user nothing prevents it; continued each time (as a shell's fg would), the
    check goes on and the wrong dU fails, never exit 0 and never a hang."""
    import signal
    proc = _command(*_flags("stops_the_checker", timeout="5"))
    deadline = time.monotonic() + 120
    stops = 0
    while proc.poll() is None:
        assert time.monotonic() < deadline
        if _state(proc.pid) == "T":
            stops += 1
            time.sleep(0.3)
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    # (stops == 0 where the worker runs as another user: the signal is refused)
    assert proc.returncode == 1, err
    assert strict_json(out)["passed"] is False


def test_the_checker_terminated_by_its_worker_never_exits_0_and_prints_no_verdict():
    proc = _command(*_flags("terminates_the_checker"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert out == "" or strict_json(out)["passed"] is False


def test_a_lowered_open_file_limit_is_a_verdict_not_a_traceback():
    """The worker lowers the checker's RLIMIT_NOFILE (prlimit, same user) and fills its
    own file table: the check fails with its verdict, or (when the checker itself ran
    out of descriptors meanwhile) with one line saying what happened; never exit 0."""
    proc = _command(*_flags("lowers_the_file_limit"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    if out:
        assert strict_json(out)["passed"] is False
    else:
        assert err.strip().endswith("the checker's open-file limit was lowered from "
                                    f"{_nofile()} to 8 while it ran (the code under test "
                                    "runs as the same user and can do that); no verdict "
                                    "can be trusted from this run"), err


def _nofile():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------ the fork server in grade

SUBS = ROOT / "tests" / "grade_submissions"


def _grade_class(tmp_path, attacker, jobs="3"):
    """Grades two correct submissions and ``attacker`` (as a real command); the JSON."""
    out = tmp_path / "grades.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck", "grade", str(SUBS / "correct_loop.py"),
         f"{_spec(attacker)}", str(SUBS / "correct_vectorized.py"), "--interval", "3",
         *SMALL_FLAGS, "--seq-len", "6", "--format", "json", "--output", str(out),
         "--timeout", "10", "--jobs", jobs, "--seed", "3", "--allow-import", "reference"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return {s["submission"].rsplit("/", 1)[-1]: s for s in json.loads(out.read_text())["submissions"]}


@pytest.mark.parametrize("attacker", ["kills_the_fork_server", "stops_the_fork_server"])
def test_classmates_keep_full_marks_when_a_submission_kills_or_stops_the_fork_server(
        tmp_path, attacker):
    graded = _grade_class(tmp_path, attacker)
    for name in ("correct_loop.py", "correct_vectorized.py"):
        assert graded[name]["score"] == graded[name]["max_score"], graded[name]
        assert graded[name]["problem"] is None
    culprit = graded[f"protocol.py:{attacker}"]
    assert culprit["score"] < culprit["max_score"]


# ------------------------------------------------------------------ signals to everyone

SIGNALLERS = ["terminates_everyone", "kills_everyone"]


def _signals_stay_inside(reach):
    if reach != "none":
        pytest.skip("the worker keeps the user's uid in no PID namespace: kill(-1) would "
                    "end every process of the user (README: Isolation, guarantees)")


@pytest.mark.parametrize("func", SIGNALLERS)
def test_a_worker_that_signals_every_process_it_finds_changes_no_verdict(
        func, monkeypatch, sandbox_reach):
    """It knows the checker's pid (from the environment), scans /proc and the pids, and
    signals them all, then everyone it may (kill(-1)): this process, the checker, lives
    on and the wrong dU fails."""
    _signals_stay_inside(sandbox_reach)
    monkeypatch.setenv("GRADCHECK_TEST_CHECKER", str(os.getpid()))
    report = gradcheck.check(_spec(func), interval=3, timeout=20, **SMALL)
    assert not report.passed
    assert "U" in {r.name for r in report.failures}, report.format_table()


@pytest.mark.parametrize("func", SIGNALLERS)
def test_a_submission_that_signals_every_process_it_finds_ends_no_grading(
        func, tmp_path, sandbox_reach):
    """In grade, as a real command (whose pid the scan finds where it can): the class
    is graded in full, the classmates keep their marks."""
    _signals_stay_inside(sandbox_reach)
    graded = _grade_class(tmp_path, func)
    for name in ("correct_loop.py", "correct_vectorized.py"):
        assert graded[name]["score"] == graded[name]["max_score"], graded[name]
    culprit = graded[f"protocol.py:{func}"]
    assert culprit["score"] < culprit["max_score"]


# ------------------------------------------------------------------ survivors and outputs

@pytest.mark.parametrize("func", ["setsid_survivor", "double_fork_survivor",
                                  "double_fork_then_exit"])
def test_no_process_the_worker_started_outlives_the_check(shared_dir, monkeypatch, func):
    pidfile = shared_dir / "pids"
    name = f"gcrt-{os.getpid()}"
    monkeypatch.setenv("GRADCHECK_TEST_PIDFILE", str(pidfile))
    monkeypatch.setenv("GRADCHECK_TEST_NAME", name)
    report = gradcheck.check(_spec(func), interval=3, timeout=10, **SMALL)
    assert not report.passed
    assert pidfile.read_text().split()                   # it did start, named
    deadline = time.monotonic() + 5
    while processes_named(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_named(name)


@pytest.mark.parametrize("func", ["setsid_survivor", "double_fork_then_exit"])
def test_a_survivor_cannot_rewrite_the_results_file(shared_dir, func):
    """The results file where the worker may write too (a folder open to every uid)."""
    out = shared_dir / "grades.json"
    env = dict(os.environ, GRADCHECK_TEST_PIDFILE=str(shared_dir / "pids"),
               GRADCHECK_TEST_TARGET=str(out))
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck", "grade", _spec(func), "--interval", "3",
         *SMALL_FLAGS, "--format", "json", "--output", str(out), "--timeout", "10",
         "--jobs", "1", "--seed", "1", "--allow-import", "reference"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    time.sleep(1.0)                       # a daemon rewrites it within 50 ms of seeing it
    doc = json.loads(out.read_text())
    assert doc["submissions"][0]["score"] < doc["submissions"][0]["max_score"]
    assert not any(p.name.endswith(".tmp") for p in shared_dir.iterdir())


def test_a_survivor_cannot_rewrite_the_html_report(shared_dir):
    pytest.importorskip("matplotlib")
    html = shared_dir / "report.html"
    env = dict(os.environ, GRADCHECK_TEST_PIDFILE=str(shared_dir / "pids"),
               GRADCHECK_TEST_TARGET=str(html))
    proc = _command(*_flags("setsid_survivor"), "--html", str(html), env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    time.sleep(1.0)
    assert html.read_text().lstrip().lower().startswith("<!doctype html")


# ------------------------------------------------------------------ 5. memory

@pytest.mark.parametrize("func", ["memfd_hog", "memfd_closed_hog", "children_hog"])
def test_memory_counts_memfd_pages_and_children(capfd, func):
    started = time.monotonic()
    doc = _failed_with(capfd, _flags(func, "--memory-limit", "768M", timeout="60"),
                       ["memory"])
    assert any("--memory-limit 768M" in r["message"] for r in doc["results"]
               if r["name"] == "memory")
    assert time.monotonic() - started < 60


# ------------------------------------------------------------------ 6. printed output

def test_files_written_to_dev_shm_are_capped_and_the_verdict_names_the_cap(
        capfd, sandbox_mechanism):
    """/dev/shm is memory that no process holds once its files are closed: in the
    namespace mechanisms it is the worker's own tmpfs, capped (and gone with it)."""
    if sandbox_mechanism not in sandbox.HIDING:
        pytest.skip(f"under {sandbox_mechanism} /dev/shm is the machine's (README: "
                    f"Isolation, guarantees)")
    doc = _failed_with(capfd, _flags("fills_dev_shm", timeout="60"), ["exception"])
    (message,) = [r["message"] for r in doc["results"] if r["name"] == "exception"]
    assert "No space left on device" in message
    assert message.endswith("(the worker's files: 64 MiB in all, in its private /dev/shm "
                            "and temporary folder, and 64 MiB per file)"), message


def test_control_characters_in_printed_output_reach_no_terminal(capfd):
    code = main(_flags("prints_escapes"))
    out, err = capfd.readouterr()
    assert code == ExitCode.OK, err
    shown = err[err.index("the implementation's stdout"):]
    for c in ("\x1b", "\x07", "\r", "\x08", "\x9b", "\x00", "\x7f"):
        assert c not in shown, repr(shown)
    assert "\\x1b[2J" in shown and "\\x0d" in shown


def test_control_characters_in_an_exception_message_are_escaped():
    from gradcheck.untrusted import printable
    assert printable("a\x1b]0;x\x07b\u202ec\nd\te") == "a\\x1b]0;x\\x07b\\u202ec\nd\te"


# ------------------------------------------------------------------ the fork server's limits

@pytest.mark.parametrize("limit", ["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_DATA"])
def test_a_fork_server_whose_limits_were_lowered_is_restored_or_replaced(limit):
    """What a same-user worker could do to the fork server (prlimit): the next worker
    still starts, with the limits the server began with, and the check is a verdict on
    the implementation, not "could not be started"."""
    import resource
    from gradcheck.isolation import Worker, _ForkServer, fork_server
    r = getattr(resource, limit)
    with fork_server():
        with Worker({"spec": f"{IMPLS / 'correct.py'}:loop_bptt"}) as first:
            assert first.load() is None
        server = _ForkServer.get()
        low = 8 if limit == "RLIMIT_NOFILE" else 16 << 20 if limit == "RLIMIT_DATA" else 4
        resource.prlimit(server.proc.pid, r, (low, low))
        report = gradcheck.check(f"{IMPLS / 'correct.py'}:loop_bptt", interval=3,
                                 timeout=10, **SMALL)
        assert report.passed, report.format_table()
        now = _ForkServer.get()
        assert resource.prlimit(now.proc.pid, r) == resource.getrlimit(r)


# ------------------------------------------------------------------ a grade that is killed

def test_a_grade_killed_midway_leaves_the_class_graded_so_far(tmp_path):
    """SIGKILL to grade (what a worker running as the same user can send, and nothing
    can catch) while its second submission runs: FILE.partial holds the first one's
    grade, whole; FILE itself is never written half."""
    import signal
    out = tmp_path / "grades.json"
    partial = tmp_path / "grades.json.partial"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "grade", str(SUBS / "correct_loop.py"),
         _spec("stops_itself"), "--interval", "3", *SMALL_FLAGS,
         "--format", "json", "--output", str(out), "--timeout", "60", "--jobs", "1",
         "--seed", "3", "--allow-import", "reference"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not partial.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    graded = json.loads(partial.read_text())["submissions"]
    assert [g["submission"].rsplit("/", 1)[-1] for g in graded] == ["correct_loop.py"]
    assert graded[0]["score"] == graded[0]["max_score"]
    assert not out.exists()


def test_a_grade_that_ends_removes_its_partial_file(tmp_path):
    graded = _grade_class(tmp_path, "terminates_the_checker", jobs="2")
    assert len(graded) == 3
    assert not (tmp_path / "grades.json.partial").exists()
