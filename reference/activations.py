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
    # 1 - fz^2 from the output, as the article and most hand-written code (and JAX)
    # form it: where tanh saturates its rounding is eps / (1 - fz^2) of the value,
    # and check.py's calibration measures exactly that rounding on the reference.
    return 1.0 - fz * fz


def _sigmoid_df(z, fz):
    # fz (1 - fz), the usual form (JAX's too); see _tanh_df on its rounding.
    return fz * (1.0 - fz)


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
