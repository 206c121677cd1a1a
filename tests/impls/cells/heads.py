"""The dense layers' nonlinearities and the losses around a cell, for the correct test
implementations written in other styles than the loops (whole-window arrays or one step:
any leading axes). Written for these tests from the contract (README), not from reference/.
"""
import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))             # no overflow for large |z|


# name: (f, f' given z and f(z))
NONLINEAR = {
    "tanh": (np.tanh, lambda z, fz: 1.0 - fz * fz),
    "sigmoid": (sigmoid, lambda z, fz: fz * (1.0 - fz)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, fz: (z > 0).astype(z.dtype)),
    "identity": (lambda z: z, lambda z, fz: np.ones_like(z)),
}


def output_loss(loss, f3, z3, y, scale):
    """(value, d3): the loss of logits z3 [..., B, O] summed over every axis and divided by
    ``scale``, and its derivative dL/dz3 (same shape). y: [..., B, O] floats (l2, bce)
    or [..., B] class ids (ce). Computes in z3's dtype."""
    if y.dtype.kind == "f":
        y = y.astype(z3.dtype)
    if loss == "l2":
        f, df = NONLINEAR[f3]
        yhat = f(z3)
        err = yhat - y
        return 0.5 * float(np.sum(err * err)) / scale, err * df(z3, yhat) / scale
    if loss == "ce":
        shifted = z3 - z3.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_p, y[..., None], axis=-1)
        onehot = np.zeros_like(z3)
        np.put_along_axis(onehot, y[..., None], 1.0, axis=-1)
        return -float(np.sum(picked)) / scale, (np.exp(log_p) - onehot) / scale
    if loss == "bce":
        return (float(np.sum(np.logaddexp(0.0, z3) - y * z3)) / scale,
                (sigmoid(z3) - y) / scale)
    raise NotImplementedError(loss)
