"""Red-team implementations for tests/test_redteam_sandbox.py: each is WRONG (dU 1% off)
and tries one way out of its worker. Whatever it manages is printed as a line
``ESCAPED: what`` on its stdout, which the check keeps (report.output): the test asserts
there is none, and that the verdict still fails.

The test hands a target through the environment (``GRADCHECK_TEST_TARGET``: a path or
a port), the one kind of variable the worker's scrubbed environment keeps.
"""
import ctypes
import os
import socket
import time

import reference

PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def _wrong(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    return loss, dict(grads, U=grads["U"] * 1.01), h_last


def _escaped(what):
    print(f"ESCAPED: {what}", flush=True)


def _parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _checker():
    """The checker's pid: handed over by the test (GRADCHECK_TEST_CHECKER: an attacker
    who knows it), else the fork server's parent (the worker's parent is the fork
    server); -1 when neither can be found (its parent is outside its PID namespace)."""
    if os.environ.get("GRADCHECK_TEST_CHECKER", "").isdigit():
        return int(os.environ["GRADCHECK_TEST_CHECKER"])
    try:
        return _parent_of(os.getppid())
    except (OSError, IndexError, ValueError):
        return -1


def _target():
    return os.environ.get("GRADCHECK_TEST_TARGET", "")


def reads_checker_memory(params, x, y, h0, **options):
    """Reads the checker's (and the fork server's) memory through /proc/PID/mem."""
    for pid in (_checker(), os.getppid()):
        try:
            with open(f"/proc/{pid}/maps") as f:
                start = int(next(line for line in f if " rw" in line).split("-")[0], 16)
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(start)
                if mem.read(4096):
                    _escaped(f"read the memory of process {pid}")
        except (OSError, StopIteration, ValueError):
            pass
    return _wrong(params, x, y, h0, **options)


def ptraces_checker(params, x, y, h0, **options):
    """Attaches to the checker and to the fork server with ptrace."""
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in (_checker(), os.getppid()):
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            _escaped(f"ptrace-attached to process {pid}")
            libc.ptrace(PTRACE_DETACH, pid, None, None)
    return _wrong(params, x, y, h0, **options)


def signals_checker(params, x, y, h0, **options):
    """Checks whether it may signal the checker (signal 0 delivers nothing)."""
    try:
        os.kill(_checker(), 0)
        _escaped("may signal the checker")
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def appends_to_target(params, x, y, h0, **options):
    """Appends a line to the file at the target (a gradcheck module imported later)."""
    try:
        with open(_target(), "a") as f:
            f.write("\n# rewritten by the code under test\n")
        _escaped(f"appended to {_target()}")
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def creates_target(params, x, y, h0, **options):
    """Creates the file at the target (a forged .pyc, a .pth in site-packages, a file in
    the compiled cache, the user's home, a shared temporary folder)."""
    try:
        folder = os.path.dirname(_target())
        os.makedirs(folder, exist_ok=True)
        with open(_target(), "w") as f:
            f.write("# written by the code under test\n")
        _escaped(f"created {_target()}")
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def connects(params, x, y, h0, **options):
    """Opens a TCP connection to the target port on the loopback address."""
    try:
        with socket.create_connection(("127.0.0.1", int(_target())), timeout=2) as s:
            s.sendall(b"ESCAPED")
        _escaped("reached the network")
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def fork_bomb(params, x, y, h0, **options):
    """Forks up to 300 sleeping children; says how many it got."""
    made = 0
    for _ in range(300):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    print(f"forked {made}", flush=True)
    return _wrong(params, x, y, h0, **options)


def reads_secrets(params, x, y, h0, **options):
    """Looks for the checker's secrets in its environment and in the checker's."""
    if any("redteam-secret" in v for v in os.environ.values()):
        _escaped("found a secret in its environment")
    try:
        with open(f"/proc/{_checker()}/environ", "rb") as f:
            if b"redteam-secret" in f.read():
                _escaped("read the checker's environment")
    except OSError:
        pass
    return _wrong(params, x, y, h0, **options)


def leaves_a_daemon(params, x, y, h0, **options):
    """Double-forks a daemon in a session of its own (no process group or parent of the
    worker's reaches it) that names itself GRADCHECK_TEST_NAME (so the test finds it from
    outside a PID namespace, where its own pid means nothing), writes its pid to the
    target folder and sleeps."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            name = os.environ.get("GRADCHECK_TEST_NAME", "daemon").encode()
            ctypes.CDLL(None).prctl(15, name)             # PR_SET_NAME: found from outside
            with open(os.path.join(_target(), "daemon.tmp"), "w") as f:
                f.write(str(os.getpid()))
            os.rename(os.path.join(_target(), "daemon.tmp"), os.path.join(_target(), "daemon"))
            time.sleep(120)
        os._exit(0)
    deadline = time.monotonic() + 10     # its pid is written before the check ends
    while not os.path.exists(os.path.join(_target(), "daemon")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _wrong(params, x, y, h0, **options)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def unmounts_its_view(params, x, y, h0, **options):
    """Unmounts every mount above the target's folder (the tmpfs that hides it), makes
    the file system writable again (mount_setattr clearing read-only, recursively and
    mount by mount), then reads the secret beside the target and creates the target."""
    libc = ctypes.CDLL(None, use_errno=True)
    folder = os.path.dirname(_target())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in reversed(points):                      # the last mounted first
        if folder == point or folder.startswith(point.rstrip("/") + "/"):
            libc.umount2(point.encode(), 2)             # MNT_DETACH
    writable = _MountAttr(0, 1, 0, 0)                   # clear MOUNT_ATTR_RDONLY
    for point, flags in [("/", 0x8000)] + [(p, 0) for p in points]:
        libc.syscall(442, -100, point.encode(), flags, ctypes.byref(writable), 32)
    try:
        with open(os.path.join(folder, "secret")) as f:
            _escaped(f"read a hidden file: {f.read()}")
    except OSError:
        pass
    return creates_target(params, x, y, h0, **options)
