"""Hostile implementations that attack the checker's protocol and the worker's limits.

Each is written the way code meant to cheat would be: it finds what it needs at run time
(the worker's frames, its descriptors, its parent) rather than relying on a particular
internal name where it can. Where an attack returns numbers, they are the reference's
with dU 1% off (``_wrong``) or the reference's loss and h_last alone: a checker that is
not fooled fails every one of them.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np

import reference


def _wrong(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["U"] = grads["U"] * 1.01
    return loss, grads, h_last


def _worker_local(name):
    """A local variable of the worker's frames that called this code (its descriptors)."""
    frame = sys._getframe(1)
    while frame is not None:
        if name in frame.f_locals:
            return frame.f_locals[name]
        frame = frame.f_back
    raise LookupError(name)


def _worker_module(attribute):
    """A module the worker's frames hold (as a local or a global) that has ``attribute``:
    found even where the worker took its modules out of sys.modules."""
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
            if type(value) is type(sys) and hasattr(value, attribute):
                return value
        frame = frame.f_back
    raise LookupError(attribute)


def _wire():
    return _worker_module("MAX_HEADER")


def _forge(arrays, header=None):
    """Writes an answer in the wire format straight into the answer pipe."""
    message = _wire().encode({"problems": []} if header is None else header, list(arrays.items()))
    fd = _worker_local("fd_out")
    view = memoryview(message)
    while view:
        view = view[os.write(fd, view):]


def _forward(params, x, y, h0, **options):
    loss, _, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    return {"loss": np.array(float(loss)), "h_last": np.asarray(h_last, np.float64)}


# ------------------------------------------------------------------ 1. what is compared

def claims_no_grads(params, x, y, h0, **options):
    """Patches the worker's conversion so that its answer says: no gradients, no problem;
    the loss and h_last are right."""
    right = _forward(params, x, y, h0, **options)
    _worker_module("convert_return").convert_return = lambda out: (dict(right), [], False)
    return _wrong(params, x, y, h0, **options)


def loss_alone(params, x, y, h0, **options):
    """Writes an answer carrying the right loss alone to the answer pipe, then hangs
    until it is killed (its real answer never comes)."""
    _forge({"loss": _forward(params, x, y, h0, **options)["loss"]})
    while True:
        time.sleep(1)


def forward_alone(params, x, y, h0, **options):
    """Writes an answer carrying the right loss and h_last (no gradient) to the answer
    pipe, then exits with status 0."""
    _forge(_forward(params, x, y, h0, **options))
    os._exit(0)


def grads_alone(params, x, y, h0, **options):
    """Writes an answer with every right gradient but no loss and no h_last."""
    _, grads, _ = reference.loss_and_grads(params, x, y, h0, **options)
    _forge({n: np.asarray(g, np.float64) for n, g in grads.items()})
    while True:
        time.sleep(1)


def declines_by_forgery(params, x, y, h0, **options):
    """Answers every call with a forged 'raised NotImplementedError' (a declined
    configuration), hoping every test of a battery is skipped and the run passes."""
    _forge({}, {"problems": [["exception", "raised NotImplementedError: not this one"]]})
    while True:
        time.sleep(1)


def declines_everything(params, x, y, h0, **options):
    """Honestly declines every configuration."""
    raise NotImplementedError("nothing is supported")


# ------------------------------------------------------------------ 4. waits and answers

def closes_answer_pipe_and_stays(params, x, y, h0, **options):
    """Closes its end of the answer pipe (the checker reads end-of-file) and stays alive."""
    os.close(_worker_local("fd_out"))
    while True:
        time.sleep(1)


def stops_itself(params, x, y, h0, **options):
    """SIGSTOP to itself: a stopped process uses no CPU time."""
    os.kill(os.getpid(), signal.SIGSTOP)
    return _wrong(params, x, y, h0, **options)


def _parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _checker_pid():
    """The checker: the pid the test hands over (GRADCHECK_TEST_CHECKER: the worst case,
    an attacker who knows it), else the parent of the fork server that forked this
    worker; -1 when neither can be found (in a PID namespace of its own, where its
    parent is outside and 0)."""
    if os.environ.get("GRADCHECK_TEST_CHECKER", "").isdigit():
        return int(os.environ["GRADCHECK_TEST_CHECKER"])
    try:
        return _parent_of(os.getppid())
    except (OSError, IndexError, ValueError):
        return -1


def _others():
    """Every pid it might signal besides its own: its parent, the checker's, every pid
    /proc lists, and a scan of the pids below 2**17 that answer signal 0."""
    found = {os.getppid(), _checker_pid()}
    found.update(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in range(2, 1 << 17):
        try:
            os.kill(pid, 0)
            found.add(pid)
        except OSError:
            pass
    return sorted(p for p in found if p > 0 and p != os.getpid())


def _signals_everyone(number):
    """Sends signal ``number`` to its parent, the checker (its pid from the environment,
    /proc or a scan of the pids), every process it can find, and then every process it
    may signal (kill(-1))."""
    for pid in _others():
        try:
            os.kill(pid, number)
        except OSError:
            pass
    try:
        os.kill(-1, number)              # everyone it may signal but itself
    except OSError:
        pass


def terminates_everyone(params, x, y, h0, **options):
    """SIGTERMs every process it can find (_signals_everyone); returns a wrong dU."""
    _signals_everyone(signal.SIGTERM)
    return _wrong(params, x, y, h0, **options)


def kills_everyone(params, x, y, h0, **options):
    """As terminates_everyone, with SIGKILL: nothing can catch it."""
    _signals_everyone(signal.SIGKILL)
    return _wrong(params, x, y, h0, **options)


def stops_the_checker(params, x, y, h0, **options):
    """SIGSTOPs the checker (and the fork server), then returns a wrong dU."""
    for pid in (_checker_pid(), os.getppid()):
        try:
            if pid > 0:
                os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
    return _wrong(params, x, y, h0, **options)


def terminates_the_checker(params, x, y, h0, **options):
    """SIGTERMs the checker, then returns a wrong dU."""
    try:
        os.kill(_checker_pid(), signal.SIGTERM)
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def kills_the_fork_server(params, x, y, h0, **options):
    """SIGKILLs its parent (the fork server that forked it; 0, not visible, in a PID
    namespace of its own), then returns a wrong dU."""
    if os.getppid() > 0:
        os.kill(os.getppid(), signal.SIGKILL)
    return _wrong(params, x, y, h0, **options)


def stops_the_fork_server(params, x, y, h0, **options):
    """SIGSTOPs its parent (the fork server that forked it), then returns a wrong dU."""
    if os.getppid() > 0:
        os.kill(os.getppid(), signal.SIGSTOP)
    return _wrong(params, x, y, h0, **options)


def _header_forger(head):
    """An implementation that writes a message with this raw header (and no payload)."""
    def forged(params, x, y, h0, **options):
        fd = _worker_local("fd_out")
        os.write(fd, len(head).to_bytes(4, "little") + (0).to_bytes(8, "little") + head)
        while True:
            time.sleep(1)
    return forged


deep_nesting = _header_forger(b'{"arrays": [], "problems": ' + b"[" * 100000 + b"]" * 100000
                              + b"}")
list_as_dtype = _header_forger(b'{"arrays": [["U", ["float64"], [3, 3]]], "problems": []}')
huge_shape = _header_forger(b'{"arrays": [["U", "float64", [' + b"9" * 5000
                            + b', 99999999999999999999]]], "problems": []}')
huge_number = _header_forger(b'{"arrays": [], "problems": [], "x": 1e99999999}')
not_utf8 = _header_forger(b'{"arrays": [], "problems": [["nan", "\xff\xfe"]]}')
problem_as_dict = _header_forger(b'{"arrays": [], "problems": [{"name": "nan"}]}')
header_is_a_list = _header_forger(b'[1, 2, 3]')
deep_problem = _header_forger(b'{"arrays": [], "problems": [["nan", ' + b"[" * 5000
                              + b"]" * 5000 + b"]]}")


def lowers_the_file_limit(params, x, y, h0, **options):
    """Lowers RLIMIT_NOFILE of itself and (prlimit) of the checker, opens files until
    the table is full, then returns a wrong dU."""
    import resource
    for pid in (_checker_pid(), os.getppid()):
        try:
            if pid > 0:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (8, 8))
        except (OSError, ValueError, AttributeError):
            pass
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


# ------------------------------------------------------------------ survivors

_DAEMON = """
import ctypes, os, sys, time
target, pidfile, name = sys.argv[1], sys.argv[2], sys.argv[3]
ctypes.CDLL(None).prctl(15, name.encode())       # PR_SET_NAME: found by it from outside
with open(pidfile, "a") as f:
    f.write(f"{os.getpid()} ")
deadline = time.time() + 30
while time.time() < deadline:
    time.sleep(0.05)
    try:
        if os.path.exists(target) and os.path.getsize(target) > 0:
            with open(target, "w") as f:
                f.write('{"passed": true}')
    except OSError:
        pass
"""


def _spawn_survivor(how):
    """Starts a process meant to outlive the check: ``setsid`` (a new session) or
    ``double_fork`` (a grandchild whose parent exits); it rewrites the file named by
    GRADCHECK_TEST_TARGET whenever it finds it, for 30 s."""
    argv = [sys.executable, "-c", _DAEMON, os.environ.get("GRADCHECK_TEST_TARGET", "/nonexistent"),
            os.environ["GRADCHECK_TEST_PIDFILE"], os.environ.get("GRADCHECK_TEST_NAME", "survivor")]
    if how == "setsid":
        subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, argv)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _wait_for_survivor():
    path = os.environ["GRADCHECK_TEST_PIDFILE"]
    deadline = time.time() + 10
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return
        time.sleep(0.02)


def setsid_survivor(params, x, y, h0, **options):
    _spawn_survivor("setsid")
    _wait_for_survivor()
    return _wrong(params, x, y, h0, **options)


def double_fork_survivor(params, x, y, h0, **options):
    _spawn_survivor("double_fork")
    _wait_for_survivor()
    return _wrong(params, x, y, h0, **options)


def double_fork_then_exit(params, x, y, h0, **options):
    """Leaves a double-forked daemon behind and exits at once (the worker is gone
    before the checker looks for its descendants)."""
    _spawn_survivor("double_fork")
    _wait_for_survivor()
    os._exit(0)


# ------------------------------------------------------------------ 5. memory

def memfd_hog(params, x, y, h0, **options):
    """Fills anonymous shared memory (memfd: 32 MiB files, mapped and touched), which
    RLIMIT_DATA does not count."""
    import mmap
    step = 1 << 25                                     # 32 MiB, under any file-size limit
    maps = []
    while True:
        fd = os.memfd_create("hog")
        os.ftruncate(fd, step)
        m = mmap.mmap(fd, step)
        np.frombuffer(m, np.uint8)[::4096] = 1
        maps.append((fd, m))
        time.sleep(0.01)


def memfd_closed_hog(params, x, y, h0, **options):
    """Fills memfd pages through write() and never maps them: they are charged to no
    process's resident size."""
    fds = []
    chunk = b"\1" * (1 << 24)                           # 16 MiB
    while True:
        fd = os.memfd_create("hog")
        for _ in range(4):
            os.write(fd, chunk)
        fds.append(fd)
        time.sleep(0.005)


def fills_dev_shm(params, x, y, h0, **options):
    """Writes 16 MiB files into /dev/shm (tmpfs: memory that no process holds once they
    are closed), or where it may not, into its temporary folder, until a write fails."""
    import tempfile
    chunk = b"\1" * (1 << 24)
    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    for i in range(1 << 16):
        with open(os.path.join(folder, f"redteam-{os.getpid()}-{i}"), "wb") as f:
            f.write(chunk)
    return _wrong(params, x, y, h0, **options)


def children_hog(params, x, y, h0, **options):
    """Starts children that each take a share of memory under every per-process limit."""
    code = ("import numpy as np, time\n"
            "a = np.ones(1 << 25)\n"                      # 256 MiB each
            "time.sleep(60)\n")
    for _ in range(8):
        subprocess.Popen([sys.executable, "-c", code])
    time.sleep(60)
    return _wrong(params, x, y, h0, **options)


# ------------------------------------------------------------------ 6. output

def prints_escapes(params, x, y, h0, **options):
    """Prints terminal control sequences (clear screen, set title, cursor moves) and
    then returns the right numbers."""
    sys.stdout.write("\x1b[2J\x1b[H\x1b]0;owned\x07PASSED\r\x1b[1A\x08\x9b31m\n")
    sys.stdout.flush()
    sys.stderr.write("\x1b[31mred\x1b[0m\x00\x7f\n")
    sys.stderr.flush()
    return reference.loss_and_grads(params, x, y, h0, **options)
