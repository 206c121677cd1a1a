"""What a SUBMISSION argument names: the file to grade and its function.

``FILE.py`` or ``FILE.py:FUNC``: that file; FUNC defaults to ``loss_and_grads``.
A folder (``DIR`` or ``DIR:FUNC``): the file in it is, in this order,
  1. ``--entry NAME``: ``DIR/NAME`` (``.py`` added when missing);
  2. the only ``.py`` file directly in DIR (test files ``test_*.py`` and ``*_test.py``
     and ``__init__.py`` do not count);
  3. the only such file that defines ``def FUNC(`` at the start of a line;
  4. when DIR holds no such file at all: the same rules one folder down (a student who
     zipped the folder that holds the file), graded with a note saying to move it up.
Otherwise the submission cannot be graded (zero marks, with the reason, naming the files:
the student reads it, so it names no instructor's flag).
"""
import os
import re
from typing import NamedTuple, Optional

__all__ = ["Submission", "resolve", "DEFAULT_FUNC", "root_of"]

DEFAULT_FUNC = "loss_and_grads"


class Submission(NamedTuple):
    """``spec``: as given; ``path``: the file to load (None when it cannot be found);
    ``func``: the function's name; ``error``: why it cannot be loaded, or None;
    ``kind``: the packaging kind of ``error`` (gradcheck.kinds); ``note``: a remark for
    the student about how it was found."""
    spec: str
    path: Optional[str]
    func: str
    error: Optional[str] = None
    kind: Optional[str] = None
    note: Optional[str] = None


def _split(spec):
    if os.path.exists(spec):
        return spec, DEFAULT_FUNC
    where, sep, func = spec.rpartition(":")
    if sep and where and func.isidentifier():
        return where, func
    return spec, DEFAULT_FUNC


def root_of(spec):
    """The folder paths in messages are shown relative to: the submission's folder, or
    the folder of a submitted file."""
    where, _ = _split(spec)
    return where if os.path.isdir(where) else os.path.dirname(os.path.abspath(where))


def _candidates(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".py") and n != "__init__.py"
                  and not n.startswith("test_") and not n.endswith("_test.py")
                  and os.path.isfile(os.path.join(folder, n)))


def _defining(folder, names, func):
    pattern = re.compile(rf"^def {re.escape(func)}\(", re.M)
    found = []
    for n in names:
        try:
            with open(os.path.join(folder, n), encoding="utf-8", errors="replace") as f:
                if pattern.search(f.read()):
                    found.append(n)
        except OSError:
            continue
    return found


def _pick(folder, names, func):
    """(the file's name, None) or (None, (kind, why)) among ``names`` in ``folder``."""
    if len(names) == 1:
        return names[0], None
    defining = _defining(folder, names, func)
    if len(defining) == 1:
        return defining[0], None
    if defining:
        return None, ("ambiguous_entry",
                      f"cannot tell which file to grade: {_listed(defining)} all define "
                      f"{func}(); keep {func}() in one file")
    return None, ("no_entry_file", f"cannot tell which file to grade: none of "
                                   f"{_listed(names)} defines {func}()")


def _listed(names):
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _one_down(where, func, spec):
    """The Submission found in the subfolders of ``where``, which holds no .py file."""
    subs = sorted(d for d in os.listdir(where) if os.path.isdir(os.path.join(where, d))
                  and not d.startswith((".", "__")))
    found = [os.path.join(d, n) for d in subs for n in _candidates(os.path.join(where, d))]
    if not found:
        return Submission(spec, None, func, "the folder holds no .py file to grade",
                          "no_entry_file")
    name, problem = _pick(where, found, func)
    if name is None:
        kind, why = problem
        return Submission(spec, None, func, f"the folder holds no .py file, and one folder "
                                            f"down {why}", kind)
    return Submission(spec, os.path.join(where, name), func,
                      note=f"found {name} one folder down; move it up next time")


def resolve(spec, entry=None):
    """The Submission named by ``spec`` (never raises: a problem is its ``error``)."""
    where, func = _split(spec)
    if os.path.isdir(where):
        if entry is not None:
            name = entry if entry.endswith(".py") else entry + ".py"
            path = os.path.join(where, name)
            if not os.path.isfile(path):
                return Submission(spec, None, func, f"no file {name} in the folder",
                                  "no_entry_file")
            return Submission(spec, path, func)
        names = _candidates(where)
        if not names:
            return _one_down(where, func, spec)
        name, problem = _pick(where, names, func)
        if name is None:
            return Submission(spec, None, func, problem[1], problem[0])
        return Submission(spec, os.path.join(where, name), func)
    if not os.path.isfile(where):
        return Submission(spec, None, func, f"no such file {where}", "no_entry_file")
    return Submission(spec, where, func)
