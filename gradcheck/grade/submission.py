"""What a SUBMISSION argument names: the file to grade and its function.

``FILE.py`` or ``FILE.py:FUNC``: that file; FUNC defaults to ``loss_and_grads``.
A folder (``DIR`` or ``DIR:FUNC``): the file in it is, in this order,
  1. ``--entry NAME``: ``DIR/NAME`` (``.py`` added when missing);
  2. the only ``.py`` file directly in DIR (test files ``test_*.py`` and ``*_test.py``
     and ``__init__.py`` do not count);
  3. the only such file that defines ``def FUNC(`` at the start of a line.
Otherwise the submission cannot be graded (zero marks, with the reason).
"""
import os
import re
from typing import NamedTuple, Optional

__all__ = ["Submission", "resolve", "DEFAULT_FUNC"]

DEFAULT_FUNC = "loss_and_grads"


class Submission(NamedTuple):
    """``spec``: as given; ``path``: the file to load (None when it cannot be found);
    ``func``: the function's name; ``error``: why it cannot be loaded, or None."""
    spec: str
    path: Optional[str]
    func: str
    error: Optional[str] = None


def _split(spec):
    if os.path.exists(spec):
        return spec, DEFAULT_FUNC
    where, sep, func = spec.rpartition(":")
    if sep and where and func.isidentifier():
        return where, func
    return spec, DEFAULT_FUNC


def _candidates(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".py") and n != "__init__.py"
                   and not n.startswith("test_") and not n.endswith("_test.py")
                   and os.path.isfile(os.path.join(folder, n)))
    return names


def resolve(spec, entry=None):
    """The Submission named by ``spec`` (never raises: a problem is its ``error``)."""
    where, func = _split(spec)
    if os.path.isdir(where):
        if entry is not None:
            name = entry if entry.endswith(".py") else entry + ".py"
            path = os.path.join(where, name)
            if not os.path.isfile(path):
                return Submission(spec, None, func, f"no file {name} in the folder (--entry)")
            return Submission(spec, path, func)
        names = _candidates(where)
        if len(names) == 1:
            return Submission(spec, os.path.join(where, names[0]), func)
        if not names:
            return Submission(spec, None, func, "the folder holds no .py file")
        pattern = re.compile(rf"^def {re.escape(func)}\(", re.M)
        defining = []
        for n in names:
            try:
                with open(os.path.join(where, n), encoding="utf-8", errors="replace") as f:
                    if pattern.search(f.read()):
                        defining.append(n)
            except OSError:
                continue
        if len(defining) == 1:
            return Submission(spec, os.path.join(where, defining[0]), func)
        return Submission(spec, None, func,
                          f"cannot tell which file to grade: {len(defining)} of the "
                          f"{len(names)} .py files define {func}() (name it with --entry)")
    if not os.path.isfile(where):
        return Submission(spec, None, func, f"no such file {where}")
    return Submission(spec, where, func)
