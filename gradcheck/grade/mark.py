"""Grading one submission against the prepared battery: its calls, the judging (the same
``judge_window`` as ``check``), the marks per item, and feedback a student can act on."""
import time
from typing import NamedTuple, Optional

from ..diagnose import explain
from ..judge import judge_window
from ..kinds import KINDS, Diagnosis
from ..model import GRAD_NAMES, LOSS_NAME, STATE_OUT_NAME
from ..report import Result
from .battery import FORWARD, ITEMS
from .runner import Ended, Worker

__all__ = ["TestGrade", "SubmissionGrade", "grade_submission", "failed_to_grade", "bug_class"]

_FORWARD_NAMES = (LOSS_NAME, STATE_OUT_NAME, "inputs_modified")
# a window with one of these problems fails every item of its test
_FAIL_ALL = ("exception", "return_value", "memory", "ended")
_FEEDBACK_LINES = 12                                     # failing results quoted per test


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
    finding: Optional[Diagnosis] = None     # the diagnosis as data (its text: ``diagnosis``)


class SubmissionGrade(NamedTuple):
    submission: str
    score: float
    max_score: float
    tests: list             # [TestGrade]
    diagnosis: Optional[str]
    problem: Optional[str]
    reason: Optional[str]   # why it got no marks at all, when that is why
    seconds: float
    finding: Optional[Diagnosis] = None     # the diagnosis as data (its text: ``diagnosis``)

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


def _grade_test(worker, prepared):
    """(TestGrade, honesty names) of one test, run in ``worker`` (its own)."""
    test, config = prepared.test, prepared.config
    results, seen, ended, problem, reason, finding = [], [], set(), None, None, None
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
        problem, reason = exc.kind, exc.reason
        done = {r.window for r in results}
        ended = {pw.window.index for pw in prepared.windows} - done
        for w in sorted(ended):
            results.append(Result(name="ended", oracle="contract", window=w,
                                  passed=False, message=exc.reason))
    if problem is None and any(not r.passed for r in results):
        try:
            finding = explain(worker.runner, prepared.params, seen, results, config,
                              config.model_options, [])
        except Ended:
            finding = None
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
    if problem in ("timeout", "crashed", "exited", "protocol", "memory") and finding is None:
        finding = Diagnosis(problem, reason)
    diagnosis = None if finding is None else finding.text
    output = _feedback(test, earned, results, diagnosis, reason)
    return TestGrade(test.name, sum(earned.values()), test.points, earned,
                     [i for i in ITEMS if not points[i]], output, diagnosis, test.visibility,
                     problem, reason, finding), honesty


def failed_to_grade(sub, prepared_tests, why, seconds=0.0):
    """A SubmissionGrade of zero for every test, for ``why`` (a sentence)."""
    tests = [TestGrade(p.test.name, 0.0, p.test.points, dict.fromkeys(ITEMS, 0.0), list(ITEMS),
                       f"{p.test.name}: 0/{p.test.points:g}\n{why}", None, p.test.visibility,
                       "ungraded", why) for p in prepared_tests]
    return SubmissionGrade(sub.spec, 0.0, sum(p.test.points for p in prepared_tests), tests,
                           why, "ungraded", why, seconds, Diagnosis("ungraded", why))


def _honesty_reason(names):
    return (f"zero marks: the submission imported {', '.join(names)}, which a graded "
            f"submission may not use (academic honesty; the instructor can allow it with "
            f"--allow-import {names[0]})")


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
                               time.perf_counter() - started, Diagnosis("unloadable", reason))
    tests, honesty = [], []
    for p in prepared_tests:
        with Worker(sub, limits, forbid, len(p.windows)) as worker:   # a fresh instance
            grade, names = _grade_test(worker, p)
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
    finding = next((t.finding for t in tests if t.finding), None)
    if finding is None and reason is not None and problem in KINDS:
        finding = Diagnosis(problem, reason)
    diagnosis = None if finding is None else finding.text
    return SubmissionGrade(sub.spec, sum(t.score for t in tests), max_score, tests, diagnosis,
                           problem, reason, time.perf_counter() - started, finding)


# ------------------------------------------------------------------ bug classes

def bug_class(finding, problem=None):
    """The instructor's label of a test's or submission's bug: the title of its problem's
    kind (grading ended: timeout, honesty, ...) or of its diagnosis's kind (kinds.py);
    None when there is neither."""
    if problem in KINDS:
        return KINDS[problem].title
    return None if finding is None else finding.title
