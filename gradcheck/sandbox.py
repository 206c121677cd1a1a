"""What the code under test can see, read and write: the worker's view of the machine.

The checker's side (``View``) gives each worker a folder of its own: ``src/``, a private
copy of the code under test (regular files only: a symlink, FIFO, device or oversized
file is refused), and ``tmp/``, its temporary folder; and the list of places the worker
must not see (gradcheck's own package and ``reference/``, the compiled cache, the folder
the code was copied from, which for ``grade`` is the class's folder, and the user's home).

The worker's side (``enter``), in the fork server's child after ``fork`` and before any
user code is loaded, applies one mechanism, the strongest this platform and privilege
allow (``probe`` finds it once, in the fork server, by trying it):

- ``namespaces+uid`` (the checker runs as root): a mount, network and IPC namespace of its
  own; the whole file system read-only; the hidden places replaced by empty folders
  (where Python itself lives inside one, that part is shown again, read-only); ``tmp/`` a
  size-capped tmpfs; then the worker drops to an unprivileged uid and gid of its own (one
  per concurrent worker, from ``UID_RANGE``), with no supplementary groups, and a
  process-count limit.
- ``uid`` (root, where namespaces cannot be made, as in a container without
  CAP_SYS_ADMIN): the same uid drop and limits; file permissions are the only wall.
- ``namespaces`` (an ordinary user whose kernel allows unprivileged user namespaces):
  user, mount, network and IPC namespaces, the same read-only view; the worker keeps
  the user's uid, so the checker and the fork server are made non-dumpable (their
  memory cannot be read through ``/proc``) while a worker lives.
- ``same-user`` (neither): only the non-dumpable checker; the code under test could
  write the user's files, and the report says so.

In every mode: an environment scrubbed to ``KEPT_ENV`` (no tokens from CI or the user's
shell), the private ``tmp/`` as ``HOME`` and ``TMPDIR``, limits on open files and file
size. Nothing here decides a verdict: it only narrows what the worker can reach.
"""
import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["MECHANISMS", "STRONG", "HIDING", "GUARANTEES", "UID_RANGE", "KEPT_ENV", "View",
           "CopyRefused", "probe", "enter", "describe", "preload", "checker_guard",
           "cache_may_be_written", "private_copy", "checker_folders", "Slots", "REQUIRED",
           "WARNING", "expected_mechanism", "note_mechanism", "pid_namespace",
           "PID_GUARANTEE", "space_note"]

# What a PID namespace of its own gives the worker (both namespace mechanisms, where the
# kernel lets the fork server's probe make one and mount its /proc), and what is said
# where it could not be made.
PID_GUARANTEE = ("own PID namespace: sees and signals no process outside it, and every "
                 "process it starts ends with it")
NO_PID_NAMESPACE = "no PID namespace: same uid: can signal the checker"
# The mechanisms, strongest first, and what each guarantees (the JSON's "guarantees",
# the README's table).
GUARANTEES = {
    "namespaces+uid": ["own uid and gid, no supplementary groups",
                       "file system read-only; checker's package, cache, home and the "
                       "source folder hidden", "no network", "private size-capped tmp",
                       "process-count limit", "cannot read or signal the checker",
                       PID_GUARANTEE],
    "uid": ["own uid and gid, no supplementary groups", "cannot write the user's files",
            "cannot read or signal the checker", "process-count limit",
            "can read world-readable files (the checker's source among them)",
            "network reachable"],
    "namespaces": ["file system read-only; checker's package, cache, home and the "
                   "source folder hidden", "no network", "private size-capped tmp",
                   "process-count limit", "checker's memory unreadable (non-dumpable)",
                   PID_GUARANTEE],
    "same-user": ["checker's memory unreadable (non-dumpable)",
                  "can write the user's files", "network reachable"],
}
MECHANISMS = tuple(GUARANTEES)
# What --require-isolation accepts: the worker can neither write the user's files nor
# read the checker's memory, by the kernel's own checks.
STRONG = ("namespaces+uid", "uid", "namespaces")
# The mechanisms whose worker sees none of the checker's files, home or class folder.
HIDING = ("namespaces+uid", "namespaces")
REQUIRED = ("this platform gives the worker neither its own uid (run "
            "as root) nor user namespaces (kernel.unprivileged_userns_clone, "
            "user.max_user_namespaces); the code under test would run as your own user")
WARNING = ("the code under test ran as your own user without namespaces: it could have "
           "written your files (this platform allows neither a user switch nor namespaces)")

# Unprivileged uids/gids for workers (root only): one per concurrent worker, like the
# judges' boxes. No account needs to exist. $GRADCHECK_SANDBOX_UIDS="FIRST-LAST" moves it.
UID_RANGE = (61000, 61063)
# Processes (and threads) a worker's uid may have at once: NumPy's BLAS threads fit, a
# fork bomb does not.
NPROC = 64
NOFILE = 256
# The private tmp's size (a tmpfs where namespaces exist) and the largest file a worker
# may write anywhere.
TMP_BYTES = 64 << 20
# The private copy: the largest file, the total, the number of entries. A submission is
# code; a folder beyond these is not one.
COPY_FILE_BYTES = 8 << 20
COPY_TOTAL_BYTES = 32 << 20
COPY_ENTRIES = 2000
# The checker's environment variable naming a folder the worker may write (at the same
# path), for tests and debugging: the hostile test implementations report their pids there.
SHARE_ENV = "GRADCHECK_SANDBOX_SHARE"
# The worker's environment: these are kept (locale, PATH, thread counts, the variables
# of gradcheck's own tests, GRADCHECK_TEST_*); all else goes.
KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "PYTHONHASHSEED", "PYTHONIOENCODING")

_ROOT = Path(__file__).resolve().parent.parent          # holds gradcheck/ and reference/

# Linux constants (include/uapi/linux/sched.h, mount.h, fcntl.h).
CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442           # the same number on x86_64 and aarch64 (added in 5.12)
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags):
    _check(_c().unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, fstype, flags, data=None):
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(_c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                      enc(data)), f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount_setattr(path, flags, attr_set, attr_clr):
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_c().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                        os.fsencode(path), ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {path}")


def _read_only_everywhere():
    """Every mount of this (private) mount namespace read-only, in one call."""
    _mount_setattr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0)


def _uid_range():
    text = os.environ.get("GRADCHECK_SANDBOX_UIDS", "")
    try:
        first, last = (int(v) for v in text.split("-"))
        if 0 < first <= last:
            return first, last
    except ValueError:
        pass
    return UID_RANGE


# ---------------------------------------------------------------------- the checker's side

class CopyRefused(ValueError):
    """The code under test cannot be copied: ``reason`` names the entry and why."""


def private_copy(source, dest, whole_folder, only=None, python_only=False):
    """Copy the code under test into ``dest``: the folder ``source`` (its whole tree,
    ``whole_folder``; with ``python_only``, a package root's: its ``.py`` files, without
    hidden folders or ``__pycache__``), the file ``only`` in it, or the ``.py`` files
    directly in ``source`` (a file's folder when checking one file: its own modules).
    Only regular files cross; a symlink,
    FIFO, socket or device named as code, or a file or tree past the caps, raises
    CopyRefused. Files are read through a descriptor opened without following links."""
    total, entries = 0, 0
    for folder, dirs, files in os.walk(source):
        rel = os.path.relpath(folder, source)
        target = os.path.join(dest, rel) if rel != "." else dest
        os.makedirs(target, exist_ok=True)
        if not whole_folder:
            dirs[:] = []
            files = [f for f in files if f.endswith(".py")] if only is None else [only]
        elif python_only:
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            files = [f for f in files if f.endswith(".py")]
        for name in sorted(dirs):
            if os.path.islink(os.path.join(folder, name)):
                raise CopyRefused(f"{os.path.join(rel, name)} is a symbolic link")
        for name in sorted(files):
            entries += 1
            if entries > COPY_ENTRIES:
                raise CopyRefused(f"more than {COPY_ENTRIES} files")
            shown = os.path.normpath(os.path.join(rel, name))
            try:
                fd = os.open(os.path.join(folder, name),
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                why = ("a symbolic link" if exc.errno == errno.ELOOP
                       else f"unreadable ({exc.strerror})")
                raise CopyRefused(f"{shown} is {why}") from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise CopyRefused(f"{shown} is not a regular file (a FIFO, socket or "
                                      f"device)")
                if info.st_size > COPY_FILE_BYTES:
                    raise CopyRefused(f"{shown} is larger than {COPY_FILE_BYTES >> 20} MiB")
                total += info.st_size
                if total > COPY_TOTAL_BYTES:
                    raise CopyRefused(f"the files add up to more than "
                                      f"{COPY_TOTAL_BYTES >> 20} MiB")
                with os.fdopen(os.dup(fd), "rb") as f:
                    data = f.read(COPY_FILE_BYTES + 1)
            finally:
                os.close(fd)
            with open(os.path.join(target, name), "wb") as out:
                out.write(data)


def _spec_file(spec):
    """The file named by a ``FILE.py[:FUNC]`` spec (None for ``MODULE:FUNC``)."""
    where = spec
    if not (where.endswith(".py") or os.sep in where) or not os.path.isfile(where):
        where = spec.rpartition(":")[0]
        if not where or not (where.endswith(".py") or os.sep in where):
            return None
    return where if os.path.isfile(where) else None


# The shared memory folder: a tmpfs, so a worker's folder is made and removed without
# touching a disk (measured: removing a small copy from the disk cost milliseconds).
SHM = "/dev/shm"


def _workers_folder():
    """Where workers' folders are made: SHM when it is a sticky folder open to all (as
    Linux has it), else the temporary folder."""
    try:
        info = os.stat(SHM)
    except OSError:
        return None
    if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX and os.access(SHM, os.W_OK):
        return SHM
    return None


def checker_folders():
    """The folders of gradcheck's own package and of ``reference/``, by top-level name
    (grade hides those its honesty rule forbids)."""
    return {"gradcheck": str(_ROOT / "gradcheck"), "reference": str(_ROOT / "reference")}


class View:
    """One worker's folder and the plan its child applies (``plan``: JSON data).

    ``request`` is the worker's load request; ``tree``: copy this whole folder (grade, a
    submission given as a folder); ``alone``: copy the spec's file alone (grade, a
    submission given as a file, whose neighbours are classmates); by default the ``.py``
    files beside the spec's file (its own modules). A request's ``"path"`` (a package's
    root) has its ``.py`` tree copied into a folder of its own in the copy. ``hide``: more
    folders to hide (grade: the class's folder, the checker's package). ``request`` comes
    back with its spec and path pointing into the copy. CopyRefused when the code cannot
    be copied."""

    def __init__(self, request, tree=None, alone=False, hide=()):
        self.dir = tempfile.mkdtemp(prefix="gradcheck-worker-", dir=_workers_folder())
        try:
            self.request = dict(request)
            self.copied = []                 # (a copy's folder, the folder copied)
            src = os.path.join(self.dir, "src")
            tmp = os.path.join(self.dir, "tmp")
            os.mkdir(tmp, 0o700)
            hidden = []
            hidden += [os.path.abspath(h) for h in hide]
            spec = self.request.get("spec")
            file = _spec_file(spec) if isinstance(spec, str) else None
            cwd = os.getcwd()
            if tree is not None or file is not None:
                source = os.path.abspath(tree if tree is not None else os.path.dirname(file)
                                         or ".")
                private_copy(source, src, whole_folder=tree is not None,
                             only=os.path.basename(file) if alone and tree is None else None)
                if file is not None:
                    inside = os.path.join(src, os.path.relpath(os.path.abspath(file), source))
                    self.request["spec"] = inside + spec[len(file):]
                hidden.append(source)
                self.copied.append((src, source))
                cwd = src
            else:
                os.mkdir(src, 0o700)
            root = self.request.get("path")
            if isinstance(root, str):        # its own package's root, copied into the copy
                inside = tempfile.mkdtemp(prefix=".path-", dir=src)
                try:
                    private_copy(os.path.abspath(root), inside, whole_folder=True,
                                 python_only=True)
                except CopyRefused as exc:
                    raise CopyRefused(f"in --path {root}: {exc}") from None
                hidden.append(os.path.abspath(root))
                self.copied.insert(0, (inside, os.path.abspath(root)))
                self.request["path"] = inside
                cwd = src                    # MODULE:FUNC is found in the copy, not in cwd
            from . import exe_cache
            for d in (exe_cache.cache_dir(), exe_cache.default_cache_dir()):
                if d is not None:
                    hidden.append(str(d))
            self.plan = {"dir": self.dir, "cwd": cwd, "hide": sorted(set(hidden)),
                         "expose": [] if cwd == src else [cwd],     # MODULE:FUNC's folder
                         "share": os.environ.get(SHARE_ENV) or None}
        except BaseException:
            self.remove()
            raise

    def original(self, text):
        """``text`` (a message from the worker) naming the copied files where they were."""
        for copy, source in self.copied:
            text = text.replace(copy, source)
        return text

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# Workers alive in this process, for checker_guard (non-dumpable while any lives).
_guard = {"count": 0, "saved": None}
_guard_lock = threading.Lock()


@contextlib.contextmanager
def checker_guard():
    """While the block runs (a worker lives), this process is non-dumpable when it is not
    root (then every mechanism leaves the worker the user's uid): its memory cannot be
    read through /proc/<pid>/mem nor ptraced by the worker. The previous setting comes
    back after the last worker (importing or calling the library leaves the user's
    process as it was)."""
    if os.geteuid() == 0 or not sys.platform.startswith("linux"):
        yield
        return
    with _guard_lock:
        if _guard["count"] == 0:
            _guard["saved"] = _c().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
            _c().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _guard["count"] += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard["count"] -= 1
            if _guard["count"] == 0 and _guard["saved"] in (1, 2):
                _c().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def cache_may_be_written(path, mechanism):
    """Whether a worker under ``mechanism`` could write (or replace) ``path``: always
    under ``same-user``; under the others, when the folder or a folder above it is
    writable by others (the worker's uid is another user's) and not sticky."""
    if mechanism == "same-user":
        return True
    if mechanism in ("namespaces", "namespaces+uid"):
        return False                     # the whole file system is read-only to it
    p = Path(path).absolute()
    me = os.geteuid()
    for folder in [p, *p.parents]:
        try:
            info = folder.stat()
        except OSError:
            continue                     # not made yet: its parent decides
        if info.st_uid not in (0, me):
            return True
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return True
    return False


_seen = {"mechanism": None}             # what a fork server of this process reported


def expected_mechanism():
    """The mechanism a worker of this process gets: what its fork server reported, else
    what the privilege and the kernel's settings promise (no process is started)."""
    if _seen["mechanism"] is not None:
        return _seen["mechanism"]
    if os.geteuid() == 0:
        return "namespaces+uid"
    settings = {"/proc/sys/user/max_user_namespaces": lambda v: int(v) > 0,
                "/proc/sys/kernel/unprivileged_userns_clone": lambda v: v != "0",
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": lambda v: v != "1"}
    for path, allows in settings.items():
        try:
            with open(path) as f:
                if not allows(f.read().strip()):
                    return "same-user"
        except (OSError, ValueError):
            if path.endswith("max_user_namespaces"):
                return "same-user"
    return "namespaces"


def note_mechanism(mechanism):
    """A worker of this process runs under ``mechanism`` (its fork server's word): where
    it keeps the user's uid unconfined, the compiled cache is off from now on and its
    key is dropped (an entry signed with a key that worker could read is never trusted)."""
    _seen["mechanism"] = mechanism
    if mechanism == "same-user":
        from . import exe_cache
        exe_cache.distrust()


def describe(mechanism, pid_namespace=True):
    """The JSON's ``"isolation"`` keys for the sandbox; ``pid_namespace``: whether the
    worker had its own (its fork server's word)."""
    said = list(GUARANTEES.get(mechanism, []))
    if not pid_namespace and PID_GUARANTEE in said:
        said[said.index(PID_GUARANTEE)] = (NO_PID_NAMESPACE if mechanism == "namespaces"
                                           else "no PID namespace")
    out = {"mechanism": mechanism, "guarantees": said}
    if mechanism == "same-user":
        out["warning"] = WARNING
    return out


# ---------------------------------------------------------------------- the worker's side

def preload():
    """Import, in the fork server, every module a worker needs before user code runs: a
    worker that drops to another user, or whose view hides gradcheck's package, cannot
    read them afterwards."""
    import importlib
    for name in ("gradcheck.untrusted", "gradcheck.wire", "gradcheck.adapters",
                 "gradcheck.grade.honesty", "gradcheck.model", "gradcheck.errors",
                 "importlib.util", "importlib.machinery", "traceback", "linecache",
                 "numpy.linalg", "numpy.random", "numpy.fft", "dataclasses", "functools",
                 "itertools", "collections", "math", "json", "typing"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from .model import CELL_MODULES, cell
    for name in CELL_MODULES:            # every cell's declaration (a worker may be asked)
        cell(name)


class Slots:
    """Which uid each concurrent worker gets (root only): a slot is held by an flock on
    a file in a folder only root can enter, from fork to the worker's end, so workers of
    two checkers running at once never share a uid."""

    def __init__(self):
        self.held = {}                                   # pid -> (slot, fd)
        self.next = None
        self.folder = os.path.join(tempfile.gettempdir(), f"gradcheck-slots-{os.geteuid()}")

    def take(self):
        import fcntl
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        info = os.lstat(self.folder)
        if info.st_uid != os.geteuid() or not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077:
            raise OSError(f"{self.folder} is not a private folder")
        first, last = _uid_range()
        count = last - first + 1
        # round robin from a random start: a uid just released (whose killed processes
        # the system may not have reaped yet, still counted against its process limit)
        # is the last to be taken again
        if self.next is None:
            self.next = secrets.randbelow(count)
        order = [first + (self.next + i) % count for i in range(count)]
        for uid in order:
            fd = os.open(os.path.join(self.folder, str(uid)),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.next = (uid - first + 1) % count
            return uid, fd
        raise OSError(f"every worker uid {first}-{last} is in use")

    def hold(self, pid, uid, fd):
        self.held[pid] = (uid, fd)

    def close_others(self):
        """In a new worker: let go of the other workers' slots (their locks' files)."""
        for _, fd in self.held.values():
            os.close(fd)
        self.held.clear()

    def release_all(self):
        """The fork server ends: release every slot as ``release`` does."""
        for pid in list(self.held):
            self.release(pid)

    def release(self, pid):
        """The worker ``pid`` has ended: end every process its uid still has (a daemon it
        double-forked, which no process group or parent reaches), then free its slot."""
        slot = self.held.pop(pid, None)
        if slot is not None:
            _end_all_of(slot[0])
            os.close(slot[1])


def _end_all_of(uid):
    """SIGKILL every process of ``uid`` (a worker's own uid), from a child that becomes it."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, 9)               # every process it may signal: that uid's, but itself
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


# Whether this process's workers get a PID namespace of their own (probe sets it, in the
# fork server, before any worker is forked).
_PID_NAMESPACE = {"on": False}


def pid_namespace():
    """Whether this fork server's workers get their own PID namespace (after probe)."""
    return _PID_NAMESPACE["on"]


def probe():
    """The strongest mechanism this process can give a worker: tried in throwaway
    children (the fork server calls it once, before it serves); with a PID namespace
    and its own /proc where the kernel allows both (``pid_namespace()``)."""
    root = os.geteuid() == 0
    if not sys.platform.startswith("linux"):
        return "uid" if root else "same-user"
    for pid_ns in (True, False):
        if _in_probe_child(root, pid_ns, _first_child_is_init if pid_ns else lambda: True):
            _PID_NAMESPACE["on"] = pid_ns
            if pid_ns:
                _probe_init(root)
            return "namespaces+uid" if root else "namespaces"
    return "uid" if root else "same-user"


def _in_probe_child(root, pid_ns, test):
    """Whether ``test()`` returns True in a throwaway child that made a worker's
    namespaces (with a PID namespace when ``pid_ns``: its children are in it) over a
    scratch folder; an exception there is False."""
    with tempfile.TemporaryDirectory(prefix="gradcheck-probe-") as d:
        os.mkdir(os.path.join(d, "tmp"))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _namespaces({"dir": d, "hide": [], "cwd": d}, root, pid=pid_ns)
                code = 0 if test() else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _first_child_is_init():
    """In a process that unshared a PID namespace: its first child is pid 1 there and
    can mount the namespace's own /proc."""
    child = os.fork()
    if child == 0:
        try:
            _fresh_proc()
        finally:
            os._exit(0 if os.getpid() == 1 else 1)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) == 0


# pid 1 of a worker's PID namespace, where these programs exist and serve (probe tries
# them): one that dies with its parent and sleeps, started by posix_spawn, which copies
# nothing of the parent (a fork copies the page tables of a process holding NumPy: the
# worker's start-up is one fork less). Else a fork of the parent (_split_off).
_INIT = {"argv": None}


def _init_argv():
    found = [shutil.which(name, path="/usr/bin:/bin") for name in ("setpriv", "sleep")]
    if None in found:
        return None
    return [found[0], "--pdeathsig", "KILL", "--", found[1], "infinity"]


def _spawn_init(argv):
    """Start ``argv`` (the namespace's init) with none of this process's descriptors."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
            fds.append(int(name))
        except OSError:                  # the listing's own, closed by now
            pass
    return os.posix_spawn(argv[0], argv, {},
                          file_actions=[(os.POSIX_SPAWN_CLOSE, fd) for fd in fds])


def _probe_init(root):
    """Whether _init_argv's program serves as a PID namespace's init here: spawned as
    pid 1, it is alive once a second process has started in the namespace as pid 2."""
    argv = _init_argv()
    if argv is None:
        return

    def serves():
        init = _spawn_init(argv)
        child = os.fork()
        if child == 0:
            os._exit(0 if os.getpid() == 2 else 1)
        _, status = os.waitpid(child, 0)
        alive = os.waitpid(init, os.WNOHANG) == (0, 0)
        os.kill(init, signal.SIGKILL)
        return alive and os.waitstatus_to_exitcode(status) == 0
    if _in_probe_child(root, True, serves):
        _INIT["argv"] = argv


def _fresh_proc():
    """Mount a /proc of this process's PID namespace over the system's: the processes
    outside it (the checker, the fork server, the user's others) are not listed."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)


def _split_off():
    """In a process that has unshared a PID namespace (its children are in it): start
    the namespace's init (pid 1, which only waits: when it ends, the kernel kills every
    process in the namespace; _INIT's program, else a fork) and fork the worker proper
    (pid 2), and return in the worker.
    This process stays outside, in no view of the worker's: it waits for the worker,
    then ends the namespace, and ends as the worker ended (its exit status, or killed
    by the same signal), which is what the checker reads. It never returns."""
    init = None
    if _INIT["argv"]:
        try:
            init = _spawn_init(_INIT["argv"])
        except OSError:
            init = None
    if init is None:
        init = os.fork()
    if init == 0:
        try:
            _c().prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
            os.closerange(0, 1 << 20)
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(number, signal.SIG_DFL)     # (unhandled: ignored, as init)
            while True:
                signal.pause()
        finally:
            os._exit(0)
    try:
        runner = os.fork()
    except BaseException:
        os.kill(init, 9)
        raise
    if runner == 0:
        _c().prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        os.setpgid(0, 0)                 # kill(0) reaches its own group, not this one
        return
    code = 70
    try:
        os.closerange(0, 1 << 20)        # its pipes: the worker's end is their end
        _, status = os.waitpid(runner, 0)
        os.kill(init, 9)
        os.waitpid(init, 0)
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
            os.kill(os.getpid(), number)
            code = 128 + number          # a signal that does not end a process
        else:
            code = os.waitstatus_to_exitcode(status)
    finally:
        os._exit(code)


# The top-level folders a worker sees (read-only): the system's programs, libraries and
# configuration, and the kernel's views. Every other top-level folder (home, /root,
# /work, /srv, /tmp, /var, /run, /opt, ...) is replaced by an empty one, in which only
# Python itself, the worker's own folder and, for a MODULE:FUNC spec, the working folder
# are shown again.
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev",
               "proc", "sys")


def _python_paths():
    """Where Python, its standard library and the installed packages live."""
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(sys.executable)}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths)


def _under(path, folders):
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _outermost(paths):
    """``paths`` without those inside another of them."""
    paths = sorted(set(paths))
    return [p for p in paths if not _under(p, [q for q in paths if q != p])]


def _namespaces(plan, root, owner=None, pid=False):
    """Enter mount, network and IPC namespaces (and a user namespace when not root; and,
    ``pid``, a PID namespace for this process's children);
    show only the system's folders, Python, the worker's folder (and what the plan
    exposes), hide what the plan lists even there, make every mount read-only, and
    mount the private tmp (owned by ``owner``, a uid) and the shared folder, if any."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | (0 if root else CLONE_NEWUSER)
             | (CLONE_NEWPID if pid else 0))
    if not root:                         # the same uid inside: a mapping of one
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    covered = [os.path.join("/", e) for e in os.listdir("/") if e not in SYSTEM_DIRS
               and os.path.isdir(os.path.join("/", e))
               and not os.path.islink(os.path.join("/", e))]
    if os.path.isdir(SHM) and not os.path.islink(SHM):
        covered.append(SHM)              # other processes' shared memory, and the workers'

    share = plan.get("share")
    folder, src, tmp = plan["dir"], os.path.join(plan["dir"], "src"), os.path.join(plan["dir"], "tmp")
    # Where the worker's folder lies in a covered folder (/tmp), that folder's tmpfs is its
    # writable, size-capped tmp, and only the copy is shown from the disk: no mount sits
    # on a folder of the disk that the checker removes afterwards (which would wait for
    # the dying namespace's unmount).
    home = next((c for c in covered if _under(folder, [c])), None)
    wanted = _python_paths() + [src if home else folder] + list(plan.get("expose", []))
    wanted += [share] if share and os.path.isdir(share) else []
    needed = [p for p in _outermost(os.path.realpath(w) for w in wanted) if os.path.isdir(p)]
    covered = [c for c in covered if c not in needed]    # (Python itself in /opt, say)
    home = home if home in covered else None
    shown = [(os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), p)
             for p in needed if _under(p, covered)]
    for c in covered:
        size = f"size={TMP_BYTES}" if c == home else "size=1m"
        _mount("tmpfs", c, "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=0755")
    for fd, p in shown:
        os.makedirs(p, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
        os.close(fd)
    for h in _outermost(plan["hide"]):   # never over Python or the worker's own folder
        if os.path.isdir(h) and not any(_under(p, [h]) for p in needed):
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
    owner = uid if owner is None else owner
    if home:
        os.makedirs(tmp, mode=0o700, exist_ok=True)
        os.chown(tmp, owner, owner)
    _read_only_everywhere()
    if share and os.path.isdir(share) and not _under(share, plan["hide"]):
        _mount(share, share, None, MS_BIND)
        _mount_setattr(share, 0, 0, MOUNT_ATTR_RDONLY)
    if home:
        _mount_setattr(home, 0, 0, MOUNT_ATTR_RDONLY)
    else:
        _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={TMP_BYTES},mode=0700,uid={owner},gid={owner}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_privileges():
    """No capability left, and none to be gained: the bounding set emptied where it may
    be, every set cleared, and no_new_privs (a setuid program or file capabilities give
    nothing). In a user namespace its creator holds every capability there: kept, the
    code under test could unmount what hides the user's files and make the file system
    writable again; a namespace it makes itself from here copies these mounts locked."""
    libc = _c()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl no_new_privs")
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:       # EINVAL past the last;
        cap += 1                                                 # EPERM: none to drop
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _give_folder(uid, plan):
    """The worker's folder for ``uid``: the copy readable (not writable), tmp its own."""
    folder = plan["dir"]
    for where, dirs, files in os.walk(os.path.join(folder, "src")):
        os.chown(where, 0, uid)
        os.chmod(where, 0o750)
        for name in files:
            os.chown(os.path.join(where, name), 0, uid)
            os.chmod(os.path.join(where, name), 0o640)
    os.chown(folder, 0, uid)
    os.chmod(folder, 0o750)
    os.chown(os.path.join(folder, "tmp"), uid, uid)


def _drop_to(uid):
    """Become ``uid``: no supplementary groups, real, effective and saved ids changed."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("the uid switch did not take")
    try:
        os.kill(-1, 9)                   # whatever an earlier worker of this uid left running
    except OSError:
        pass


_SPACE = {"private": False}          # whether this worker's /dev/shm and tmp are its tmpfs


def space_note(exc):
    """What to add to the message of ``exc``, raised by the code under test, when it ran
    out of room to write: the limits that stopped it (else "")."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EFBIG):
        return ""
    size = f"{TMP_BYTES >> 20} MiB"
    if _SPACE["private"]:
        return (f" (the worker's files: {size} in all, in its private /dev/shm and "
                f"temporary folder, and {size} per file)")
    return f" (the worker's files: {size} per file)"


def enter(mechanism, plan, env, uid=None):
    """In the worker, after fork and before any user code: apply ``mechanism`` to this
    process as ``plan`` (View.plan) says; the environment becomes ``env`` scrubbed.
    Raises OSError when the mechanism cannot be applied (the caller must then not run
    user code)."""
    import resource
    root = os.geteuid() == 0
    if plan is not None:
        if root:
            if uid is None:
                raise OSError("no worker uid")
            _give_folder(uid, plan)
        if mechanism in HIDING:
            _SPACE["private"] = True
            _namespaces(plan, root, uid, pid=pid_namespace())
            if pid_namespace():
                _split_off()             # returns in the worker, pid 2 of its namespace
                _fresh_proc()
        if root:
            _drop_to(uid)
        if root or mechanism == "namespaces":   # (in a user namespace: counted within it)
            resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
        if sys.platform.startswith("linux"):
            _drop_privileges()
        tmp = os.path.join(plan["dir"], "tmp")
        try:
            os.chdir(plan["cwd"])
        except OSError:
            os.chdir(tmp)
    else:
        tmp = tempfile.gettempdir()
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    resource.setrlimit(resource.RLIMIT_FSIZE, (TMP_BYTES, TMP_BYTES))
    os.environ.clear()
    os.environ.update({k: v for k, v in env.items()
                       if k in KEPT_ENV or k.startswith("GRADCHECK_TEST_")})
    os.environ.update(HOME=tmp, TMPDIR=tmp)
    tempfile.tempdir = None              # tempfile reads TMPDIR again
