"""Grading one submission against the prepared battery: its calls, the judging (the same
``judge_window`` as ``check``), the marks per item, and feedback a student can act on."""
import contextlib
import re
import threading
import time
from typing import NamedTuple, Optional

from ..check import _explain
from ..judge import judge_window
from ..model import GRAD_NAMES, LOSS_NAME, STATE_OUT_NAME
from ..report import Result
from .battery import FORWARD, ITEMS
from .runner import Ended, Lost, Worker

__all__ = ["TestGrade", "SubmissionGrade", "grade_submission", "failed_to_grade", "bug_class"]

_FORWARD_NAMES = (LOSS_NAME, STATE_OUT_NAME, "inputs_modified")
# a window with one of these problems fails every item of its test
_FAIL_ALL = ("exception", "return_value", "memory", "ended")
_FEEDBACK_LINES = 12                                     # failing results quoted per test
# A test whose worker ended with the fork server (killed, or every worker of a stopped
# one that the grader replaced) is run again, alone, up to this many times; ending so
# when it ran alone is its own doing, a verdict like any other crash.
LOST_RETRIES = 2


class _Turns:
    """Tests run side by side (``shared``); a test run again because the fork server
    was lost runs with no other test beside it (``alone``), so a classmate that kills
    the fork server cannot take it down again."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running, self._alone, self._waiting = 0, False, 0

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self):
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._alone and not self._running)
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


_TURNS = _Turns()


class TestGrade(NamedTuple):
    name: str
    score: float
    max_score: float
    items: dict             # item -> points earned
    failing: list           # items that lost their points
    output: str             # feedback for the student
    diagnosis: Optional[str]
    visibility: str
    problem: Optional[str]  # timeout crashed exited protocol memory honesty unloadable ungraded
    reason: Optional[str] = None    # the sentence that goes with ``problem``


class SubmissionGrade(NamedTuple):
    submission: str
    score: float
    max_score: float
    tests: list             # [TestGrade]
    diagnosis: Optional[str]
    problem: Optional[str]
    reason: Optional[str]   # why it got no marks at all, when that is why
    seconds: float

    @property
    def passed(self):
        return self.score >= self.max_score


def _item_of(name):
    return FORWARD if name in _FORWARD_NAMES else name if name in GRAD_NAMES else None


def _score(prepared, results, ended_windows):
    """{item: passed} over every window of the test."""
    ok = dict.fromkeys(ITEMS, True)
    for pw in prepared.windows:
        w = pw.window.index
        mine = [r for r in results if r.window == w]
        if w in ended_windows or any(r.name in _FAIL_ALL for r in mine):
            return dict.fromkeys(ITEMS, False)
        judged = {(r.name, r.oracle) for r in mine}
        for e in pw.expected:                          # every expectation must be judged
            if (e.name, e.oracle) not in judged:
                ok[_item_of(e.name)] = False
        for r in mine:
            item = _item_of(r.name)
            if item is not None and not r.passed:
                ok[item] = False
    return ok


def _feedback(test, points, results, diagnosis, reason):
    lost = [i for i in ITEMS if points[i] == 0]
    head = f"{test.name}: {sum(points.values()):g}/{test.points:g}"
    if test.about:
        head += f" ({test.about})"
    if not lost:
        return head + "\nall arrays agree in every window."
    lines = [head]
    if reason:
        lines.append(reason)
    lines.append("lost: " + ", ".join(lost))
    shown = set()
    for r in results:
        if r.passed or (r.name, r.window) in shown or r.message == reason:
            continue
        shown.add((r.name, r.window))
        if len(shown) > _FEEDBACK_LINES:
            lines.append("...")
            break
        steps = f" [steps that disagree: {r.steps}]" if r.steps else ""
        lines.append(f"window {r.window} {r.name} ({r.oracle}): {r.message}{steps}")
    if diagnosis and diagnosis != reason:
        lines.append(f"diagnosis: {diagnosis}")
    return "\n".join(lines)


def _grade_test(worker, prepared, final=True):
    """(TestGrade, honesty names) of one test, run in ``worker`` (its own). Raises Lost
    when the worker ended with the fork server, unless this is the ``final`` try."""
    test, config = prepared.test, prepared.config
    results, seen, ended, problem, reason, diagnosis = [], [], set(), None, None, None
    try:
        error = worker.load()
        if worker.honesty:
            problem = "honesty"
        elif error:
            problem, reason = "unloadable", f"the submission could not be loaded: {error}"
        else:
            for pw in prepared.windows:
                w = pw.window
                out = worker.call(prepared.params, w.x, w.y, w.h0, w.options,
                                  f"test {test.name}, window {w.index}")
                results.extend(judge_window(w.index, out, pw.expected, pw.own,
                                            config.dtype))
                seen.append((w.x, w.y, pw.ref, out))
                if worker.honesty:
                    problem = "honesty"
                    break
    except Ended as exc:
        if isinstance(exc, Lost) and not final:
            raise
        problem, reason = exc.kind, exc.reason
        done = {r.window for r in results}
        ended = {pw.window.index for pw in prepared.windows} - done
        for w in sorted(ended):
            results.append(Result(name="ended", oracle="contract", window=w,
                                  passed=False, message=exc.reason))
    if problem is None and any(not r.passed for r in results):
        try:
            diagnosis = _explain(worker.runner, prepared.params, seen, results, config,
                                 config.model_options, [])
        except Ended as exc:
            if isinstance(exc, Lost) and not final:
                raise
            diagnosis = None
        if worker.honesty:
            problem = "honesty"
    honesty = list(worker.honesty)
    if problem == "unloadable":
        ended = {pw.window.index for pw in prepared.windows}
    points = _score(prepared, results, ended)
    if problem == "honesty":
        points = dict.fromkeys(ITEMS, False)
        reason = _honesty_reason(honesty)
    share = test.points / len(ITEMS)
    earned = {i: (share if points[i] else 0.0) for i in ITEMS}
    if problem in ("timeout", "crashed", "exited", "protocol", "memory") and diagnosis is None:
        diagnosis = reason
    output = _feedback(test, earned, results, diagnosis, reason)
    return TestGrade(test.name, sum(earned.values()), test.points, earned,
                     [i for i in ITEMS if not points[i]], output, diagnosis, test.visibility,
                     problem, reason), honesty


def failed_to_grade(sub, prepared_tests, why, seconds=0.0):
    """A SubmissionGrade of zero for every test, for ``why`` (a sentence)."""
    tests = [TestGrade(p.test.name, 0.0, p.test.points, dict.fromkeys(ITEMS, 0.0), list(ITEMS),
                       f"{p.test.name}: 0/{p.test.points:g}\n{why}", None, p.test.visibility,
                       "ungraded", why) for p in prepared_tests]
    return SubmissionGrade(sub.spec, 0.0, sum(p.test.points for p in prepared_tests), tests,
                           why, "ungraded", why, seconds)


def _honesty_reason(names):
    return (f"zero marks: the submission imported {', '.join(names)}, which a graded "
            f"submission may not use (academic honesty; the instructor can allow it with "
            f"--allow-import {names[0]})")


def _run_test(sub, prepared, limits, forbid):
    """(TestGrade, honesty names) of one test in a fresh worker; again, alone, when the
    worker was lost with the fork server (LOST_RETRIES)."""
    attempt = 0
    while True:
        turn = _TURNS.shared() if attempt == 0 else _TURNS.alone()
        with turn, Worker(sub, limits, forbid, len(prepared.windows)) as worker:
            try:
                return _grade_test(worker, prepared, final=attempt == LOST_RETRIES)
            except Lost:
                attempt += 1


def grade_submission(sub, prepared_tests, limits, forbid):
    """The SubmissionGrade of ``sub`` (a submission.Submission) on every prepared test.
    Never raises for anything the submission does."""
    started = time.perf_counter()
    max_score = sum(p.test.points for p in prepared_tests)
    if sub.error is not None:
        reason = f"the submission could not be loaded: {sub.error}"
        tests = [TestGrade(p.test.name, 0.0, p.test.points, dict.fromkeys(ITEMS, 0.0),
                           list(ITEMS), f"{p.test.name}: 0/{p.test.points:g}\n{reason}", None,
                           p.test.visibility, "unloadable", reason) for p in prepared_tests]
        return SubmissionGrade(sub.spec, 0.0, max_score, tests, reason, "unloadable", reason,
                               time.perf_counter() - started)
    tests, honesty = [], []
    for p in prepared_tests:
        grade, names = _run_test(sub, p, limits, forbid)
        tests.append(grade)
        honesty += [n for n in names if n not in honesty]
        if grade.problem in ("unloadable", "honesty"):  # every test would say the same
            tests += [grade._replace(name=q.test.name, max_score=q.test.points,
                                     visibility=q.test.visibility,
                                     output=f"{q.test.name}: 0/{q.test.points:g}\n"
                                            + grade.output.split("\n", 1)[1])
                      for q in prepared_tests[len(tests):]]
            break
    reason = None
    problem = next((t.problem for t in tests if t.problem), None)
    if honesty:
        reason = _honesty_reason(honesty)
        problem = "honesty"
        tests = [t._replace(score=0.0, items=dict.fromkeys(ITEMS, 0.0), failing=list(ITEMS),
                            problem="honesty",
                            output=f"{t.name}: 0/{t.max_score:g}\n{reason}") for t in tests]
    elif problem == "unloadable":
        reason = next(t.reason for t in tests if t.problem == "unloadable")
    diagnosis = next((t.diagnosis for t in tests if t.diagnosis), None) or reason
    return SubmissionGrade(sub.spec, sum(t.score for t in tests), max_score, tests, diagnosis,
                           problem, reason, time.perf_counter() - started)


# ------------------------------------------------------------------ bug classes
# diagnose() writes one sentence; the class counts in the summary come from its opening.
_CLASSES = (
    ("state leaks between windows", r"^Window 1 agrees but window"),
    ("forward pass", r"^The forward pass is wrong"),
    ("loss value (reduction)", r"^The loss value is wrong|^The loss and every gradient"),
    ("reduction scale in the backward", r"^Every gradient is off by the same factor"),
    ("output derivative dL/dz3", r"^Every gradient disagrees"),
    ("dh_next not passed back through time", r"^The state derivative is not passed back"),
    ("RNN activation derivative f2'", r"^The backward pass through the RNN activation"),
    ("first layer derivative f1'", r"^The first dense layer's backward"),
    ("h_last", r"^h_last is wrong"),
    ("dh0", r"^dh0 is returned as zeros"),
    ("zero gradient", r"^d\w+ is returned as zeros"),
    ("transposed gradient", r"^d\w+ is transposed"),
    ("scale error in one gradient", r"^d\w+ is off by a constant factor"),
    ("dx time order", r"^dx is stored in reversed time"),
    ("= instead of +=", r"^d\w+ holds only step"),
    ("dU misses the h0 term", r"^dU misses step 1"),
    ("one gradient line", r"^Only d\w+ disagrees"),
    ("memory limit", r"^The implementation used too much memory"),
    ("time limit", r"^The implementation hung or is too slow|^The implementation is too slow"),
    ("crash", r"^The implementation's process ended"),
    ("exception", r"^The implementation raised an exception"),
    ("return contract", r"^The implementation breaks the return contract"),
    ("wrong shape", r"^The implementation returns an array of the wrong shape"),
    ("NaN or inf", r"^The implementation produces NaN"),
    ("writes into its inputs", r"^The implementation writes into its inputs"),
)


def bug_class(diagnosis, problem=None):
    """A short class name for a diagnosis sentence (or the problem that ended grading)."""
    named = {"timeout": "time limit", "crashed": "crash", "exited": "process exit",
             "memory": "memory limit",
             "protocol": "wrote to the grader's channel", "honesty": "academic honesty",
             "unloadable": "cannot be loaded", "ungraded": "could not be graded"}
    if problem in named:
        return named[problem]
    if not diagnosis:
        return None
    for name, pattern in _CLASSES:
        if re.search(pattern, diagnosis):
            return name
    return "other (arrays disagree)"
