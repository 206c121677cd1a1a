"""A correct dense -> GRU -> dense BPTT written the way students write it: lists of
per-step caches, one gate at a time, one step's loss at a time (every loss and
activation of the contract); it stands alone, as a student's file does; the
reset before the recurrent product, or after it when params hold bh."""
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


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    f1, df1 = ACT[activations[0]]
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    after = "bh" in params
    bh = params["bh"] if after else np.zeros_like(b)
    T, B, _ = x.shape
    R = Wh.shape[0]
    scale = B if reduction == "mean" else 1
    h, total, steps = h0, 0.0, []
    for t in range(T):
        a = f1(x[t] @ W1 + b1)
        zx = a @ Wx + b
        uh = h @ Wh + bh
        r = sigmoid(zx[:, :R] + uh[:, :R])
        z = sigmoid(zx[:, R:2 * R] + uh[:, R:2 * R])
        if after:
            n = np.tanh(zx[:, 2 * R:] + r * uh[:, 2 * R:])
        else:
            n = np.tanh(zx[:, 2 * R:] + (r * h) @ Wh[:, 2 * R:])
        h_new = (1 - z) * n + z * h
        value, d3 = step_loss(loss, activations[2], h_new @ W3 + b3, y[t], scale)
        total += value
        steps.append((x[t], a, h, uh, r, z, n, h_new, d3))
        h = h_new
    grads = {k: np.zeros_like(params[k]) for k in params}
    dx = np.zeros_like(x)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        x_t, a, h_prev, uh, r, z, n, h_t, d3 = steps[t]
        grads["W3"] += h_t.T @ d3
        grads["b3"] += d3.sum(0)
        dh = d3 @ W3.T + dh_next
        dn = dh * (1 - z) * (1 - n ** 2)
        dzg = dh * (h_prev - n) * z * (1 - z)
        dh_prev = dh * z
        if after:
            dr = dn * uh[:, 2 * R:] * r * (1 - r)
            duh = np.concatenate([dr, dzg, dn * r], axis=1)
            grads["Wh"] += h_prev.T @ duh
            grads["bh"] += duh.sum(0)
            dh_prev = dh_prev + duh @ Wh.T
        else:
            drh = dn @ Wh[:, 2 * R:].T
            dr = drh * h_prev * r * (1 - r)
            grads["Wh"][:, :R] += h_prev.T @ dr
            grads["Wh"][:, R:2 * R] += h_prev.T @ dzg
            grads["Wh"][:, 2 * R:] += (r * h_prev).T @ dn
            dh_prev = dh_prev + drh * r + dr @ Wh[:, :R].T + dzg @ Wh[:, R:2 * R].T
        dzx = np.concatenate([dr, dzg, dn], axis=1)
        grads["Wx"] += a.T @ dzx
        grads["b"] += dzx.sum(0)
        d1 = (dzx @ Wx.T) * df1(a)
        grads["W1"] += x_t.T @ d1
        grads["b1"] += d1.sum(0)
        dx[t] = d1 @ W1.T
        dh_next = dh_prev
    grads.update(x=dx, h0=dh_next)
    return total, grads, h
