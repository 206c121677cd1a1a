"""Academic honesty inside a graded submission's worker: refuse (and record) imports of the
autodiff libraries and of the checker itself, before the submission's module is loaded.

A deterrent, not a sandbox: a submission that copies the checker's source into its own
file, or recomputes the answers some other way, is not stopped by it. What it does stop
is the easy way of handing in someone else's gradients: ``import jax``, ``import torch``,
``from gradcheck import ...``, ``import reference``, or loading those packages' files
under another name (any import whose file lies in one of their folders). Every attempt
is recorded, even one the submission catches and recovers from, and the grader gives the
submission zero marks, naming it.

Runs in the worker process only (the child of the grader): ``install`` changes that
process's ``sys.meta_path`` and ``sys.modules`` for good.
"""
import importlib.machinery
import os
import sys

__all__ = ["FORBIDDEN", "install"]

# Top-level module names a graded submission may not import (``--allow-import NAME``
# lifts one). ``_gradcheck_reference`` is the private name the checker loads reference/ as.
FORBIDDEN = ("jax", "jaxlib", "torch", "tensorflow", "autograd", "gradcheck", "reference",
             "_gradcheck_reference")


def _folders(forbidden):
    """The folders the forbidden packages are installed in (found, not imported)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # gradcheck/
    found = []
    if "gradcheck" in forbidden:
        found.append(here)
    if "reference" in forbidden:
        found.append(os.path.join(os.path.dirname(here), "reference"))
    for name in forbidden:
        if name in ("gradcheck", "reference", "_gradcheck_reference"):
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for where in (spec.submodule_search_locations or []) if spec else []:
            found.append(os.path.abspath(where))
    return tuple(f + os.sep for f in found)


class _Refuse:
    """A meta-path finder placed first: an import of a forbidden top-level name, or of a
    module whose file is in a forbidden package's folder, fails."""

    def __init__(self, forbidden, attempts):
        self.forbidden, self.attempts = frozenset(forbidden), attempts
        self.folders = _folders(self.forbidden)

    def _refuse(self, name, fullname):
        if name not in self.attempts:
            self.attempts.append(name)
        raise ImportError(f"importing {fullname} is not allowed in a graded submission "
                          f"(academic honesty)", name=fullname)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in self.forbidden:
            self._refuse(top, fullname)
        if path and self.folders:                      # a submodule: where is its file?
            for entry in path:
                where = os.path.abspath(str(entry)) + os.sep
                for folder in self.folders:
                    if where.startswith(folder):
                        self._refuse(os.path.basename(folder.rstrip(os.sep)), fullname)
        return None


def install(forbidden):
    """Refuse ``forbidden`` top-level names from now on in this process; returns the list
    that records the names attempted (in order, each once). Modules of those names that
    are already loaded (the worker's own ``gradcheck``) are taken out of ``sys.modules``
    so that ``import`` cannot find them there; the objects that hold them keep working."""
    attempts = []
    forbidden = tuple(forbidden)
    finder = _Refuse(forbidden, attempts)
    for name in list(sys.modules):
        if name.partition(".")[0] in forbidden:
            del sys.modules[name]
    sys.meta_path.insert(0, finder)
    return attempts
