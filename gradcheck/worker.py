"""The worker process: the only place an isolated check runs the implementation under test.

Started by ``gradcheck.isolation`` once per check, in its own session, as::

    python -c <boot> FD_IN FD_OUT LIMITS

It sets its resource limits first (LIMITS, a JSON object: ``memory`` bytes for
RLIMIT_DATA; no core files; killed with the checker), then serves requests read from
FD_IN, answering on FD_OUT (gradcheck.wire messages):

- ``{"op": "load", "request": {...}}``: ``untrusted.build(request)`` loads the
  implementation (the request is plain JSON data: ``{"spec": "FILE.py:FUNC"}`` and
  whatever else ``load_impl`` accepts); answers ``{"ok": true}`` or ``{"error": ...}``.
- ``{"op": "call", "options": {...}}`` with the arrays ``params``, ``x``, ``y``, ``h0``:
  calls it on fresh copies, converts what it returns to real float arrays
  (``untrusted.convert_return``), compares its inputs byte for byte with what arrived,
  and answers with those arrays and the problems found.

Optional, for ``gradcheck grade``: a load request with ``"forbid": [names]`` installs
the academic-honesty import guard (gradcheck.grade.honesty) before the implementation is
loaded; from then on every answer lists the names it refused under ``"refused"``.

Everything here can only make the verdict fail: the checker validates every answer
itself, and what this process says about the implementation (an exception, a
conversion that failed, modified inputs) is a failure, never a pass.
"""
import json
import os
import resource
import sys

import numpy as np

from . import sandbox, untrusted, wire
from .errors import UsageError
from .model import DEFAULT_CELL

__all__ = ["main", "serve_forks"]


def _join_cgroup(limits):
    """Enter the memory control group the checker made for this worker (root only), so
    that it and every process it starts are counted and found there."""
    cgroup = limits.pop("cgroup", None)
    if cgroup:
        with open(cgroup, "w") as f:
            f.write(str(os.getpid()))


def _set_limits(limits):
    memory = limits.get("memory")
    if memory:
        # RLIMIT_DATA (private writable memory: the heap and anonymous mappings, where
        # NumPy's arrays live) rather than RLIMIT_AS: JAX and OpenBLAS reserve large
        # address ranges they never touch, which RLIMIT_AS counts (JAX aborts under it).
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))     # a segfault leaves no core file
    try:                                 # die with the checker, even if it is SIGKILLed
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):                    # pragma: no cover - not Linux
        pass


def _prctl(option, value):
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):                    # pragma: no cover - not Linux
        pass


# A subreaper adopts the orphans among its descendants (a double fork, a parent that
# exits): they stay below it, where they can be found and killed.
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def _own_children():
    found = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                found.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _receive(fd, wire, np):
    head_len, payload_len = wire.PREFIX.unpack(_read_exact(fd, wire.PREFIX.size))
    head = _read_exact(fd, head_len)
    payload = _read_exact(fd, payload_len)
    header = json.loads(head)
    listed = header.pop("arrays")
    raw, offset = {}, 0                  # name -> (dtype, shape, the bytes as they arrived)
    for name, dtype, shape in listed:
        size = 1
        for n in shape:
            size *= n
        nbytes = size * np.dtype(dtype).itemsize
        raw[name] = (dtype, tuple(shape), payload[offset:offset + nbytes])
        offset += nbytes
    return header, raw


def _send(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _call(fn, header, raw, untrusted, np, model):
    """One call of the implementation -> (header, arrays) of the answer. ``model``: the
    model.Model the load request named (its further states, c0, follow h0)."""
    fresh = {n: np.frombuffer(b, dtype, -1).reshape(shape).copy()
             for n, (dtype, shape, b) in raw.items()}
    y = fresh.pop("y")
    x = fresh.pop("x")
    h0 = fresh.pop("h0")
    states = [fresh.pop(n) for n in model.state_names[1:]]
    params = fresh
    inputs = dict(params, x=x, y=y, h0=h0, **dict(zip(model.state_names[1:], states)))
    try:
        out = fn(params, x, y, h0, *states, **header["options"])
    except BaseException as exc:       # untrusted: even SystemExit is a verdict
        name = untrusted.problem_name(exc)
        message = untrusted.exception_message(exc, fn, header["options"], model)
        return {"problems": [[name, message + sandbox.space_note(exc)]]}, []
    changed = [n for n in raw if inputs[n].tobytes() != raw[n][2]]
    problems = [untrusted.modified_problem(changed)] if changed else []
    try:
        # (the RNN's call as before cells: the red-team tests replace this function)
        arrays, more, _ = (untrusted.convert_return(out) if model.cell.name == DEFAULT_CELL
                           else untrusted.convert_return(out, model))
    except BaseException as exc:       # user code ran in the conversion (__array__, ...)
        name = untrusted.problem_name(exc)
        return {"problems": [[p.name, p.message] for p in problems]
                + [[name, "its return value could not be read: "
                    + untrusted.exception_message(exc)]]}, []
    return ({"problems": [[p.name, p.message] for p in problems + more]},
            list(arrays.items()))


def _refused(reply, refused):
    """The reply, with the imports the honesty guard refused so far (when it is on)."""
    return reply if refused is None else dict(reply, refused=list(refused))


def main(argv):
    fd_in, fd_out = int(argv[0]), int(argv[1])
    _set_limits(json.loads(argv[2]))
    for fd in (fd_in, fd_out):           # a subprocess it starts does not inherit them
        os.set_inheritable(fd, False)
    fn, refused, model = None, None, None
    while True:
        try:
            header, raw = _receive(fd_in, wire, np)
        except EOFError:                 # the checker is done (or gone)
            os._exit(0)
        if header.get("op") == "load":
            request = dict(header["request"])
            forbid = request.pop("forbid", None)      # optional: grade's honesty guard
            if forbid and refused is None:
                from .grade.honesty import install
                refused = install(forbid)
            if isinstance(request.get("path"), str):    # its own package, for good
                sys.path.insert(0, request["path"])
            try:
                fn = untrusted.build(request)
                model = untrusted.model_of(request)
                reply = {"ok": True}
            except UsageError as exc:       # cannot be loaded: bad usage (exit 2)
                reply = {"usage": str(exc.allowed)}
            except BaseException as exc:
                reply = {"error": untrusted.exception_message(exc)}
            _send(fd_out, wire.encode(_refused(reply, refused)))
        elif header.get("op") == "call" and fn is not None:
            answer, arrays = _call(fn, header, raw, untrusted, np, model)
            answer = _refused(answer, refused)
            try:
                message = wire.encode(answer, arrays)
            except (TypeError, ValueError) as exc:
                message = wire.encode({"problems": [["return_value", f"could not be sent: "
                                                     f"{type(exc).__name__}"]]})
            _send(fd_out, message)
        else:
            os._exit(3)


def serve_forks(control_fd):
    """The fork server: a process with NumPy and this module loaded and no user code,
    which forks one worker per request, so a check's worker starts in milliseconds.

    Requests arrive on ``control_fd`` (a SOCK_SEQPACKET socket): a JSON object
    ``{"limits": ..., "cwd": ..., "env": ...}`` with four descriptors (the worker's
    request pipe, answer pipe, stdout and stderr). Each is answered ``{"pid": N}``;
    when a worker ends, ``{"exit": N, "code": C}`` (C as subprocess's returncode:
    negative for a signal). It ends when the checker closes the socket (or dies)."""
    import select
    import signal
    import socket
    _set_limits({})                        # no core files; die with the checker
    # a checker's command line may block signals it handles in one thread; ours and the
    # workers' are the defaults
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)      # orphans of ended workers come here, are killed
    workers = set()
    sandbox.preload()                      # a worker may not be able to read them later
    mechanism = sandbox.probe()
    slots = sandbox.Slots() if os.geteuid() == 0 else None
    sandbox.checker_guard().__enter__()    # for good (not root: its workers keep its uid)
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    def send(obj):
        control.send(json.dumps(obj).encode())

    while True:
        ready, _, _ = select.select([control, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if slots is not None:
                    slots.release(pid)
                if pid in workers:
                    workers.discard(pid)
                    send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
            for pid in _own_children():        # not a worker: left behind by an ended one
                if pid not in workers:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if control in ready:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
            if not message:
                if slots is not None:          # nothing its workers' uids left runs on
                    slots.release_all()
                os._exit(0)
            request = json.loads(message)
            plan = request["limits"].pop("sandbox", None)
            uid = lock = None
            if slots is not None and plan is not None:
                try:
                    uid, lock = slots.take()
                except OSError as exc:
                    plan = {"error": str(exc)}
            pid = os.fork()
            if pid == 0:
                try:
                    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))   # ends with the server
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    control.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    os.setpgid(0, 0)            # its own group: the checker kills it whole
                    os.dup2(fds[2], 1)
                    os.dup2(fds[3], 2)
                    os.close(fds[2])
                    os.close(fds[3])
                    if slots is not None:
                        slots.close_others()
                    if plan is None:
                        os.chdir(request["cwd"])
                    _prctl(PR_SET_CHILD_SUBREAPER, 1)   # its descendants stay below it
                    try:                        # before any user code: else none runs
                        _join_cgroup(request["limits"])     # as root, before the uid drop
                        if plan is not None and "error" in plan:
                            raise OSError(plan["error"])
                        sandbox.enter(mechanism, plan, request["env"], uid)
                    except BaseException as exc:
                        os.write(2, f"gradcheck: the worker's sandbox ({mechanism}) could "
                                    f"not be made: {exc}\n".encode())
                        os._exit(71)
                    main([str(fds[0]), str(fds[1]), json.dumps(request["limits"])])
                finally:
                    os._exit(70)
            try:
                os.setpgid(pid, pid)            # (also here: no window where it has none)
            except OSError:
                pass
            workers.add(pid)
            for fd in fds:
                os.close(fd)
            if lock is not None:
                slots.hold(pid, uid, lock)
            send({"pid": pid, "sandbox": mechanism, "pidns": sandbox.pid_namespace()})


if __name__ == "__main__":
    main(sys.argv[1:])
