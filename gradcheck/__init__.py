"""gradcheck: verify a hand-written BPTT against JAX autodiff and finite differences.

    import gradcheck
    report = gradcheck.check(my_loss_and_grads, interval=3)
    report.passed, report.to_dict()

Importing gradcheck imports neither NumPy, JAX nor the checker's modules: the names
below load on first use (PEP 562), so ``import gradcheck`` is cheap and changes nothing
in the process (the pytest plugin, an entry point every pytest run loads, costs nothing).
"""
import importlib
import sys
import types

__all__ = ["check", "Report", "Result", "UsageError", "ExitCode", "enable_cache"]
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"check": ".check", "Report": ".report", "Result": ".report", "UsageError": ".errors",
         "ExitCode": ".errors", "enable_cache": ".exe_cache"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value          # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package, whose ``check`` attribute stays the function: importing the
    submodule ``gradcheck.check`` (which binds it on the package) leaves it alone."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return                       # the submodule stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
