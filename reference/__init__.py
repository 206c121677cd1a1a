"""Hand-written NumPy reference of the article's network and its BPTT (imports only NumPy)."""
from . import layers
from .network import (GRAD_NAMES, PARAM_NAMES, Cache, ReferenceInputError, WindowResult,
                      backward, forward, loss_and_grads, run_sequence)

__all__ = ["loss_and_grads", "layers", "run_sequence", "forward", "backward", "Cache", "WindowResult",
           "ReferenceInputError", "PARAM_NAMES", "GRAD_NAMES"]
