"""Running a submission in its own worker process, with limits: the ONE place the grader
talks to the isolation layer (gradcheck.isolation).

``Worker(submission, limits, forbid)`` forks a worker process (from isolation's fork
server: milliseconds) for one test of one submission: a fresh instance, in its own
process group, with ``limits.memory`` bytes of memory. ``load()``, then ``call(...)``
for each window of the test, in order, on that one instance; every call (and the load)
may take ``limits.timeout`` seconds, and all of them (windows + EXTRA_CALLS) times that.
When the process hangs, crashes, exits or writes
garbage, the call raises ``Ended`` with the reason, and the worker (with its process
group) is gone. ``forbid`` turns on the honesty guard in the worker (grade.honesty):
``honesty`` lists the imports it refused.
"""
import os
from typing import NamedTuple, Optional

from .. import sandbox
from ..check import cell_request
from ..errors import UsageError
from ..untrusted import Problem
from ..isolation import DEFAULT_MEMORY, format_size
from ..isolation import Worker as _Isolated
from .submission import root_of

__all__ = ["Limits", "Ended", "Lost", "Worker", "default_timeout", "limit_of",
           "TIMEOUT_FACTOR", "TIMEOUT_FLOOR"]

# A test's worker may spend (its windows + EXTRA_CALLS) x the timeout in all: the load,
# every window (each within the timeout, so never cut short by this), and what is left
# for the diagnosis's extra calls (suffix windows, the self-consistency probe), which
# stop there. So a slow submission costs a bounded time per test.
EXTRA_CALLS = 3
# The worker's problems after which it cannot be called again.
_ENDING = ("timeout", "time_limit", "crashed", "protocol")


# The default limit per call (and for loading the submission): this many times the
# reference's own time for the test's slowest window, measured on the grading machine
# (prepare.reference_seconds), and never less than the floor. The factor leaves room for
# a correct solution written with Python loops where the reference uses NumPy; the floor
# for start-up costs that do not grow with the sizes (importing the submission's
# libraries). Both are CPU time: the time limit's meaning (isolation) does not count the
# time a worker waits for a CPU on a loaded machine.
TIMEOUT_FACTOR = 1000.0
TIMEOUT_FLOOR = 5.0


class Limits(NamedTuple):
    timeout: Optional[float] = None  # seconds per call and for loading; None: derived per test
    memory: Optional[int] = None     # bytes (isolation's limit), or None for its default
    require_isolation: bool = False  # refuse (UsageError) a worker as the user's own uid
    path: Optional[str] = None       # a package root every submission may import from


def default_timeout(reference_seconds):
    """The per-call limit when none is given: see TIMEOUT_FACTOR and TIMEOUT_FLOOR."""
    return max(TIMEOUT_FLOOR, TIMEOUT_FACTOR * reference_seconds)


def limit_of(limits, reference_seconds):
    """(seconds, how the limit was chosen: words for the student) of one test."""
    if limits.timeout is not None:
        return limits.timeout, "set by your instructor"
    seconds = default_timeout(reference_seconds)
    if seconds > TIMEOUT_FLOOR:
        return seconds, (f"{TIMEOUT_FACTOR:g} times the time a correct solution takes on the "
                         f"grading machine")
    return seconds, "the least the grader allows"


class Ended(Exception):
    """The worker is gone: ``kind`` timeout | crashed | exited | protocol | memory; ``reason`` a
    sentence for the student."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class Lost(Ended):
    """The worker ended with the fork server it came from (killed, by a classmate's code
    or its own): the test is run again, not marked."""


def _ended(problem, what, limit, lost=False):
    if lost:
        return Lost("crashed", f"the submission's process was killed when the grader's fork "
                               f"server was ({problem.message})")
    kind = problem.name
    if kind == "time_limit":
        kind = "timeout"
    elif kind == "crashed" and "exited with status" in problem.message:
        kind = "exited"
    if kind == "timeout":
        seconds, why = limit
        return Ended(kind, f"your code was still running after {seconds:g} s of its own time "
                           f"in {what}; the limit is {seconds:g} s per call ({why}), so it "
                           f"was stopped")
    if kind == "memory":
        return Ended(kind, f"your code used more memory than the limit in {what}, so it was "
                           f"stopped")
    text = problem.message
    text = f"the submission's {text[4:]}" if text.startswith("its ") else f"the submission {text}"
    return Ended(kind, text)


def view(submission, forbid):
    """What the worker of ``submission`` sees (sandbox.View's options): a private copy of
    the submission (its folder's whole tree, or its file alone: the files beside it are
    classmates'), and none of the class's folder, nor the checker's package or
    reference/ when the honesty rule forbids importing them."""
    path = os.path.abspath(submission.path)
    where = submission.spec if os.path.exists(submission.spec) else \
        submission.spec.rpartition(":")[0]
    tree = os.path.abspath(where) if os.path.isdir(where) else None
    hide = [os.path.dirname(tree) if tree else os.path.dirname(path)]
    hide += [f for name, f in sandbox.checker_folders().items() if name in forbid]
    return {"tree": tree, "alone": tree is None, "hide": hide}


class Worker:
    def __init__(self, submission, limits, forbid=(), windows=1, reference_seconds=0.0,
                 model=None):
        self._path = os.path.abspath(submission.path)
        # messages name the file as the student knows it: relative to the submission
        self._shown = os.path.relpath(self._path, root_of(submission.spec))
        request = dict({"spec": f"{self._path}:{submission.func}"}, **cell_request(model))
        if forbid:
            request["forbid"] = list(forbid)
        if limits.path is not None:
            request["path"] = limits.path
        self._limit = limit_of(limits, reference_seconds)
        timeout = self._limit[0]
        self._refused = None
        try:
            self._worker = _Isolated(request, timeout=timeout,
                                     memory_limit=limits.memory or DEFAULT_MEMORY,
                                     budget=timeout * (windows + EXTRA_CALLS),
                                     require_isolation=limits.require_isolation,
                                     view=view(submission, forbid))
        except UsageError as exc:
            if exc.option == "require_isolation":
                raise
            self._refused = str(exc.allowed)      # its files cannot be copied: unloadable
            self._worker = None

    @property
    def honesty(self):
        return [] if self._worker is None else list(self._worker.refused)

    @property
    def mechanism(self):
        """How the worker is isolated (isolation's word: "namespaces+uid", "uid",
        "same-user", ...)."""
        return str(getattr(self._worker, "mechanism", None) or "same-user")

    @property
    def runner(self):
        """The isolation worker itself, for check's diagnosis (its problems, not Ended)."""
        return self._worker

    def load(self):
        """Load the submission; returns None, or why it cannot be loaded. Raises Ended
        when the worker hung, crashed or exited meanwhile."""
        if self._refused is not None:
            return self._refused
        try:
            problem = self._worker.load()
        except UsageError as exc:
            return str(exc.allowed).replace(self._path, self._shown)
        if problem is not None:
            raise _ended(problem, "loading your file", self._limit, self._worker.lost)
        return None

    def call(self, params, x, y, h0, options, what="the call", states=None):
        """One call: an untrusted.Outcome (validated by the isolation layer). ``states``:
        the cell's further incoming states by name (an LSTM's c0)."""
        out = self._worker.call(params, x, y, h0, options, what, states)
        for p in out.problems:
            if p.name in _ENDING or (p.name == "memory" and self._worker.ended is not None):
                raise _ended(p, what, self._limit, self._worker.lost)   # (memory: killed)
        if any(p.name == "memory" for p in out.problems):    # worded for the student
            out = out._replace(problems=[self._memory(what) if p.name == "memory" else p
                                         for p in out.problems])
        return out

    def _memory(self, what):
        return Problem("memory", f"your code ran out of memory in {what}; the limit is "
                                 f"{format_size(self._worker.memory_limit)}")

    def close(self):
        if self._worker is not None:
            self._worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
