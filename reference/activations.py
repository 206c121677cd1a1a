"""Activations f and their derivatives f'(z), element-wise, in NumPy.

Each entry maps a name to ``(f, df)`` where ``df(z, fz)`` is f'(z) given both
the pre-activation ``z`` and the already computed ``fz = f(z)`` (tanh and
sigmoid are cheaper from their output).
"""
import numpy as np

__all__ = ["ACTIVATIONS", "sigmoid"]


def sigmoid(z):
    """Logistic function, stable for large |z|: exp(-softplus(-z))."""
    return np.exp(-np.logaddexp(0.0, -z))


def _tanh_df(z, fz):
    # (1 - fz)(1 + fz): one rounding fewer than 1 - fz^2 where tanh saturates (1 - fz
    # is exact for |fz| >= 1/2). The rounding of fz itself still limits a saturated
    # derivative to ~eps / (1 - fz^2) relative, as in any backward that works from the
    # output (JAX's included).
    return (1.0 - fz) * (1.0 + fz)


def _sigmoid_df(z, fz):
    # s(z) s(-z), not fz (1 - fz): 1 - fz loses eps / (1 - fz) of itself as fz -> 1.
    return fz * sigmoid(-z)


def _relu(z):
    return np.maximum(z, 0.0)


def _relu_df(z, fz):
    # The kink at z == 0 takes the derivative 0 (the usual convention).
    return (z > 0).astype(z.dtype)


def _identity(z):
    return z


def _identity_df(z, fz):
    return np.ones_like(z)


ACTIVATIONS = {
    "tanh": (np.tanh, _tanh_df),
    "sigmoid": (sigmoid, _sigmoid_df),
    "relu": (_relu, _relu_df),
    "identity": (_identity, _identity_df),
}
