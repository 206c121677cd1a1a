"""A correct dense -> LSTM -> dense BPTT written the way students write it: lists of
per-step caches, one gate at a time (l2 loss, tanh f1, identity f3, mean or sum)."""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def loss_and_grads(params, x, y, h0, c0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    if loss != "l2" or tuple(activations) != ("tanh", "tanh", "identity"):
        raise NotImplementedError("only l2 with tanh, tanh, identity")
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    T, B, _ = x.shape
    R = Wh.shape[0]
    scale = B if reduction == "mean" else 1
    h, c, total, steps = h0, c0, 0.0, []
    for t in range(T):
        a = np.tanh(x[t] @ W1 + b1)
        z = a @ Wx + h @ Wh + b
        i, f = _sigmoid(z[:, :R]), _sigmoid(z[:, R:2 * R])
        g, o = np.tanh(z[:, 2 * R:3 * R]), _sigmoid(z[:, 3 * R:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        err = h_new @ W3 + b3 - y[t]
        total += 0.5 * np.sum(err ** 2) / scale
        steps.append((x[t], a, h, c, i, f, g, o, c_new, h_new, err / scale))
        h, c = h_new, c_new
    grads = {n: np.zeros_like(params[n]) for n in params}
    dx = np.zeros_like(x)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        x_t, a, h_prev, c_prev, i, f, g, o, c_t, h_t, d3 = steps[t]
        grads["W3"] += h_t.T @ d3
        grads["b3"] += d3.sum(0)
        dh = d3 @ W3.T + dh_next
        tc = np.tanh(c_t)
        dc = dh * o * (1 - tc ** 2) + dc_next
        dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        grads["Wx"] += a.T @ dz
        grads["Wh"] += h_prev.T @ dz
        grads["b"] += dz.sum(0)
        dh_next, dc_next = dz @ Wh.T, dc * f
        d1 = (dz @ Wx.T) * (1 - a ** 2)
        grads["W1"] += x_t.T @ d1
        grads["b1"] += d1.sum(0)
        dx[t] = d1 @ W1.T
    grads.update(x=dx, h0=dh_next, c0=dc_next)
    return total, grads, h, c
