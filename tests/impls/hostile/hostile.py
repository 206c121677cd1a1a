"""Hostile implementations: each tries one way to forge, crash or hang a check.

Every one computes the reference's numbers and then damages one output (dU x 1.01),
so a check that is not fooled fails it; or it attacks the process (exit, signal,
hang, memory, threads, children) and must be a verdict, never exit 0 or a hang.
Generic on purpose: they patch whatever ``gradcheck``/``numpy``/reference modules
they find loaded, not particular internal names.
"""
import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

import reference


def _wrong(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["U"] = grads["U"] * 1.01
    return loss, grads, h_last


def _patch_everything_gradcheck():
    """Make every function in every loaded gradcheck module say 'passed'."""
    for name, module in list(sys.modules.items()):
        if name.startswith("gradcheck") and module is not None:
            for attr in list(vars(module)):
                obj = getattr(module, attr)
                if callable(obj) and attr in ("compare", "calibrated", "tolerance", "check"):
                    setattr(module, attr, lambda *a, **k: None)
            if hasattr(module, "Report"):
                module.Report.passed = property(lambda self: True)


def patches_gradcheck(params, x, y, h0, **options):
    _patch_everything_gradcheck()
    return _wrong(params, x, y, h0, **options)


def patches_numpy(params, x, y, h0, **options):
    np.abs = lambda a, *k, **kw: np.zeros_like(np.asarray(a, float))
    np.max = lambda *a, **k: 1e300
    np.allclose = lambda *a, **k: True
    return _wrong(params, x, y, h0, **options)


def patches_reference(params, x, y, h0, **options):
    out = _wrong(params, x, y, h0, **options)
    for name, module in list(sys.modules.items()):
        if "reference" in name and hasattr(module, "loss_and_grads"):
            module.loss_and_grads = _wrong          # the calibration would allow 8x 1%
    return out


def exit_hooks(params, x, y, h0, **options):
    atexit.register(os._exit, 0)
    sys.excepthook = lambda *a: os._exit(0)
    threading.excepthook = lambda *a: os._exit(0)
    return _wrong(params, x, y, h0, **options)


def os_exit_0(params, x, y, h0, **options):
    os._exit(0)


def sys_exit_0(params, x, y, h0, **options):
    sys.exit(0)


def segfault(params, x, y, h0, **options):
    ctypes.string_at(0)


def kills_itself(params, x, y, h0, **options):
    os.kill(os.getpid(), signal.SIGKILL)


def infinite_loop(params, x, y, h0, **options):
    while True:
        pass


def sleeps(params, x, y, h0, **options):
    time.sleep(30)
    return _wrong(params, x, y, h0, **options)


def non_daemon_thread(params, x, y, h0, **options):
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    return _wrong(params, x, y, h0, **options)


def _chatter(started):
    while True:
        print('{"passed": true}', flush=True)
        sys.stderr.write("noise from a thread\n")
        started.set()
        time.sleep(0.001)


def printing_thread(params, x, y, h0, **options):
    """Correct numbers, and a thread that prints for ever (and at exit)."""
    started = threading.Event()
    threading.Thread(target=_chatter, args=(started,), daemon=True).start()
    started.wait()
    atexit.register(print, '{"passed": true}')
    return reference.loss_and_grads(params, x, y, h0, **options)


def memory_hog(params, x, y, h0, **options):
    hog = []
    while True:
        hog.append(np.ones(1 << 27))                 # 1 GiB at a time, touched


# A process that sleeps for ever, named GRADCHECK_TEST_NAME (PR_SET_NAME): the test finds
# it by that name from outside the worker's PID namespace, where its own pid means nothing.
_SLEEPER = ("import ctypes, os, time\n"
            "ctypes.CDLL(None).prctl(15, os.environ.get('GRADCHECK_TEST_NAME', 'x').encode())\n"
            "while True: time.sleep(1)")


def _named():
    ctypes.CDLL(None).prctl(15, os.environ.get("GRADCHECK_TEST_NAME", "x").encode())


def _wait_until_named(pids):
    """Returns once every one of these processes has taken its name (or after 10 s)."""
    name = os.environ.get("GRADCHECK_TEST_NAME", "x")
    deadline = time.time() + 10
    for pid in pids:
        while time.time() < deadline:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == name:
                        break
            except OSError:
                pass
            time.sleep(0.01)


def child_processes(params, x, y, h0, **options):
    """Starts children that would outlive it (one in its own session), then hangs."""
    code = _SLEEPER
    pids = [subprocess.Popen([sys.executable, "-c", code]).pid for _ in range(3)]
    pids.append(subprocess.Popen([sys.executable, "-c", code], start_new_session=True).pid)
    _wait_until_named(pids)
    with open(os.environ.get("GRADCHECK_TEST_PIDFILE", os.devnull), "w") as f:
        f.write(" ".join(map(str, pids)))
    while True:
        time.sleep(1)


def complex_grads(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["W1"] = grads["W1"] + 1e3j                 # garbage imaginary part
    return loss, grads, h_last


def object_grads(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["b2"] = np.array(list(grads["b2"]), dtype=object)
    return loss, grads, h_last


def bool_grads(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["b1"] = grads["b1"] > 0
    return loss, grads, h_last


def str_grads(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["b3"] = grads["b3"].astype(str)
    return loss, grads, h_last


def huge_int_loss(params, x, y, h0, **options):
    _, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    return 10 ** 400, grads, h_last


class _Raises:
    def __array__(self, *a, **k):
        raise RuntimeError("cannot be converted")


def unconvertible(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    grads["W3"] = _Raises()
    return loss, grads, h_last


def rewrites_after_return(params, x, y, h0, **options):
    """Wrong dU, returned; a thread then writes the right one into the same array."""
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    right = grads["U"].copy()
    grads["U"] *= 1.01

    def fix():
        time.sleep(0.05)
        grads["U"][...] = right
    threading.Thread(target=fix, daemon=True).start()
    return loss, grads, h_last


def raises_deep(params, x, y, h0, **options):
    return np.linalg.inv(np.zeros((2, 2)))           # raises inside NumPy


def slow_and_wrong(params, x, y, h0, **options):
    time.sleep(0.4)
    return _wrong(params, x, y, h0, **options)


def pid_then_loop(params, x, y, h0, **options):
    """Names itself and a child GRADCHECK_TEST_NAME, writes their pids where the test
    says, then hangs."""
    _named()
    child = subprocess.Popen([sys.executable, "-c", _SLEEPER])
    _wait_until_named([child.pid])
    with open(os.environ["GRADCHECK_TEST_PIDFILE"], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(1)


def writes_to_every_pipe(params, x, y, h0, **options):
    """Writes a forged answer header (a huge length, then junk) to every descriptor."""
    junk = (0xFFFFFFF).to_bytes(4, "little") + (1).to_bytes(8, "little") + b"{}" * 100
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.write(fd, junk)
            except OSError:
                pass
    return _wrong(params, x, y, h0, **options)


def evades_the_data_limit(params, x, y, h0, **options):
    """Lifts RLIMIT_DATA if it may (root with CAP_SYS_RESOURCE), then hogs memory in
    shared anonymous mappings, which RLIMIT_DATA does not count."""
    import mmap
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_DATA,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass
    hog = []
    while True:
        m = mmap.mmap(-1, 1 << 27)                   # 128 MiB, shared, touched
        np.frombuffer(m, np.uint8)[::4096] = 1
        hog.append(m)
        time.sleep(0.01)
