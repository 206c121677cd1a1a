"""Hostile: tries JAX, and when refused quietly falls back to a correct implementation.
The attempt alone costs every mark."""
try:
    import jax  # noqa: F401
except ImportError:
    jax = None
from correct_loop import loss_and_grads  # noqa: F401,E402
