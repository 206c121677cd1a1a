"""Losses on the output logits z3 and their derivative dL/dz3, for all steps at once.

Both functions take z3 [..., B, O] (any leading time axes) and the matching targets,
and work before the reduction's scale. Numerically stable: log-sum-exp for ``ce``,
softplus for ``bce``.
"""
import numpy as np

from .activations import ACTIVATIONS, sigmoid

__all__ = ["LOSSES", "loss_value", "loss_delta"]

LOSSES = ("l2", "ce", "bce")


def _log_softmax_parts(z3):
    m = np.max(z3, axis=-1, keepdims=True)                # [..., B, 1]
    e = np.exp(z3 - m)                                    # [..., B, O]
    s = np.sum(e, axis=-1, keepdims=True)                 # [..., B, 1]
    return m, e, s


def loss_value(loss, f3_name, z3, y):
    """The summed loss (over steps, batch and outputs), unscaled.

    Shapes: z3 [..., B, O]; y like z3 (l2, bce) or [..., B] class ids (ce)."""
    if loss == "l2":
        err = ACTIVATIONS[f3_name][0](z3) - y             # yhat - y
        return 0.5 * float(np.sum(err * err))
    if loss == "ce":
        # softmax cross-entropy on logits: logsumexp(z3) - z3[y]
        m, _, s = _log_softmax_parts(z3)
        picked = np.take_along_axis(z3, y[..., None], axis=-1)
        return float(np.sum(m + np.log(s) - picked))
    if loss == "bce":
        # sigmoid cross-entropy on logits: softplus(z3) - y * z3
        return float(np.sum(np.logaddexp(0.0, z3) - y * z3))
    raise ValueError(f"unknown loss {loss!r}")


def loss_delta(loss, f3_name, z3, y):
    """d3 = dL/dz3 = dL/dyhat * f3'(z3), unscaled; fused for ce and bce. Same shape as z3."""
    if loss == "l2":
        if f3_name == "identity":                         # yhat = z3, f3' = 1
            return z3 - y
        f3, df3 = ACTIVATIONS[f3_name]
        yhat = f3(z3)
        return (yhat - y) * df3(z3, yhat)
    if loss == "ce":
        _, e, s = _log_softmax_parts(z3)
        d3 = e / s                                        # softmax
        np.put_along_axis(d3, y[..., None], np.take_along_axis(d3, y[..., None], -1) - 1.0, -1)
        return d3                                         # softmax - onehot(y)
    if loss == "bce":
        return sigmoid(z3) - y
    raise ValueError(f"unknown loss {loss!r}")
