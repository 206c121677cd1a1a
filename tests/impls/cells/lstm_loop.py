"""A correct dense -> LSTM -> dense BPTT written the way students write it: lists of
per-step caches, one gate at a time, one step's loss at a time (every loss and
activation of the contract); it stands alone, as a student's file does."""
import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))             # no overflow for large |z|


# f and f' written from f's output, as the course notes do
ACT = {"tanh": (np.tanh, lambda f: 1.0 - f ** 2),
       "sigmoid": (sigmoid, lambda f: f * (1.0 - f)),
       "relu": (lambda z: np.maximum(z, 0.0), lambda f: (f > 0).astype(f.dtype)),
       "identity": (lambda z: z, np.ones_like)}


def step_loss(loss, f3, z3, y_t, scale):
    """One step's loss of logits z3 [B, O] and its derivative dL/dz3."""
    if loss == "l2":
        f, df = ACT[f3]
        yhat = f(z3)
        err = yhat - y_t
        return 0.5 * np.sum(err ** 2) / scale, err * df(yhat) / scale
    if loss == "ce":                                   # y_t: class ids [B]
        p = np.exp(z3 - z3.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y_t))
        value = -np.sum(np.log(p[rows, y_t])) / scale
        p[rows, y_t] -= 1.0
        return value, p / scale
    return np.sum(np.logaddexp(0.0, z3) - y_t * z3) / scale, (sigmoid(z3) - y_t) / scale


def loss_and_grads(params, x, y, h0, c0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    f1, df1 = ACT[activations[0]]
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    T, B, _ = x.shape
    R = Wh.shape[0]
    scale = B if reduction == "mean" else 1
    h, c, total, steps = h0, c0, 0.0, []
    for t in range(T):
        a = f1(x[t] @ W1 + b1)
        z = a @ Wx + h @ Wh + b
        i, f = sigmoid(z[:, :R]), sigmoid(z[:, R:2 * R])
        g, o = np.tanh(z[:, 2 * R:3 * R]), sigmoid(z[:, 3 * R:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        value, d3 = step_loss(loss, activations[2], h_new @ W3 + b3, y[t], scale)
        total += value
        steps.append((x[t], a, h, c, i, f, g, o, c_new, h_new, d3))
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
        d1 = (dz @ Wx.T) * df1(a)
        grads["W1"] += x_t.T @ d1
        grads["b1"] += d1.sum(0)
        dx[t] = d1 @ W1.T
    grads.update(x=dx, h0=dh_next, c0=dc_next)
    return total, grads, h, c
