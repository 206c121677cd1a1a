"""Writing an output file whole or not at all: ``write_atomic(path, data)``.

The file is written beside its destination under a temporary name and renamed over it
once complete, so a reader (or a run cut short) never sees half of it, and a process
that opened the old file keeps that one, not the new.
"""
import os
import tempfile

__all__ = ["write_atomic"]


def write_atomic(path, data):
    """Write ``data`` (str: UTF-8, or bytes) to ``path`` by a rename; the file gets the
    permissions a new file would get (the umask's)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder, name = os.path.split(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
