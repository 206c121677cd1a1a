"""A correct dense -> LSTM -> dense BPTT written with whole-window matrix operations:
the dense layers and the input's part of the gates for every step in one matmul, only
the recurrence step by step, and every weight gradient as one einsum over time after
the backward's walk has gathered the gates' derivatives [T, B, 4R]."""
import numpy as np

from tests.impls.cells.heads import NONLINEAR, output_loss, sigmoid


def loss_and_grads(params, x, y, h0, c0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    f1, df1 = NONLINEAR[activations[0]]
    T, B, _ = x.shape
    R = Wh.shape[0]
    z1 = x @ W1 + b1                                     # [T, B, H]
    a = f1(z1)
    Z = a @ Wx + b                                       # [T, B, 4R], the input's part
    G = np.empty_like(Z)                                 # gates after their nonlinearity
    H = np.empty((T + 1, B, R), W1.dtype)                # H[0] = h0
    C = np.empty((T + 1, B, R), W1.dtype)
    H[0], C[0] = h0, c0
    for t in range(T):
        z = Z[t] + H[t] @ Wh
        G[t] = np.concatenate([sigmoid(z[:, :2 * R]), np.tanh(z[:, 2 * R:3 * R]),
                               sigmoid(z[:, 3 * R:])], axis=1)
        i, f, g, o = np.split(G[t], 4, axis=1)
        C[t + 1] = f * C[t] + i * g
        H[t + 1] = o * np.tanh(C[t + 1])
    scale = B if reduction == "mean" else 1
    value, d3 = output_loss(loss, activations[2], H[1:] @ W3 + b3, y, scale)   # [T, B, O]
    i, f, g, o = np.split(G, 4, axis=2)                  # [T, B, R] each
    TC = np.tanh(C[1:])
    dH_out = d3 @ W3.T                                   # every step's dL/dh from its output
    dZ = np.empty_like(Z)                                # [T, B, 4R]
    dh, dc = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        dh = dH_out[t] + dh
        dc = dh * o[t] * (1.0 - TC[t] ** 2) + dc
        dZ[t] = np.concatenate([dc * g[t] * i[t] * (1.0 - i[t]),
                                dc * C[t] * f[t] * (1.0 - f[t]),
                                dc * i[t] * (1.0 - g[t] ** 2),
                                dh * TC[t] * o[t] * (1.0 - o[t])], axis=1)
        dh, dc = dZ[t] @ Wh.T, dc * f[t]
    d1 = (dZ @ Wx.T) * df1(z1, a)                        # [T, B, H]
    grads = {"W1": np.einsum("tbi,tbh->ih", x, d1), "b1": d1.sum(axis=(0, 1)),
             "Wx": np.einsum("tbh,tbk->hk", a, dZ), "Wh": np.einsum("tbr,tbk->rk", H[:-1], dZ),
             "b": dZ.sum(axis=(0, 1)), "W3": np.einsum("tbr,tbo->ro", H[1:], d3),
             "b3": d3.sum(axis=(0, 1)), "x": d1 @ W1.T, "h0": dh, "c0": dc}
    return value, grads, H[-1], C[-1]
