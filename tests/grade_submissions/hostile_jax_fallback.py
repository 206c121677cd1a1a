"""Imports JAX, and when that is refused quietly falls back to a correct implementation.
JAX is never used: an unused import of a banned library costs nothing (the instructor's
summary lists it)."""
try:
    import jax  # noqa: F401
except ImportError:
    jax = None
from correct_loop import loss_and_grads  # noqa: F401,E402
