"""gradcheck: verify a hand-written BPTT against JAX autodiff and finite differences.

    import gradcheck
    report = gradcheck.check(my_loss_and_grads, interval=3)
    report.passed, report.to_dict()

Importing gradcheck imports neither NumPy nor JAX: the names below load on first use
(PEP 562), so the pytest plugin (an entry point every pytest run loads) costs nothing.
"""
import importlib
import sys
import types

__all__ = ["check", "Report", "Result", "UsageError", "ExitCode"]
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"check": ".check", "Report": ".report", "Result": ".report", "UsageError": ".errors",
         "ExitCode": ".errors"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package, whose ``check`` stays the function when the submodule
    ``gradcheck.check`` is imported (which would bind the module in its place)."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
