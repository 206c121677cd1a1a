"""A folder of compiled JAX executables, so a new process runs the oracle without compiling.

Off unless asked: the library never reads or writes it on its own; ``gradcheck``'s
command line turns it on for its own process (``enable_cache()``), and so can a user
(``gradcheck.enable_cache(path=None)``). Default folder: ``$GRADCHECK_CACHE_DIR``,
else ``$XDG_CACHE_HOME/gradcheck``, else ``~/.cache/gradcheck``.

One file per compiled function and size bucket, named by the hash of its key: the
function's name and bucket shapes, the oracle's source, JAX's and jaxlib's versions,
the backend, the machine and its CPU's features. A file starts with a header (format,
an HMAC-SHA256 tag of the key and the payload, the key); a file that is missing,
unreadable, truncated, corrupt, written for another key, or fails to load is ignored and
the function is compiled as if there were no cache. Writing is atomic (a temporary file
renamed into place) and a folder that cannot be written is skipped silently: the cache
can make a check faster, never make it fail or change a result.

The payload is JAX's serialized executable (``jax.experimental.serialize_executable``),
which is a pickle: loading it can run code. So nothing is unpickled unless its tag
verifies under the folder's key (``key``, 32 random bytes, mode 0600, owned by this
user; made when first needed), which no worker can read (gradcheck.sandbox hides the
folder, or the worker is another uid); a file whose tag does not verify (tampered, or
signed with another key) is ignored and reported on stderr, once per folder. And the
cache is off whenever the code under test could write where it lives
(``sandbox.cache_may_be_written``: a worker running as the user without namespaces, or a
folder others may write).
"""
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import platform
import sys
import tempfile
from pathlib import Path

__all__ = ["enable_cache", "cli_cache", "disable_cache", "cache_dir",
           "default_cache_dir", "fingerprint", "load", "store", "stats"]

_MAGIC = b"gradcheck-executable 2\n"
_KEY_FILE = "key"
_KEY_BYTES = 32
_dir = None                 # the enabled folder (Path), or None: the cache is off
# What happened in this process, for tests and the curious: files loaded, compiled
# functions written, files found but ignored.
_stats = {"loaded": 0, "stored": 0, "ignored": 0}
_reported = set()           # folders whose tampered file was reported on stderr (once each)


def default_cache_dir():
    """$GRADCHECK_CACHE_DIR, else $XDG_CACHE_HOME/gradcheck, else ~/.cache/gradcheck."""
    if os.environ.get("GRADCHECK_CACHE_DIR"):
        return Path(os.environ["GRADCHECK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gradcheck"


def enable_cache(path=None):
    """Keep compiled oracle executables in ``path`` (default: ``default_cache_dir()``)
    for this process; returns the folder. The folder is created when first written."""
    global _dir
    _dir = Path(path).expanduser() if path is not None else default_cache_dir()
    return _dir


@contextlib.contextmanager
def cli_cache():
    """What the command line does around a check: the cache in ``default_cache_dir()``,
    unless $GRADCHECK_NO_CACHE is set (to anything but "" or "0"); the previous
    setting is restored afterwards (``main()`` may be called in a user's process)."""
    global _dir
    saved = _dir
    if os.environ.get("GRADCHECK_NO_CACHE", "") in ("", "0"):
        enable_cache()
    try:
        yield _dir
    finally:
        _dir = saved


def disable_cache():
    """Stop reading and writing the cache in this process."""
    global _dir
    _dir = None


def cache_dir():
    """The folder in use, or None when the cache is off."""
    return _dir


def stats():
    """A copy of this process's counts: {"loaded", "stored", "ignored"}."""
    return dict(_stats)


def distrust():
    """The code under test could write the cache (a worker as the user's own uid):
    turn the cache off for this process and drop the folder's key, so no entry signed
    with a key that code could read is trusted again."""
    global _dir
    for folder in {d for d in (_dir, default_cache_dir()) if d is not None}:
        try:
            os.unlink(folder / _KEY_FILE)
        except OSError:
            pass
    _dir = None


def _usable():
    """The cache is on and the code under test cannot write where it lives."""
    if _dir is None:
        return False
    from .sandbox import cache_may_be_written, expected_mechanism
    return not cache_may_be_written(_dir, expected_mechanism())


def _key(create):
    """The folder's key: a private regular file of this user (never followed through a
    link); made when missing and ``create``; None otherwise or when it is not private."""
    path = _dir / _KEY_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            return None
        try:
            _dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_KEY_BYTES))
        return _key(False)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        key = f.read(_KEY_BYTES + 1)
    if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o077 or len(key) != _KEY_BYTES):
        return None
    return key


def _tag(key, key_bytes, payload):
    return hmac.new(key, b"%d\n" % len(key_bytes) + key_bytes + payload,
                    hashlib.sha256).hexdigest().encode()


def _report(why):
    if _dir not in _reported:
        _reported.add(_dir)
        print(f"gradcheck: ignored a compiled-cache file in {_dir} ({why}); it is "
              f"recompiled instead (reported once per folder)", file=sys.stderr)


def _cpu_features():
    """The CPU's feature flags (what a compiled executable may use), as one string."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fingerprint(name, shapes, source):
    """The key of one compiled function: everything that makes its executable valid."""
    import jax
    import jaxlib

    backend = jax.devices()[0].client
    parts = [name, repr(shapes), hashlib.sha256(source).hexdigest(), jax.__version__,
             jaxlib.__version__, backend.platform, backend.platform_version,
             platform.machine(), _cpu_features(), sys.version.split()[0]]
    return "\n".join(parts)


def _path(key):
    return _dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".exe")


def load(key, in_tree, out_tree):
    """The jax Compiled stored under ``key``, or None (cache off, no file, or any fault)."""
    if not _usable():
        return None
    try:
        blob = _path(key).read_bytes()
    except OSError:
        return None                      # missing or unreadable: compile instead
    secret = _key(create=False)
    if secret is None:
        return None
    try:
        payload = _verified_payload(blob, key, secret)
    except ValueError as exc:
        _stats["ignored"] += 1
        _report(str(exc))
        return None
    try:
        from jax.experimental.serialize_executable import deserialize_and_load
        compiled = deserialize_and_load(payload, in_tree, out_tree)
    except Exception:                    # noqa: BLE001 -- a bad file is ignored, whatever it is
        _stats["ignored"] += 1
        return None
    _stats["loaded"] += 1
    return compiled


def _verified_payload(blob, key, secret):
    """The payload of a cache file, after checking its header and its tag under
    ``secret``; ValueError otherwise."""
    if not blob.startswith(_MAGIC):
        raise ValueError("not a gradcheck executable file")
    rest = blob[len(_MAGIC):]
    tag, _, rest = rest.partition(b"\n")
    size, _, rest = rest.partition(b"\n")
    if not size.isdigit():
        raise ValueError("not a gradcheck executable file")
    stored_key, payload = rest[:int(size)], rest[int(size):]
    if not hmac.compare_digest(_tag(secret, stored_key, payload), tag):
        raise ValueError("its authentication tag does not match: tampered, corrupt or "
                         "written with another key")
    if stored_key != key.encode():
        raise ValueError("written for another version, machine or shape")
    return payload


def store(key, compiled):
    """Write ``compiled`` under ``key``, atomically; do nothing if the cache is off or
    the folder cannot be written (or the executable cannot be serialized)."""
    if not _usable():
        return
    try:
        from jax.experimental.serialize_executable import serialize
        payload = serialize(compiled)[0]
    except Exception:                    # noqa: BLE001 -- not serializable here: no cache
        return
    secret = _key(create=True)
    if secret is None:
        return
    key_bytes = key.encode()
    blob = b"".join([_MAGIC, _tag(secret, key_bytes, payload), b"\n",
                     str(len(key_bytes)).encode(), b"\n", key_bytes, payload])
    tmp = None
    try:
        _dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=_dir, prefix=".tmp-", suffix=".exe")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, _path(key))
        tmp = None
        _stats["stored"] += 1
    except OSError:
        pass                             # read-only, full or gone: run without a cache
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
