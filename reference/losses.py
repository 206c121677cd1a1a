"""Losses on the output logits z3 and their derivative d3 = dL/dz3, for all steps at once.

``loss_and_delta`` takes z3 [..., B, O] (any leading time axes) and the matching
targets and returns both the summed loss and d3, divided by the reduction's
``scale`` (B for a mean, 1 for a sum), computing what they share once.
Numerically stable: log-sum-exp for ``ce``, softplus for ``bce``.
"""
import numpy as np

from .activations import ACTIVATIONS, sigmoid

__all__ = ["LOSSES", "loss_and_delta"]

LOSSES = ("l2", "ce", "bce")


def loss_and_delta(loss, f3_name, z3, y, scale):
    """(L / scale, d3 / scale): the loss summed over steps, batch and outputs, and
    d3 = dL/dz3 = dL/dyhat * f3'(z3) (fused for ce and bce), shaped like z3.
    z3 is used up: with an identity f3 and l2 it becomes d3 (the forward's [T, B, O]
    temporary, so the biggest array is not allocated twice).

    Shapes: z3 [..., B, O]; y like z3 (l2, bce) or [..., B] class ids (ce).
    """
    if loss == "l2" and f3_name == "identity":            # yhat = z3, f3' = 1
        d3 = np.subtract(z3, y, out=z3)                   # yhat - y, in z3's place
        value = 0.5 * float(np.vdot(d3, d3))
    elif loss == "l2":
        f3, df3 = ACTIVATIONS[f3_name]
        yhat = f3(z3)
        err = yhat - y                                    # dL/dyhat of 0.5 (yhat - y)^2
        value = 0.5 * float(np.vdot(err, err))
        d3 = err * df3(z3, yhat)
    elif loss == "ce":
        # softmax cross-entropy on logits: L = logsumexp(z3) - z3[y]; d3 = softmax - onehot(y)
        m = np.max(z3, axis=-1, keepdims=True)            # [..., B, 1]
        e = np.exp(z3 - m)                                # [..., B, O]
        s = np.sum(e, axis=-1, keepdims=True)             # [..., B, 1]
        picked = np.take_along_axis(z3, y[..., None], axis=-1)
        value = float(np.sum(m + np.log(s) - picked))
        d3 = e / s                                        # softmax
        np.put_along_axis(d3, y[..., None], np.take_along_axis(d3, y[..., None], -1) - 1.0, -1)
    elif loss == "bce":
        # sigmoid cross-entropy on logits: L = softplus(z3) - y z3; d3 = sigmoid(z3) - y
        value = float(np.sum(np.logaddexp(0.0, z3) - y * z3))
        d3 = sigmoid(z3) - y
    else:
        raise ValueError(f"unknown loss {loss!r}")
    d3 *= 1.0 / scale                                     # in place: d3 is a fresh array
    return value / scale, d3
