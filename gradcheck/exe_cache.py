"""A folder of compiled JAX executables, so a new process runs the oracle without compiling.

Off unless asked: the library never reads or writes it on its own; ``gradcheck``'s
command line turns it on for its own process (``enable_cache()``), and so can a user
(``gradcheck.enable_cache(path=None)``). Default folder: ``$GRADCHECK_CACHE_DIR``,
else ``$XDG_CACHE_HOME/gradcheck``, else ``~/.cache/gradcheck``.

One file per compiled function and size bucket, named by the hash of its key: the
function's name and bucket shapes, the oracle's source, JAX's and jaxlib's versions,
the backend, the machine and its CPU's features. A file starts with a header (format,
the key, the sha256 of the payload); a file that is missing, unreadable, truncated,
corrupt, written for another key, or fails to load is ignored and the function is
compiled as if there were no cache. Writing is atomic (a temporary file renamed into
place) and a folder that cannot be written is skipped silently: the cache can make a
check faster, never make it fail or change a result.

The payload is JAX's serialized executable (``jax.experimental.serialize_executable``),
which is a pickle: loading it can run code, so the folder is created private to its
user (mode 0700) and must not be writable by anyone else.
"""
import contextlib
import hashlib
import os
import platform
import sys
import tempfile
from pathlib import Path

__all__ = ["enable_cache", "cli_cache", "disable_cache", "cache_dir",
           "default_cache_dir", "fingerprint", "load", "store", "stats"]

_MAGIC = b"gradcheck-executable 1\n"
_dir = None                 # the enabled folder (Path), or None: the cache is off
# What happened in this process, for tests and the curious: files loaded, compiled
# functions written, files found but ignored.
_stats = {"loaded": 0, "stored": 0, "ignored": 0}


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
    if _dir is None:
        return None
    try:
        blob = _path(key).read_bytes()
    except OSError:
        return None                      # missing or unreadable: compile instead
    try:
        payload = _verified_payload(blob, key)
        from jax.experimental.serialize_executable import deserialize_and_load
        compiled = deserialize_and_load(payload, in_tree, out_tree)
    except Exception:                    # noqa: BLE001 -- a bad file is ignored, whatever it is
        _stats["ignored"] += 1
        return None
    _stats["loaded"] += 1
    return compiled


def _verified_payload(blob, key):
    """The payload of a cache file, after checking its header; ValueError otherwise."""
    if not blob.startswith(_MAGIC):
        raise ValueError("not a gradcheck executable file")
    rest = blob[len(_MAGIC):]
    digest, _, rest = rest.partition(b"\n")
    size, _, rest = rest.partition(b"\n")
    stored_key, rest = rest[:int(size)], rest[int(size):]
    if stored_key != key.encode():
        raise ValueError("written for another version, machine or shape")
    if hashlib.sha256(rest).hexdigest().encode() != digest:
        raise ValueError("corrupt")
    return rest


def store(key, compiled):
    """Write ``compiled`` under ``key``, atomically; do nothing if the cache is off or
    the folder cannot be written (or the executable cannot be serialized)."""
    if _dir is None:
        return
    try:
        from jax.experimental.serialize_executable import serialize
        payload = serialize(compiled)[0]
    except Exception:                    # noqa: BLE001 -- not serializable here: no cache
        return
    key_bytes = key.encode()
    blob = b"".join([_MAGIC, hashlib.sha256(payload).hexdigest().encode(), b"\n",
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
