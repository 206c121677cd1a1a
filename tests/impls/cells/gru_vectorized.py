"""A correct dense -> GRU -> dense BPTT written with whole-window matrix operations (reset
before the recurrent product, or after it when params hold bh): the dense layers and the
input's part of the three blocks for every step in one matmul, only the recurrence step
by step, every weight gradient one einsum over time."""
import numpy as np

from tests.impls.cells.heads import NONLINEAR, output_loss, sigmoid


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    after = "bh" in params
    f1, df1 = NONLINEAR[activations[0]]
    T, B, _ = x.shape
    R = Wh.shape[0]
    z1 = x @ W1 + b1                                     # [T, B, H]
    a = f1(z1)
    X = a @ Wx + b                                       # [T, B, 3R], the input's part
    U = np.zeros_like(X)                                 # h_{t-1} Wh (+ bh); before: r, z only
    Gr, Gz, Gn = (np.empty((T, B, R), W1.dtype) for _ in range(3))
    H = np.empty((T + 1, B, R), W1.dtype)
    H[0] = h0
    for t in range(T):
        if after:
            U[t] = H[t] @ Wh + params["bh"]
        else:
            U[t, :, :2 * R] = H[t] @ Wh[:, :2 * R]
        Gr[t], Gz[t] = np.split(sigmoid(X[t, :, :2 * R] + U[t, :, :2 * R]), 2, axis=1)
        n_in = Gr[t] * U[t, :, 2 * R:] if after else (Gr[t] * H[t]) @ Wh[:, 2 * R:]
        Gn[t] = np.tanh(X[t, :, 2 * R:] + n_in)
        H[t + 1] = (1.0 - Gz[t]) * Gn[t] + Gz[t] * H[t]
    scale = B if reduction == "mean" else 1
    value, d3 = output_loss(loss, activations[2], H[1:] @ W3 + b3, y, scale)   # [T, B, O]
    dH_out = d3 @ W3.T
    dX = np.empty_like(X)                                # of a Wx + b, [T, B, 3R]
    dU = np.zeros_like(X)                                # of the recurrent product
    dh = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dH_out[t] + dh
        dzn = dh * (1.0 - Gz[t]) * (1.0 - Gn[t] ** 2)
        dzz = dh * (H[t] - Gn[t]) * Gz[t] * (1.0 - Gz[t])
        if after:
            dzr = dzn * U[t, :, 2 * R:] * Gr[t] * (1.0 - Gr[t])
            dU[t] = np.concatenate([dzr, dzz, dzn * Gr[t]], axis=1)
            dh = dh * Gz[t] + dU[t] @ Wh.T
        else:
            d_rh = dzn @ Wh[:, 2 * R:].T                 # of r * h_{t-1}
            dzr = d_rh * H[t] * Gr[t] * (1.0 - Gr[t])
            dU[t] = np.concatenate([dzr, dzz, dzn], axis=1)
            dh = dh * Gz[t] + d_rh * Gr[t] + dU[t, :, :2 * R] @ Wh[:, :2 * R].T
        dX[t] = np.concatenate([dzr, dzz, dzn], axis=1)
    dWh = np.einsum("tbr,tbk->rk", H[:-1], dU)
    if not after:                                        # Wh_n multiplies r * h_{t-1}
        dWh[:, 2 * R:] = np.einsum("tbr,tbk->rk", Gr * H[:-1], dU[..., 2 * R:])
    d1 = (dX @ Wx.T) * df1(z1, a)
    grads = {"W1": np.einsum("tbi,tbh->ih", x, d1), "b1": d1.sum(axis=(0, 1)),
             "Wx": np.einsum("tbh,tbk->hk", a, dX), "Wh": dWh, "b": dX.sum(axis=(0, 1)),
             "W3": np.einsum("tbr,tbo->ro", H[1:], d3), "b3": d3.sum(axis=(0, 1)),
             "x": d1 @ W1.T, "h0": dh}
    if after:
        grads["bh"] = dU.sum(axis=(0, 1))
    return value, grads, H[-1]
