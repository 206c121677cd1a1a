"""Running a submission in its own worker process, with limits: the ONE place the grader
talks to the isolation layer.

``Worker(submission, limits, forbid)`` starts a process for one submission, in its own
process group (no preexec_fn: the parent runs JAX's threads, so the worker sets its own
limit first thing), with ``limits.memory`` bytes of address space. Per test, ``load()``
loads the submission anew (a fresh instance) and ``call(...)`` runs each window, in
order, on that one instance; every call (and the load) may take at
most ``limits.timeout`` seconds. When the process hangs, crashes, exits or writes garbage,
the call raises ``Ended`` with the reason, and the process group is killed.
"""
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple, Optional

from ..untrusted import Outcome, Problem, call_impl
from .wire import WireError, read_frame

__all__ = ["Limits", "Ended", "Worker"]

_STDERR_TAIL = 600          # characters of the worker's stderr quoted when it dies


class Limits(NamedTuple):
    timeout: float                 # seconds, per call and for loading the submission
    memory: Optional[int] = None   # bytes of address space of the worker, or None


class Ended(Exception):
    """The worker is gone: ``kind`` timeout | crashed | exited | protocol; ``reason`` a
    sentence for the student."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class Worker:
    def __init__(self, submission, limits, forbid=()):
        self.submission, self.limits, self.forbid = submission, limits, tuple(forbid)
        self.honesty = []
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gradcheck.grade.sandbox", str(limits.memory or 0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            start_new_session=True,
            cwd=os.path.dirname(os.path.abspath(submission.path)))
        self._buffer = b""

    # ---------------------------------------------------------------- the two requests
    def load(self):
        """Load the submission; returns None, or why it cannot be loaded."""
        header, _ = self._request({"op": "load", "path": os.path.abspath(self.submission.path),
                                   "func": self.submission.func, "forbid": self.forbid})
        return header.get("error") if isinstance(header.get("error"), str) else None

    def call(self, params, x, y, h0, options):
        """One call of the submission's function: an untrusted.Outcome, validated again
        here (the worker's own validation ran beside the student's code)."""
        header, arrays = self._request({"op": "call", "params": params, "x": x, "y": y,
                                        "h0": h0, "options": options})
        problems = [Problem(str(p[0]), str(p[1])) for p in header.get("problems", [])
                    if isinstance(p, list) and len(p) == 2]
        if any(p.name in ("exception", "return_value") for p in problems) and \
                not header.get("grads"):
            return Outcome(None, None, None, problems)
        grads = {k[6:]: v for k, v in arrays.items() if k.startswith("grads.")}
        loss = arrays.get("loss")
        loss = None if loss is None or loss.shape != (1,) else loss[0]
        out = call_impl(_returns((loss, grads, arrays.get("h_last"))), params, x, y, h0,
                        options)
        seen = set(out.problems)
        return out._replace(problems=[p for p in problems if p not in seen] + out.problems)

    # ---------------------------------------------------------------- plumbing
    def _request(self, request):
        if not self.alive:
            raise Ended("exited", "the submission's process had already ended")
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._proc.stdin.write(struct.pack(">I", len(data)) + data)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._ended() from None
        deadline = time.monotonic() + self.limits.timeout
        try:
            header, arrays = read_frame(lambda n: self._read(n, deadline))
        except WireError as exc:
            self.close()
            raise Ended("protocol", f"the worker wrote something that is not a reply ({exc}):"
                                    f" the submission wrote to the grader's channel") from None
        if not isinstance(header, dict):
            raise Ended("protocol", "the worker's reply is not an object")
        names = header.get("honesty")
        if isinstance(names, list):
            self.honesty = [str(n) for n in names]
        return header, arrays

    def _read(self, n, deadline):
        fd = self._proc.stdout.fileno()
        while len(self._buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise Ended("timeout", f"a call took longer than the time limit "
                                       f"({self.limits.timeout:g} s) and was stopped")
            chunk = os.read(fd, max(65536, n - len(self._buffer)))
            if not chunk:
                raise self._ended()
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _ended(self):
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = self._tail()
        self.close()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = {"SIGSEGV": " (a segmentation fault)", "SIGKILL": " (killed, perhaps for "
                   "exceeding the memory limit)"}.get(name, "")
            return Ended("crashed", f"the submission's process crashed with {name}{why}{tail}")
        return Ended("exited", f"the submission's process exited (code {code}) in the middle "
                               f"of a call{tail}")

    def _tail(self):
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its last output: {text!r}" if text else ""

    @property
    def alive(self):
        return self._proc.poll() is None and not self._proc.stdin.closed

    def close(self):
        """Kill the worker's whole process group (idempotent)."""
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if not self._stderr.closed:
            self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _returns(value):
    """A function returning what the worker sent, for call_impl to validate once more."""
    return lambda *args, **kwargs: value
