"""gradcheck: verify a hand-written BPTT against JAX autodiff and finite differences.

    import gradcheck
    report = gradcheck.check(my_loss_and_grads, interval=3)
    report.passed, report.to_dict()
"""
from .check import check
from .errors import ExitCode, UsageError
from .report import Report, Result

__all__ = ["check", "Report", "Result", "UsageError", "ExitCode"]
__version__ = "0.1.0"
