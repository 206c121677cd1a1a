"""Per-step losses on the output logits z3 and their derivative dL/dz3.

Every loss returns the step's summed value (over batch and outputs, before the
reduction) and ``d3 = dL/dz3`` before the reduction's scale. Numerically stable:
log-sum-exp for ``ce``, softplus for ``bce``.
"""
import numpy as np

from .activations import ACTIVATIONS, sigmoid

__all__ = ["LOSSES", "step_loss"]

LOSSES = ("l2", "ce", "bce")


def step_loss(loss, f3_name, z3_t, y_t):
    """Loss of one time step and its derivative with respect to z3_t.

    Shapes: z3_t [B, O]; y_t [B, O] floats (l2, bce) or [B] class ids (ce).
    Returns (value: float, d3_t [B, O]), unscaled by the reduction.
    """
    if loss == "l2":
        f3, df3 = ACTIVATIONS[f3_name]
        yhat = f3(z3_t)                                   # [B, O]
        err = yhat - y_t                                  # [B, O]
        return 0.5 * float(np.sum(err * err)), err * df3(z3_t, yhat)
    if loss == "ce":
        # softmax cross-entropy on logits: logsumexp(z3) - z3[y]
        m = np.max(z3_t, axis=1, keepdims=True)           # [B, 1]
        e = np.exp(z3_t - m)                              # [B, O]
        s = np.sum(e, axis=1, keepdims=True)              # [B, 1]
        lse = m[:, 0] + np.log(s[:, 0])                   # [B]
        rows = np.arange(z3_t.shape[0])
        value = float(np.sum(lse - z3_t[rows, y_t]))
        d3_t = e / s                                      # softmax, [B, O]
        d3_t[rows, y_t] -= 1.0                            # fused: softmax - onehot
        return value, d3_t
    if loss == "bce":
        # sigmoid cross-entropy on logits: softplus(z3) - y * z3
        value = float(np.sum(np.logaddexp(0.0, z3_t) - y_t * z3_t))
        return value, sigmoid(z3_t) - y_t
    raise ValueError(f"unknown loss {loss!r}")
