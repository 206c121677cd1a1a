"""Academic honesty inside a graded submission's worker: refuse (and record) imports of the
autodiff libraries and of the checker itself, before the submission's module is loaded.

A deterrent, not a sandbox: a submission that reads the checker's files, or recomputes
the answers some other way, is not stopped by it. What it does stop is the easy way of
handing in someone else's gradients: ``import jax``, ``import torch``, ``from gradcheck
import ...``, ``import reference``. Every attempt is recorded, even one the submission
catches and recovers from, and the grader gives the submission zero marks, naming it.

Runs in the worker process only (the child of the grader): ``install`` changes that
process's ``sys.meta_path`` and ``sys.modules`` for good.
"""
import sys

__all__ = ["FORBIDDEN", "install"]

# Top-level module names a graded submission may not import (``--allow-import NAME``
# lifts one). ``_gradcheck_reference`` is the private name the checker loads reference/ as.
FORBIDDEN = ("jax", "jaxlib", "torch", "tensorflow", "autograd", "gradcheck", "reference",
             "_gradcheck_reference")


class _Refuse:
    """A meta-path finder placed first: an import of a forbidden top-level name fails."""

    def __init__(self, forbidden, attempts):
        self.forbidden, self.attempts = frozenset(forbidden), attempts

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in self.forbidden:
            if top not in self.attempts:
                self.attempts.append(top)
            raise ImportError(f"importing {fullname} is not allowed in a graded submission "
                              f"(academic honesty)", name=fullname)
        return None


def install(forbidden):
    """Refuse ``forbidden`` top-level names from now on in this process; returns the list
    that records the names attempted (in order, each once). Modules of those names that
    are already loaded (the worker's own ``gradcheck``) are taken out of ``sys.modules``
    so that ``import`` cannot find them there; the objects that hold them keep working."""
    attempts = []
    forbidden = tuple(forbidden)
    for name in list(sys.modules):
        if name.partition(".")[0] in forbidden:
            del sys.modules[name]
    sys.meta_path.insert(0, _Refuse(forbidden, attempts))
    return attempts
