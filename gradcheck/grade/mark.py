"""Grading one submission against the prepared battery: its calls, the judging (the same
``judge_window`` as ``check``), the marks per item, and feedback a student can act on."""
import contextlib
import threading
import time
from typing import NamedTuple, Optional

from ..diagnose import explain
from ..judge import judge_window
from ..model import LOSS_NAME
from ..report import Result
from .battery import DEFAULT_FEEDBACK, FORWARD, items, precision_loss
from ..kinds import KINDS, Diagnosis
from .honesty import parse
from .runner import Ended, Lost, Worker
from .similarity import FLAG_SHARE, reference_share

__all__ = ["TestGrade", "SubmissionGrade", "grade_submission", "failed_to_grade"]

_FORWARD_NAMES = (LOSS_NAME, "inputs_modified")      # and the cell's outgoing states
# a window with one of these problems fails every item of its test
_FAIL_ALL = ("exception", "declaration", "return_value", "memory", "ended")
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
    kind: Optional[str] = None      # a name of gradcheck.kinds: why it lost points
    finding: Optional[Diagnosis] = None     # the check's diagnosis as data (kinds.Diagnosis)


class SubmissionGrade(NamedTuple):
    submission: str
    score: float
    max_score: float
    tests: list             # [TestGrade]
    diagnosis: Optional[str]
    problem: Optional[str]
    reason: Optional[str]   # why it got no marks at all, when that is why
    seconds: float
    honesty: dict = {}      # {"imported", "used": libraries, "read": files, "reference_share"}
    flags: tuple = ()       # kinds flagged for the instructor that cost nothing
    isolation: Optional[str] = None     # how its workers were isolated (the mechanism)

    @property
    def passed(self):
        return self.score >= self.max_score


def _item_of(name, prepared):
    """The item of the test that the Result or Expected ``name`` belongs to, or None."""
    model = prepared.config.model
    if name in _FORWARD_NAMES or name in model.state_out_names:
        return FORWARD
    return name if name in model.grad_names else None


def _score(prepared, results, ended_windows):
    """{item: passed} over every window of the test."""
    test_items = items(prepared.test)
    ok = dict.fromkeys(test_items, True)
    for pw in prepared.windows:
        w = pw.window.index
        mine = [r for r in results if r.window == w]
        if w in ended_windows or any(r.name in _FAIL_ALL for r in mine):
            return dict.fromkeys(test_items, False)
        judged = {(r.name, r.oracle) for r in mine}
        for e in pw.expected:                          # every expectation must be judged
            if (e.name, e.oracle) not in judged:
                ok[_item_of(e.name, prepared)] = False
        for r in mine:
            item = _item_of(r.name, prepared)
            if item is not None and not r.passed:
                ok[item] = False
    return ok


def _zero(name, points, level, reason):
    """The text of a test that got nothing for ``reason`` (a sentence for the student)."""
    return f"{name}: 0/{points:g}\n" + ("failed" if level == "score" else reason)


def _feedback(test, level, points, results, diagnosis, kind, reason, precise=False):
    """The student's text of one test at feedback ``level`` (battery.FEEDBACK_LEVELS):
    ``full`` quotes the failing arrays' worst elements and the diagnosis; ``hint`` names
    the arrays and steps that disagree and the kind of mistake in the student's words
    (its ``hint`` in gradcheck.kinds), no numbers, no formula; ``score`` pass or fail."""
    lost = [i for i in points if points[i] < test.points / len(points)]
    head = f"{test.name}: {sum(points.values()):.4g}/{test.points:g}"
    if level == "score":
        return head + ("\nfailed" if lost else "\npassed")
    if test.about:
        head += f" ({test.about})"
    if not lost:
        return head + "\nall arrays agree in every window."
    lines = [head]
    if reason:
        lines.append(reason)
    lines.append(("float32-level rounding only (most of their points kept): " if precise
                  else "lost: ") + ", ".join(lost))
    shown = set()
    for r in results:
        if r.passed or (r.name, r.window) in shown or r.message == reason:
            continue
        shown.add((r.name, r.window))
        if len(shown) > _FEEDBACK_LINES:
            lines.append("...")
            break
        steps = f" [steps that disagree: {r.steps}]" if r.steps else ""
        if level == "hint" and r.oracle != "contract":     # which array and steps, no values
            lines.append(f"window {r.window}: {r.name} disagrees{steps}")
        else:
            lines.append(f"window {r.window} {r.name} ({r.oracle}): {r.message}{steps}")
    if level == "hint":
        hint = KINDS[kind].hint if kind in KINDS else ""
        if hint and not reason:
            lines.append(f"the kind of mistake: {hint}")
    elif diagnosis and diagnosis != reason:
        lines.append(f"diagnosis: {diagnosis}")
    return "\n".join(lines)


def _grade_test(worker, prepared, level, precision_cost=0.0, final=True):
    """(TestGrade, honesty.Record, whole) of one test, run in ``worker`` (its own);
    ``whole``: every test of the battery would end the same way (it cannot be loaded).
    Raises Lost when the worker ended with the fork server, unless this is the ``final``
    try."""
    test, config = prepared.test, prepared.config
    results, seen, ended, problem, reason, diagnosis = [], [], set(), None, None, None
    try:
        error = worker.load()
        if error:
            problem, reason = "unloadable", f"the submission could not be loaded: {error}"
        else:
            for pw in prepared.windows:
                w = pw.window
                out = worker.call(prepared.params, w.x, w.y, w.h0, w.options,
                                  f"test {test.name}, window {w.index}", w.states)
                results.extend(judge_window(w.index, out, pw.expected, pw.own,
                                            config.dtype))
                seen.append((w.x, w.y, pw.ref, out))
    except Ended as exc:
        if isinstance(exc, Lost) and not final:
            raise
        problem, reason = exc.kind, exc.reason
        done = {r.window for r in results}
        ended = {pw.window.index for pw in prepared.windows} - done
        for w in sorted(ended):
            results.append(Result(name="ended", oracle="contract", window=w,
                                  passed=False, message=exc.reason))
    record = parse(worker.honesty)
    if problem is None and not record.used and any(not r.passed for r in results):
        try:
            diagnosis = explain(worker.runner, prepared.params, seen, results, config,
                                config.model_options, [])
        except Ended as exc:
            if isinstance(exc, Lost) and not final:
                raise
            diagnosis = None
        record = parse(worker.honesty)
    whole = problem == "unloadable"
    kind = None
    if record.read:
        problem, reason, kind, whole = "honesty", _read_reason(record.read), \
            "read_checker_files", True
    elif record.used:
        problem, reason, kind = "honesty", _used_reason(record.used), "banned_library_used"
        diagnosis = None
    if problem in ("unloadable", "honesty"):
        ended = {pw.window.index for pw in prepared.windows}
    points = _score(prepared, results, ended)
    if problem == "honesty":
        points = dict.fromkeys(points, False)
    share = test.points / len(points)
    earned = {i: (share if points[i] else 0.0) for i in points}
    lost = [i for i in points if not points[i]]
    precise = getattr(diagnosis, "group", None) == "precision" and problem is None and lost
    if precise:                       # precision only: most of the points are kept
        for i in lost:
            earned[i] = share - precision_cost / len(lost)
    if problem in ("timeout", "crashed", "exited", "protocol", "memory") and diagnosis is None:
        diagnosis = reason
    failing = [i for i in points if not points[i]]
    if kind is None and failing:
        kind = _kind(problem, diagnosis, results)
    shown = [r for r in results if not r.passed] if problem != "honesty" else []
    output = _feedback(test, level, earned, shown, diagnosis, kind, reason, bool(precise))
    # nothing lost: the points themselves (eleven shares, an LSTM's, need not add up to
    # them exactly in floating point, and a full mark must compare equal)
    score = test.points if not lost else sum(earned.values())
    return TestGrade(test.name, score, test.points, earned, failing, output,
                     None if diagnosis is None else str(diagnosis), test.visibility, problem,
                     reason, kind, diagnosis if isinstance(diagnosis, Diagnosis) else None), \
        record, whole


# problems that end grading -> their kind in gradcheck.kinds
_PROBLEM_KINDS = {"timeout": "timeout", "crashed": "crashed", "exited": "exited",
                  "protocol": "protocol", "memory": "memory", "unloadable": "unloadable",
                  "ungraded": "ungraded"}


def _kind(problem, diagnosis, results):
    """The kind of why a test lost points: the problem that ended it, the diagnosis's
    kind, or the first contract problem of its windows."""
    if problem in _PROBLEM_KINDS:
        return _PROBLEM_KINDS[problem]
    kind = getattr(diagnosis, "kind", None)
    if kind is not None:
        return kind
    for r in results:
        if not r.passed and r.oracle == "contract" and r.name in KINDS:
            return r.name
    return None


def failed_to_grade(sub, prepared_tests, why, seconds=0.0, feedback=DEFAULT_FEEDBACK):
    """A SubmissionGrade of zero for every test, for ``why`` (a sentence)."""
    tests = [TestGrade(p.test.name, 0.0, p.test.points, dict.fromkeys(items(p.test), 0.0),
                       list(items(p.test)),
                       _zero(p.test.name, p.test.points, _level(p.test, feedback), why), None,
                       p.test.visibility,
                       "ungraded", why, "ungraded") for p in prepared_tests]
    return SubmissionGrade(sub.spec, 0.0, sum(p.test.points for p in prepared_tests), tests,
                           why, "ungraded", why, seconds)


def _used_reason(libraries):
    names = ", ".join(libraries)
    return (f"{names} {'is' if len(libraries) == 1 else 'are'} not allowed in a graded "
            f"submission, and your code used {'it' if len(libraries) == 1 else 'them'} in "
            f"this test: its points are lost. Compute the gradients with NumPy yourself.")


def _read_reason(paths):
    return (f"zero marks: the submission tried to read the grader's own files "
            f"({', '.join(paths)}); that is not allowed in a graded submission")


def _run_test(sub, prepared, limits, forbid, level, precision_cost):
    """_grade_test's (grade, record, whole) in a fresh worker, and the worker's sandbox
    mechanism; again, alone, when the worker was lost with the fork server
    (LOST_RETRIES)."""
    attempt = 0
    while True:
        turn = _TURNS.shared() if attempt == 0 else _TURNS.alone()
        with turn, Worker(sub, limits, forbid, len(prepared.windows),
                          prepared.reference_seconds, prepared.config.model) as worker:
            try:
                return _grade_test(worker, prepared, level, precision_cost,
                                   final=attempt == LOST_RETRIES) + (worker.mechanism,)
            except Lost:
                attempt += 1


def _level(test, feedback):
    return test.feedback or feedback


def grade_submission(sub, prepared_tests, limits, forbid, feedback=DEFAULT_FEEDBACK):
    """The SubmissionGrade of ``sub`` (a submission.Submission) on every prepared test.
    Never raises for anything the submission does."""
    started = time.perf_counter()
    max_score = sum(p.test.points for p in prepared_tests)
    if sub.error is not None:
        reason = f"the submission could not be loaded: {sub.error}"
        kind = sub.kind or "unloadable"
        tests = [TestGrade(p.test.name, 0.0, p.test.points, dict.fromkeys(items(p.test), 0.0),
                           list(items(p.test)), _zero(p.test.name, p.test.points,
                                              _level(p.test, feedback), reason), None,
                           p.test.visibility, "unloadable", reason, kind)
                 for p in prepared_tests]
        return SubmissionGrade(sub.spec, 0.0, max_score, tests, reason, "unloadable", reason,
                               time.perf_counter() - started)
    tests, imported, used, read, mechanism = [], [], [], [], None
    battery = [p.test for p in prepared_tests]
    for p in prepared_tests:
        grade, record, whole, mechanism = _run_test(sub, p, limits, forbid,
                                                    _level(p.test, feedback),
                                                    precision_loss(p.test, battery))
        tests.append(grade)
        for mine, theirs in ((imported, record.imported), (used, record.used),
                             (read, record.read)):
            mine += [n for n in theirs if n not in mine]
        if whole:                                # every test would say the same
            tests += [grade._replace(name=q.test.name, max_score=q.test.points,
                                     visibility=q.test.visibility,
                                     output=_zero(q.test.name, q.test.points,
                                                  _level(q.test, feedback),
                                                  grade.output.split("\n", 1)[1]))
                      for q in prepared_tests[len(tests):]]
            break
    reason = None
    problem = next((t.problem for t in tests if t.problem), None)
    if read:
        reason = _read_reason(read)
        problem = "honesty"
        tests = [t._replace(score=0.0, items=dict.fromkeys(t.items, 0.0), failing=list(t.items),
                            problem="honesty", reason=reason, kind="read_checker_files",
                            diagnosis=None, finding=None,
                            output=_zero(t.name, t.max_score, _level(test, feedback), reason))
                 for t, test in zip(tests, (p.test for p in prepared_tests))]
    elif problem == "unloadable" or (problem == "honesty" and not any(t.score for t in tests)):
        reason = next(t.reason for t in tests if t.problem == problem)
    diagnosis = next((t.diagnosis for t in tests if t.diagnosis), None) or reason
    if sub.note:                                 # how the file was found: for the student
        tests = [t._replace(output=t.output.replace("\n", f"\n{sub.note}\n", 1))
                 if _level(p.test, feedback) != "score" else t
                 for t, p in zip(tests, prepared_tests)]
    flags = ("banned_library_imported",) if [n for n in imported if n not in used] else ()
    share = reference_share(sub.path)            # for the instructor only: never a mark
    if share is not None and share >= FLAG_SHARE:
        flags += ("reference_copy",)
    honesty = {"imported": imported, "used": used, "read": read,
               "reference_share": None if share is None else round(share, 3)}
    return SubmissionGrade(sub.spec, sum(t.score for t in tests), max_score, tests, diagnosis,
                           problem, reason, time.perf_counter() - started, honesty, flags,
                           mechanism)
