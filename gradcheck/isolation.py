"""The checker's side of an isolated check: a worker process that runs the implementation.

The checking process never imports or calls the implementation under test. ``Worker``
starts ``gradcheck.worker`` once per check, in its own session and process group, with
a memory limit it sets on itself before it loads any user code; sends each call's inputs
as bytes (the worker calls on its own copies) and reads back only float32/float64 arrays
and a float (``gradcheck.wire``; nothing is unpickled), copied on arrival. Each call has
a deadline (``timeout``, and what is left of the check's ``budget``); the worker's
stdout and stderr are read by threads into bounded buffers, so a noisy worker never
blocks and never reaches the checker's own output. Whatever happens (a verdict, an
exception in the checker, Ctrl-C), ``close`` kills the worker's whole process group, so
no thread or process it started outlives the check.

Every way a call can end badly is a Problem (untrusted.Problem), never an exception:
``timeout``, ``time_limit``, ``memory``, ``crashed`` (the process ended: exit status or
signal), ``protocol`` (an answer not in the wire format), and the contract's own problems.
"""
import contextlib
import errno
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import sandbox
from .errors import UsageError
from .model import LOSS_NAME
from .untrusted import PROBLEM_NAMES, Outcome, Problem, model_of, printable, validate
from .wire import MAX_HEADER, PREFIX, WireError, decode, encode

__all__ = ["Worker", "start_fork_server", "kill_all", "sweep", "parse_size", "format_size", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY",
           "default_budget", "EXCERPT_BYTES"]

# Per call of the implementation (and for loading it). The article's window takes about a
# millisecond in NumPy and a pure-Python loop at the large config under a second, so a
# correct implementation is far inside this; a hung one costs at most this much per check
# (the first call that times out ends the check).
DEFAULT_TIMEOUT = 60.0
# The whole check's time in the implementation (all calls: the windows, then the extra
# calls that attribute a failure to time steps) defaults to this many times --timeout.
BUDGET_CALLS = 3


def default_budget(timeout):
    return BUDGET_CALLS * timeout


def _machine_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):                       # pragma: no cover
        return None


_GiB = 1 << 30
# 4 GiB, or half the machine's memory if that is less: a memory hog fails its own
# allocation long before the machine runs short. The limit is RLIMIT_DATA (worker.py).
DEFAULT_MEMORY = min(4 * _GiB, (_machine_memory() or 8 * _GiB) // 2)
# The smallest limit accepted: Python, NumPy and a small window need about 100 MiB.
MIN_MEMORY = 128 << 20
# The worker's memory limit is RLIMIT_DATA, which it sets on itself; a process with the
# privilege to raise it again, or that uses memory RLIMIT_DATA does not count (shared
# mappings), is also watched from here: a thread reads the worker's resident size this
# often and kills its group above the limit.
RSS_POLL_SECONDS = 0.1
# How often a wait on the fork server looks whether it has ended or been stopped (a
# stopped server answers nothing: it is replaced rather than waited for).
SERVER_POLL_SECONDS = 0.1
# How long the fork server may take to report a worker's end once it has ended.
EXIT_REPORT_SECONDS = 5.0
# After end-of-file on the answer pipe, how long the worker may take to end: a worker
# that closed its answer pipe and stays alive is killed then (a verdict, not a wait).
EOF_GRACE_SECONDS = 1.0
# A call's deadline is --timeout of the time the worker runs or sleeps, not of the time
# it waits for a CPU on a loaded machine (its run delay, /proc/<pid>/schedstat, is added
# to the deadline), but never more than this much wall time past --timeout.
LOAD_MARGIN_SECONDS = 5.0
# What is kept of the worker's stdout and stderr: this many bytes from the start and
# from the end of each.
EXCERPT_BYTES = 2000
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    """``512M``, ``4G``, ``1.5G``, ``1073741824`` -> bytes; UsageError otherwise."""
    allowed = (f"expected a size such as 512M or 4G (K, M, G, T: powers of 1024), "
               f"at least {format_size(MIN_MEMORY)}")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise UsageError("memory_limit", text, allowed)
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size < MIN_MEMORY:
        raise UsageError("memory_limit", text, allowed)
    return size


def format_size(n):
    for unit in "TGMK":
        if n >= _UNITS[unit] and n % (_UNITS[unit] // 1024 or 1) == 0:
            value = n / _UNITS[unit]
            return f"{value:g}{unit}"
    return str(n)


class _Capture(threading.Thread):
    """Reads one of the worker's output pipes to its end, keeping the first and last
    EXCERPT_BYTES bytes and counting the rest."""

    def __init__(self, stream, label):
        super().__init__(daemon=True, name=f"gradcheck-worker-{label}")
        self.stream, self.label = stream, label
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def run(self):
        fd = self.stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            room = EXCERPT_BYTES - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail = (self.tail + chunk)[-EXCERPT_BYTES:]

    def excerpt(self):
        if not self.total:
            return ""
        text = self.head.decode("utf-8", "replace")
        skipped = self.total - len(self.head) - len(self.tail)
        if skipped > 0:
            text += f"\n[... {skipped} bytes not shown ...]\n"
        text += self.tail.decode("utf-8", "replace")
        return printable(text)


def _signal_name(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    what = {"SIGSEGV": "a segmentation fault", "SIGABRT": "an abort",
            "SIGKILL": "killed, by itself or by the system (out of memory?)",
            "SIGBUS": "a bus error", "SIGFPE": "a floating-point exception"}.get(name)
    return f"signal {name}" + (f" ({what})" if what else "")


# The worker's first lines: gradcheck's modules from beside this file (not whatever
# "gradcheck" the working folder would give), without running the package's __init__
# (the worker needs only worker.py, untrusted.py, wire.py and NumPy); then the stand-in
# package is dropped (a user's `import gradcheck` gets the real one) and the folder goes
# to the end of sys.path, where it shadows none of the user's modules.
_BOOT = ("import sys, types; p = types.ModuleType('gradcheck'); "
         "p.__path__ = [{root!r} + '/gradcheck']; sys.modules['gradcheck'] = p; "
         "sys.path.insert(0, {root!r}); import gradcheck.worker as w; "
         "del sys.modules['gradcheck']; "
         "sys.path.remove({root!r}); sys.path.append({root!r}); w.main(sys.argv[1:])")
_ROOT = str(Path(__file__).resolve().parent.parent)
_LEFT_OPEN = []
def _answer_names(model):
    """The arrays an answer may carry: the model's outputs and gradients."""
    return frozenset(model.output_names + model.grad_names)


_ZYGOTE_BOOT = _BOOT.replace("w.main(sys.argv[1:])", "w.serve_forks(int(sys.argv[1]))")


class _ForkServer:
    """This process's fork server (worker.serve_forks): started at the first isolated
    check, it lives until this process ends (it exits when its socket closes, and is
    killed with this process). It never runs user code: every worker is a fresh fork
    of it, so a worker starts without importing Python and NumPy again."""
    _instance = None
    _lock = threading.Lock()

    @classmethod
    def get(cls, fresh=False):
        with cls._lock:
            server = cls._instance
            if (fresh or server is None or server.owner != os.getpid()
                    or server.proc.poll() is not None):
                if server is not None and server.owner == os.getpid():
                    server.sock.close()
                    server.proc.kill()   # (stopped, or its limits lowered: it may not
                    server.proc.wait()   # read the socket's end)
                server = cls._instance = cls()
            return server

    def __init__(self):
        import socket
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE_BOOT.format(root=_ROOT), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        theirs.close()
        self.sock = ours
        # what it inherited and should keep (but the core file size: it sets that to 0)
        self.limits = {r: v for r, v in _limits(os.getpid()).items()
                       if r != resource.RLIMIT_CORE}
        self.exits = {}                  # pid -> returncode, as the server reported them
        self.pids = []                   # pids of workers forked, not yet taken by spawn
        self.ignored = set()             # pids whose end nobody will ask about
        self.io = threading.Lock()

    def _receive(self, timeout):
        """One message from the server (a dict), or None on timeout; exits are filed.
        OSError when the server has ended or sent something that is not its message."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        data = self.sock.recv(1 << 16)
        if not data:
            raise OSError("the fork server ended")
        try:
            message = json.loads(data)
            if "exit" in message:
                pid, code = message["exit"], message["code"]
                if type(pid) is not int or type(code) is not int:
                    raise ValueError(message)
                if pid in self.ignored:
                    self.ignored.discard(pid)
                else:
                    self.exits[pid] = code
            elif type(message.get("pid")) is int:
                self.pids.append(message["pid"])
                self.mechanism = str(message.get("sandbox", "same-user"))[:40]
                self.pid_namespace = message.get("pidns") is True
            else:
                raise ValueError(message)
        except (ValueError, TypeError, AttributeError, RecursionError):
            raise OSError("the fork server sent something that is not its message") from None
        return message

    def limits_lowered(self):
        """Whether a resource limit of the server is now below what it started with
        (prlimit by code under test running as the same user, where it can name the
        server), after raising them back where this process may: its next workers would
        inherit them, or it could not receive their descriptors."""
        now = _limits(self.proc.pid)
        lowered = [r for r, (soft, hard) in self.limits.items()
                   if r in now and (_below(now[r][0], soft) or _below(now[r][1], hard))]
        for r in lowered:
            try:
                resource.prlimit(self.proc.pid, r, self.limits[r])
            except (OSError, ValueError):
                return True              # (raising a hard limit needs root)
        now = _limits(self.proc.pid)
        return any(now.get(r) != self.limits[r] for r in lowered)

    def stopped(self):
        """Whether the server has ended or is stopped (SIGSTOP): it will not answer."""
        return self.proc.poll() is not None or _state(self.proc.pid) in "TtXZ"

    def _wait_for(self, done, timeout):
        """Read the server's messages until ``done()`` or ``timeout`` seconds; False when
        the time ran out or the server ended or stopped meanwhile."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self.stopped():
                return False
            self._receive(min(left, SERVER_POLL_SECONDS))
        return True

    def spawn(self, limits, fds, timeout):
        """Fork a worker with these limits and descriptors (request, answer, stdout,
        stderr); its pid. OSError when the server ends, stops or does not answer."""
        import socket
        request = json.dumps({"limits": limits, "cwd": os.getcwd(), "env": dict(os.environ)})
        with self.io:
            self.pids = []
            socket.send_fds(self.sock, [request.encode()], list(fds))
            got = []

            def answered():
                got.extend(self.pids)
                self.pids = []
                return bool(got)
            if not self._wait_for(answered, timeout):
                raise OSError("the fork server did not answer")
            return got[0]

    def forget(self, pid):
        with self.io:
            if self.exits.pop(pid, None) is None:
                self.ignored.add(pid)

    def returncode(self, pid, timeout):
        """The worker's returncode once the server reports it (None if it does not, or
        has ended or stopped)."""
        with self.io:
            try:
                if not self._wait_for(lambda: pid in self.exits, timeout):
                    return None
            except OSError:
                return None
            return self.exits.pop(pid)


_LIVE = set()                            # the workers not yet closed, for kill_all()


def kill_all():
    """Kill every live worker's process group now (the command line's Ctrl-C)."""
    for worker in list(_LIVE):
        try:
            os.killpg(worker.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass


def start_fork_server():
    """Start this process's fork server now (it loads NumPy meanwhile), not at the first
    isolated check, and keep it until the process ends; the command line calls it
    before it imports the checker."""
    _restore_file_limit()                # (records this process's limit to restore)
    _ForkServer.get()


def stop_fork_server():
    """End this process's fork server, if it has one (the next isolated check starts
    another)."""
    with _ForkServer._lock:
        server, _ForkServer._instance = _ForkServer._instance, None
    if server is not None and server.owner == os.getpid():
        server.sock.close()              # the server exits when its socket closes
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:        # pragma: no cover - a stuck server
            server.proc.kill()
            server.proc.wait()


def _is_subreaper():
    try:
        import ctypes
        flag = ctypes.c_int(0)
        ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_
        return bool(flag.value)                                                 # CHILD_SUBREAPER
    except (OSError, AttributeError):                    # pragma: no cover - not Linux
        return False


def sweep():
    """Before the command writes its outputs: where this process adopts orphans (the
    command line makes itself a subreaper), end the fork server and kill every process
    still below this one, whatever session it moved to, so that nothing the code under
    test started can write over them afterwards. Elsewhere (a library call) nothing."""
    _restore_file_limit()                # where this process may (root)
    if not _is_subreaper():
        return
    with _ForkServer._lock:
        server, _ForkServer._instance = _ForkServer._instance, None
    if server is not None and server.owner == os.getpid():
        server.proc.kill()               # its workers die with it (PR_SET_PDEATHSIG)
        server.proc.wait()
        server.sock.close()
    for _ in range(_FREEZE_ROUNDS):
        left = _children(os.getpid())
        if not left:
            return
        for pid in left:
            _kill_tree(pid)
        # reap whichever ends first: the init of a worker's PID namespace, adopted here,
        # ends only once its namespace's other processes (adopted here too) are reaped
        for _ in left:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


@contextlib.contextmanager
def fork_server():
    """The fork server for the checks inside the block: one started here is ended at its
    end, so a library call leaves no process running behind it; one already running
    (start_fork_server, the command line) is kept."""
    running = _ForkServer._instance
    had = running is not None and running.owner == os.getpid() and running.proc.poll() is None
    try:
        yield
    finally:
        if not had:
            stop_fork_server()


def _state(pid):
    """The state letter of process ``pid`` (R, S, D, T, t, Z...), "X" if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rfind(b")") + 2:][:1].decode("ascii", "replace") or "X"
    except OSError:
        return "X"


class _Forked:
    """The little of subprocess.Popen that Worker needs, for a worker forked by the
    fork server (its parent): pid, poll(), wait()."""

    def __init__(self, pid, server):
        self.pid, self.server, self.returncode = pid, server, None
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:      # already ended and reaped: a descriptor at EOF
            self.pidfd, w = os.pipe()
            os.close(w)

    def poll(self):
        if self.returncode is None and self.pidfd >= 0:
            r, _, _ = select.select([self.pidfd], [], [], 0)
            if r:
                return self.wait()
        return self.returncode

    def wait(self, timeout=None):
        """Its returncode once it has ended (None if it is still running after
        ``timeout`` seconds); -SIGKILL when the fork server does not say."""
        if self.returncode is None and self.pidfd < 0:       # released: killed by us
            return -int(signal.SIGKILL)
        if self.returncode is None:
            r, _, _ = select.select([self.pidfd], [], [], timeout)
            if not r:
                return None
            code = self.server.returncode(self.pid, timeout=EXIT_REPORT_SECONDS)
            self.returncode = code if code is not None else -int(signal.SIGKILL)
            self.release()
        return self.returncode

    def release(self):
        """Done with it (killed, or its status read): the server's report of its end
        is not needed."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
            if self.returncode is None:
                self.server.forget(self.pid)


class Worker:
    """One worker process serving every call of one check. Use as a context manager
    (or call ``close``): it is killed, with its process group, on the way out."""
    isolated = True
    _closed = False
    lost = False            # it ended with the fork server it came from (grade runs it again)

    def __init__(self, request, *, timeout=DEFAULT_TIMEOUT, memory_limit=DEFAULT_MEMORY,
                 budget=None, require_isolation=False, view=None):
        # the worker's own folder, with a private copy of the code (gradcheck.sandbox)
        try:
            self._view = sandbox.View(request, **(view or {}))
        except sandbox.CopyRefused as exc:
            raise UsageError("impl", request.get("spec"), f"its code cannot be copied for "
                             f"the worker: {exc}") from None
        self._guard = contextlib.ExitStack()
        self.request = self._view.request
        self.model = model_of(self.request)        # which arrays an answer carries
        self.timeout = float(timeout)
        self.memory_limit = int(memory_limit)
        self.budget = default_budget(self.timeout) if budget is None else float(budget)
        self.spent = 0.0
        self.calls = 0
        self.ended = None               # why the worker can no longer be called
        self._loaded = False
        self.refused = []               # imports the honesty guard refused (grade only)
        self._buf = bytearray()          # bytes read past the last answer
        self._submitted = None
        self.proc, self._captures, self._watcher, self.group = None, [], None, None
        self._r = self._w = -1
        self._over_memory = False
        self._stop_watch = threading.Event()
        self.started = time.perf_counter()
        self._require_isolation = require_isolation
        self.mechanism = "not started"
        self.pid_namespace = False      # its own PID namespace (sandbox._split_off)
        try:
            self._start()
        except OSError as exc:           # no descriptors or processes left for it
            self._unstarted(exc)

    def _start(self):
        opened = []

        def pipe():
            r, w = os.pipe()
            opened.extend((r, w))
            return r, w
        try:
            _restore_file_limit()
            to_child, self._w = pipe()
            try:                         # room for a window's inputs: the worker can
                import fcntl             # start on them before the checker waits
                fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, 1 << 20)
            except (ImportError, AttributeError, OSError):
                pass
            self._r, from_child = pipe()
            out_r, out_w = pipe()
            err_r, err_w = pipe()
            fds = (to_child, from_child, out_w, err_w)
            self.group = _MemoryGroup.make(self.memory_limit)
            limits = {"memory": self.memory_limit, "sandbox": self._view.plan}
            if self.group is not None:
                limits["cgroup"] = os.path.join(self.group.path, "cgroup.procs")
            self._guard.enter_context(sandbox.checker_guard())   # before its code runs
            try:
                server = _ForkServer.get()
                if server.limits_lowered():      # replaced: its limits are this process's
                    server = _ForkServer.get(fresh=True)
                pid = server.spawn(limits, fds, self.timeout)
            except OSError:              # the server died or stopped: start another, once
                server = _ForkServer.get(fresh=True)
                pid = server.spawn(limits, fds, self.timeout)
            self.proc = _Forked(pid, server)
            self.mechanism = server.mechanism
            self.pid_namespace = server.pid_namespace
            sandbox.note_mechanism(self.mechanism)     # before its code is loaded
        except BaseException:
            for fd in opened:
                _close_quietly(fd)
            self._r = self._w = -1
            if self.group is not None:
                self.group.remove()
            self._guard.close()
            self._view.remove()
            raise
        for fd in (to_child, from_child, out_w, err_w):
            os.close(fd)
        self._pidfd = self.proc.pidfd
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._captures = [_Capture(os.fdopen(out_r, "rb", buffering=0), "stdout"),
                          _Capture(os.fdopen(err_r, "rb", buffering=0), "stderr")]
        for c in self._captures:
            c.start()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="gradcheck-worker-memory")
        _LIVE.add(self)
        self._watcher.start()
        if self._require_isolation and self.mechanism not in sandbox.STRONG:
            self.close()                 # before its code is even loaded
            raise UsageError("require_isolation", self.mechanism, sandbox.REQUIRED)
        # the load request goes now (it fits in the pipe's buffer): the worker loads the
        # implementation while the checker computes the first window's oracles
        self._pending = encode({"op": "load", "request": self.request})
        try:
            self._pending = self._pending[os.write(self._w, self._pending):]
        except (BlockingIOError, BrokenPipeError):
            pass

    def _unstarted(self, exc):
        """The worker could not be started (the checker's descriptors or processes ran
        out, or the fork server failed twice): every call is a verdict saying so."""
        import resource
        why = exc.strerror or str(exc)
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            why += f" (the checker's open-file limit is {soft})"
        self.ended = f"its process could not be started: {why}"
        self._closed = True
        self._guard.close()
        self._view.remove()

    # ------------------------------------------------------------------ the process

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Kill the worker and every process it started (its group, and the descendants
        that left it with setsid or a double fork: the worker is their subreaper, so
        they stay its descendants), reap it."""
        if self._closed:
            return
        self._closed = True
        self._stop_watch.set()
        _LIVE.discard(self)
        if self.ended is None:
            self.ended = "the check is over"
        if self.proc.poll() is None:
            _kill_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)     # also reaches those it left behind
        except (ProcessLookupError, PermissionError):
            pass
        if self.group is not None:       # every process it started, wherever it went
            if self.group.oom_killed():
                self._over_memory = True
            self.group.kill()
            self.group.remove()
        self.proc.release()
        self._guard.close()
        self._view.remove()
        for fd in (self._r, self._w):
            _close_quietly(fd)
        self._r = self._w = -1
        for c in self._captures:
            c.join(timeout=0.5)
            if c.is_alive():             # a process that escaped the kill holds the pipe:
                _LEFT_OPEN.append(c.stream)      # leave it to the thread, never reuse its fd
            else:
                c.stream.close()
        if self._watcher is not threading.current_thread():
            self._watcher.join()         # no thread of the check outlives it

    def processes(self):
        """The worker's processes: the one the fork server forked and all below it;
        in a PID namespace of its own, without that one and the namespace's init
        (gradcheck's own, which only wait: sandbox._split_off)."""
        tree = _descendants(self.proc.pid)
        if self.pid_namespace:
            tree = [p for p in tree[1:] if not _namespace_init(p)]
        return tree

    def _run_delay(self):
        """Seconds the worker's processes have waited for a CPU, together."""
        return sum(_run_delay(p) for p in self.processes())

    def memory_in_use(self):
        """The memory of the worker and every descendant (bytes): _tree_memory."""
        return _tree_memory(self.processes())

    def _watch(self):
        """Kill the worker and its descendants when their memory, counted together
        (resident pages and anonymous shared memory they hold, _tree_memory), exceeds
        the memory limit."""
        while not self._stop_watch.wait(RSS_POLL_SECONDS):
            over = self.memory_in_use() > self.memory_limit or (
                self.group is not None and self.group.oom_killed())
            if over and not self._closed:
                self._over_memory = True
                _kill_tree(self.proc.pid)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return

    def output(self):
        """What the worker wrote, as bounded excerpts: {"stdout": text, "stderr": text},
        only the non-empty ones. Complete once the worker is closed."""
        return {c.label: c.excerpt() for c in self._captures if c.total}

    def _died(self):
        """How the process ended (a phrase), or "eof" when it closed its answer pipe
        (or request pipe) and has not ended EOF_GRACE_SECONDS later."""
        code = self.proc.wait(EOF_GRACE_SECONDS)
        if code is None:
            return "eof"
        if self.group is not None and self.group.oom_killed():
            self._over_memory = True
        how = (f"was killed by {_signal_name(-code)}" if code < 0 else
               f"exited with status {code} (sys.exit, os._exit or an exit hook)")
        if self.proc.server.proc.poll() is not None:
            # the fork server's end ends its workers (PR_SET_PDEATHSIG): not this one's doing
            # alone, and grade runs such a submission again (``lost``)
            self.lost = True
            how += " when the checker's fork server it was started from was killed"
        return how

    # ------------------------------------------------------------------ the pipes

    def _deadline(self):
        left = self.budget - self.spent
        return min(self.timeout, max(left, 0.0)), left <= self.timeout

    def _waited_for_cpu(self, since):
        """Seconds the worker has waited for a CPU since its run delay was ``since``,
        up to LOAD_MARGIN_SECONDS."""
        return min(max(self._run_delay() - since, 0.0), LOAD_MARGIN_SECONDS)

    def _io(self, deadline, delay_since):
        """Send what is pending, then read one whole answer, by ``deadline`` (a
        perf_counter time, moved later by the time the worker waited for a CPU since
        its run delay was ``delay_since``; an answer that is already there when it has
        passed is still taken). Returns (head, payload), or a string: "timeout",
        "protocol", "eof", or how the process ended. Bytes after the answer stay for the
        next one."""
        buf = self._buf
        while True:
            if len(buf) >= PREFIX.size:
                head_len, payload_len = PREFIX.unpack_from(buf)
                if head_len > MAX_HEADER or payload_len > self._max_payload:
                    return "protocol"
                need = PREFIX.size + head_len + payload_len
                if len(buf) >= need:
                    answer = (bytes(buf[PREFIX.size:PREFIX.size + head_len]),
                              bytes(buf[PREFIX.size + head_len:need]))
                    del buf[:need]
                    return answer
            left = deadline - time.perf_counter()
            if left <= 0:
                left = deadline + self._waited_for_cpu(delay_since) - time.perf_counter()
            writers = [self._w] if self._pending else []
            r, w, _ = select.select([self._r, self._pidfd], writers, [], max(left, 0.0))
            if not (r or w):
                if left <= 0:
                    return "timeout"
                continue
            if w:
                try:
                    n = os.write(self._w, self._pending)
                    self._pending = self._pending[n:]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    return self._died()
            if self._r in r:
                try:
                    chunk = os.read(self._r, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    return self._died()
                buf += chunk
            elif self._pidfd in r:
                return self._died()

    def _exchange(self, what, max_payload, start=None, delay_since=None):
        """Read the answer to what was sent (at ``start``, default now, when the
        worker's run delay was ``delay_since``) within the call's deadline; a (head,
        payload) pair, or a Problem (after which the worker is killed)."""
        if self.ended is not None:
            return Problem("crashed", f"not called ({what}): {self.ended}")
        seconds, budget_bound = self._deadline()
        if seconds <= 0:
            return Problem("time_limit", f"not called ({what}): the check's time budget for "
                                         f"the implementation ({self.budget:g} s) is spent")
        self._max_payload = max_payload
        start = time.perf_counter() if start is None else start
        delay_since = self._run_delay() if delay_since is None else delay_since
        got = self._io(start + seconds, delay_since)
        _restore_file_limit()            # if it lowered ours meanwhile (root can undo it)
        self.spent += max(time.perf_counter() - start - self._waited_for_cpu(delay_since), 0.0)
        if isinstance(got, tuple):
            return got
        if got == "timeout":
            if budget_bound and seconds < self.timeout:
                problem = Problem("time_limit", f"the check's time budget for the "
                                  f"implementation (--time-budget {self.budget:g} s) ran "
                                  f"out in {what}; its process was killed")
            else:
                problem = Problem("timeout", f"did not return within --timeout "
                                  f"{self.timeout:g} s in {what}; its process was killed")
        elif self._over_memory:
            problem = Problem("memory", f"its process used more than --memory-limit "
                              f"{format_size(self.memory_limit)} of memory in {what}; "
                              f"it was killed")
        elif got == "protocol":
            problem = Problem("protocol", f"its process sent an answer that is not in the "
                              f"checker's format in {what}; it was killed")
        elif got == "eof":
            problem = Problem("protocol", f"its process closed its pipe to the checker in "
                              f"{what} and did not end; it was killed")
        else:
            problem = Problem("crashed", f"its process {got} in {what}")
        self.ended = problem.message
        self.close()
        return problem

    # ------------------------------------------------------------------ requests

    def _user_spec(self):
        """The --impl as the user gave it, not the worker's private copy of it."""
        return self._view.original(self.request.get("spec") or "")

    def load(self):
        """Wait for the worker to load the implementation; UsageError if it cannot be
        loaded; a Problem if the worker ended, hung or spoke nonsense; None when ready."""
        if self._loaded:
            return None
        got = self._exchange("loading the implementation", 0)
        if isinstance(got, Problem):
            return got
        try:
            header, _ = decode(*got, allowed_names=())
            self._note_refused(header)
        except WireError as exc:
            return self._bad(f"loading the implementation: {exc}")
        except Exception as exc:        # whatever shape it has, never the checker's crash
            return self._bad(f"loading the implementation: {type(exc).__name__}")
        if isinstance(header.get("usage"), str):
            self.close()
            raise UsageError("impl", self._user_spec(),
                             printable(self._view.original(header["usage"])[:500]))
        if isinstance(header.get("error"), str):
            self.close()
            raise UsageError("impl", self._user_spec(),
                             printable(self._view.original(header["error"])[:500]))
        if header.get("ok") is not True:
            return self._bad("loading the implementation")
        self._loaded = True
        return None

    def _note_refused(self, header):
        """grade's honesty guard (a "forbid" request): the imports it refused so far."""
        names = header.get("refused")
        if isinstance(names, list):
            self.refused = [printable(str(n)[:100]) for n in names[:20]]

    def _bad(self, what):
        problem = Problem("protocol", f"its process sent an answer that is not in the "
                          f"checker's format ({what[:200]}); it was killed")
        self.ended = problem.message
        self.close()
        return problem

    def call(self, params, x, y, h0, options, what="the call", states=None):
        """One call of the implementation on copies of these inputs -> Outcome.

        Shapes: x [T, B, I]; h0 [B, R]; ``states``: the cell's further incoming states
        by name (c0 [B, R]). ``what`` names the call in messages ("window 2", ...)."""
        self.submit(params, x, y, h0, options, what, states)
        return self.result()

    def submit(self, params, x, y, h0, options, what="the call", states=None):
        """Send one call's inputs now, so that the worker runs it while the checker
        works on something else; ``result()`` reads its answer. The call's --timeout
        runs from now."""
        states = states or {}
        shapes = dict({n: np.shape(a) for n, a in params.items()}, x=np.shape(x),
                      h0=np.shape(h0), **{n: np.shape(a) for n, a in states.items()})
        # the answer's arrays at float64, with room for wrong shapes (validate names them)
        most = 4 * (8 * sum(int(np.prod(s)) for s in shapes.values()) + 8) + (1 << 20)
        inputs = list(params.items()) + [("x", x), ("y", y), ("h0", h0)] + list(states.items())
        self._submitted = (what, shapes, most, time.perf_counter(),
                           self._run_delay() if self.proc else 0.0)
        if self.ended is None:
            self._pending += encode({"op": "call", "options": _plain(options)}, inputs)
            try:
                self._pending = self._pending[os.write(self._w, self._pending):]
            except (BlockingIOError, BrokenPipeError):
                pass                     # the rest goes when result() waits

    def result(self):
        """The Outcome of the call ``submit`` sent."""
        what, shapes, most, sent, delay = self._submitted
        problem = self.load()
        if problem is not None:
            return Outcome(None, None, None, [problem])
        self.calls += 1
        got = self._exchange(what, most, start=sent, delay_since=delay)
        if isinstance(got, Problem):
            return Outcome(None, None, None, [got])
        try:
            header, arrays = decode(*got, allowed_names=_answer_names(self.model))
            self._note_refused(header)
            problems = _problems(header.get("problems"))
        except WireError as exc:
            return Outcome(None, None, None, [self._bad(f"{what}: {exc}")])
        except Exception as exc:        # whatever shape it has, never the checker's crash
            return Outcome(None, None, None, [self._bad(f"{what}: {type(exc).__name__}")])
        if LOSS_NAME in arrays and arrays[LOSS_NAME].shape != ():
            return Outcome(None, None, None, [self._bad(f"{what}: the loss is not a scalar")])
        problems = [self._memory(p, what) if p.name == "memory" else p for p in problems]
        # What is missing is the checker's finding, not the worker's word: every
        # gradient is named, unless the answer has none at all and says why (grads that
        # were not a dict: one problem, not nine); so are a loss or h_last left out.
        grads_given = any(n in arrays for n in self.model.grad_names) or not problems
        if not problems:
            problems = [Problem("return_value", f"the answer carries no {n}, so it could "
                                f"not be compared") for n in self.model.output_names
                        if n not in arrays]
        return validate(arrays, problems, shapes, grads_given, self.request.get("skip") or (),
                        self.model)

    def _memory(self, p, what):
        return Problem("memory", f"ran out of memory under --memory-limit "
                       f"{format_size(self.memory_limit)} in {what}: {p.message}")


def _plain(options):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _problems(listed):
    """The worker's problems, each [name, message] with a known name; WireError else."""
    if not isinstance(listed, list):
        raise WireError("problems is not a list")
    out = []
    for p in listed:
        if not (isinstance(p, list) and len(p) == 2 and p[0] in PROBLEM_NAMES
                and isinstance(p[1], str)):
            raise WireError("a problem is not [name, message]")
        out.append(Problem(p[0], printable(p[1][:1000])))
    return out


class _MemoryGroup:
    """A memory control group (cgroup v1) of one worker, where this process may make one
    (root): the kernel counts every page the worker and all its descendants use (memfd
    and shared memory included) against the limit, and lists every process in it, so
    none escapes the kill. ``make`` returns None where it cannot be made."""
    ROOT = "/sys/fs/cgroup/memory"
    _count = 0

    @classmethod
    def make(cls, limit):
        if os.geteuid() != 0 or not os.path.isdir(cls.ROOT):
            return None
        try:
            with open("/proc/self/cgroup") as f:
                ours = next(line.rstrip("\n").split(":", 2)[2] for line in f
                            if line.split(":", 2)[1] == "memory")
        except (OSError, StopIteration, IndexError):
            return None
        parent = cls.ROOT + ours
        if cls._count == 0:
            cls._remove_stale(parent)
        cls._count += 1
        path = os.path.join(parent, f"gradcheck-{os.getpid()}-{cls._count}")
        try:
            os.mkdir(path, 0o700)
        except OSError:
            return None
        group = cls(path)
        try:
            group._write("memory.limit_in_bytes", limit)
        except OSError:
            group.remove()
            return None
        return group

    @staticmethod
    def _remove_stale(parent):
        """Remove the groups that a checker which is gone (killed before its close)
        left empty beside ours."""
        try:
            names = os.listdir(parent)
        except OSError:
            return
        for name in names:
            parts = name.split("-")
            if len(parts) != 3 or parts[0] != "gradcheck" or not parts[1].isdigit():
                continue
            if os.path.exists(f"/proc/{parts[1]}"):
                continue                 # its checker still runs
            try:
                os.rmdir(os.path.join(parent, name))      # fails while a process is in it
            except OSError:
                pass

    def __init__(self, path):
        self.path = path

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def _read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def pids(self):
        try:
            return [int(p) for p in self._read("cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def oom_killed(self):
        """Whether the kernel killed a process of it for going over the limit."""
        try:
            lines = self._read("memory.oom_control").splitlines()
        except OSError:
            return False
        return any(line.split()[:1] == ["oom_kill"] and line.split()[1:] != ["0"]
                   for line in lines)

    def kill(self):
        """Kill every process in it, until none is left (or a few rounds of trying)."""
        for _ in range(_FREEZE_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)

    def remove(self):
        """Remove it once its processes have ended (they end soon after a kill)."""
        deadline = time.monotonic() + EOF_GRACE_SECONDS
        while True:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                self.kill()
                time.sleep(0.01)


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


_FILE_LIMIT = []                          # this process's RLIMIT_NOFILE when it began


def _restore_file_limit():
    """Undo a lowering of this process's open-file limit (prlimit by code under test
    that runs as the same user): back to what it was at the first worker, as far as
    this process may raise it (root: all the way)."""
    import resource
    now = resource.getrlimit(resource.RLIMIT_NOFILE)
    if not _FILE_LIMIT:
        _FILE_LIMIT.append(now)
        return
    want = _FILE_LIMIT[0]
    if now[0] >= want[0] and now[1] >= want[1]:
        return
    for limits in (want, (min(want[0], now[1]), now[1])):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return
        except (ValueError, OSError):
            continue


def _limits(pid):
    """Every resource limit of process ``pid``: {resource: (soft, hard)} ({} where they
    cannot be read)."""
    found = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            r = getattr(resource, name)
            try:
                found[r] = resource.prlimit(pid, r)
            except (OSError, ValueError):
                pass
    return found


def _below(value, than):
    """Whether limit ``value`` is lower than ``than`` (RLIM_INFINITY is the highest)."""
    inf = resource.RLIM_INFINITY
    return than != value and (than == inf or (value != inf and value < than))


def _run_delay(pid):
    """Seconds process ``pid`` has spent runnable but waiting for a CPU (Linux
    schedstat; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _namespace_init(pid):
    """Whether process ``pid`` is pid 1 of a PID namespace below this process's."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == b"1"
    except OSError:
        pass
    return False


def _resident_bytes(pid):
    """The resident memory of process ``pid`` (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# Descriptors that name anonymous shared memory: memfd_create's files, and POSIX shared
# memory (/dev/shm). Their pages stay allocated while a descriptor is open, mapped or not.
_SHARED_MEMORY = ("/memfd:", "/dev/shm/")


def _children(pid):
    """The pids of process ``pid``'s children (of every thread of it)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def _descendants(pid):
    """``pid`` and every process below it, parents first."""
    tree, todo, seen = [], [pid], set()
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.add(p)
        tree.append(p)
        todo.extend(_children(p))
    return tree


def _tree_memory(pids):
    """Bytes of memory held by these processes: each one's resident pages (its share
    of shared memory it maps included), plus every anonymous shared memory file (memfd,
    /dev/shm) that one of them holds open, once per file, mapped or not. (A file both
    mapped and held open counts twice: only code that uses memfd pays for that.)"""
    total, files = 0, {}
    for pid in pids:
        total += _resident_bytes(pid)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if not os.readlink(path).startswith(_SHARED_MEMORY):
                    continue
                st = os.stat(path)
            except OSError:
                continue
            files[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return total + sum(files.values())


# Rounds of stopping the worker's descendants before they are killed: each round stops
# what the last one found, so a process that forks as fast as it can is caught in a few.
_FREEZE_ROUNDS = 20


def _kill_tree(pid):
    """Stop ``pid`` and every descendant (SIGSTOP: none forks again), then kill them all.
    Orphans of a process killed first are adopted by the worker or the fork server (both
    subreapers), which are killed or kill them."""
    stopped = []
    for _ in range(_FREEZE_ROUNDS):
        fresh = [p for p in _descendants(pid) if p not in stopped]
        if not fresh:
            break
        for p in fresh:
            try:
                os.kill(p, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        stopped += fresh
    for p in stopped:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
