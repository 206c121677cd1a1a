"""Correct implementations written differently from the reference.

``loop_bptt`` follows bptt.md line by line, one time step at a time, for the l2
loss (any activations, mean or sum). ``wrapped`` calls the reference but returns
its outputs in other containers (NumPy scalar loss, a new dict in another order,
h_last as a nested list), all of which the contract allows.
"""
import numpy as np

import reference


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))          # no overflow for large |z|


_F = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "identity": (lambda z: z, np.ones_like),
}


def loop_bptt(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
              reduction="mean"):
    """One window, step by step. Shapes: x [T,B,I]; y [T,B,O]; h0 [B,R]."""
    if loss != "l2":
        raise NotImplementedError(f"loop_bptt only does l2, not {loss}")
    (f1, df1), (f2, df2), (f3, df3) = (_F[a] for a in activations)
    W1, b1, W2, U, b2, W3, b3 = (params[n] for n in ("W1", "b1", "W2", "U", "b2", "W3", "b3"))
    T, B, _ = x.shape
    scale = B if reduction == "mean" else 1
    h = [h0]
    steps = []
    value = 0.0
    for t in range(T):
        z1 = x[t] @ W1 + b1                       # [B, H]
        a = f1(z1)
        z2 = a @ W2 + h[-1] @ U + b2              # [B, R]
        h.append(f2(z2))
        z3 = h[-1] @ W3 + b3                      # [B, O]
        err = f3(z3) - y[t]
        value += 0.5 * float(np.sum(err * err)) / scale
        steps.append((z1, a, z2, z3, err))
    d = {n: np.zeros_like(p) for n, p in params.items()}
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        z1, a, z2, z3, err = steps[t]
        d3 = err / scale * df3(z3)                # backprop through the loss and f3
        d["W3"] += h[t + 1].T @ d3
        d["b3"] += d3.sum(axis=0)
        dh = d3 @ W3.T + dh_next                  # the state derivative from the future
        d2 = dh * df2(z2)                         # backprop through f2
        d["W2"] += a.T @ d2
        d["U"] += h[t].T @ d2
        d["b2"] += d2.sum(axis=0)
        dh_next = d2 @ U.T
        d1 = (d2 @ W2.T) * df1(z1)                # backprop through f1
        d["W1"] += x[t].T @ d1
        d["b1"] += d1.sum(axis=0)
        dx[t] = d1 @ W1.T
    d["x"], d["h0"] = dx, dh_next
    return value, d, h[-1].copy()


def wrapped(params, x, y, h0, **options):
    loss, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    return np.float64(loss), dict(reversed(list(grads.items()))), h_last.tolist()
