"""A correct dense -> GRU -> dense BPTT written the way students write it: lists of
per-step caches, one gate at a time (l2 loss, tanh f1, identity f3, mean or sum); the
reset before the recurrent product, or after it when params hold bh."""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    if loss != "l2" or tuple(activations) != ("tanh", "tanh", "identity"):
        raise NotImplementedError("only l2 with tanh, tanh, identity")
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in ("W1", "b1", "Wx", "Wh", "b", "W3", "b3"))
    after = "bh" in params
    bh = params["bh"] if after else np.zeros_like(b)
    T, B, _ = x.shape
    R = Wh.shape[0]
    scale = B if reduction == "mean" else 1
    h, total, steps = h0, 0.0, []
    for t in range(T):
        a = np.tanh(x[t] @ W1 + b1)
        zx = a @ Wx + b
        uh = h @ Wh + bh
        r = _sigmoid(zx[:, :R] + uh[:, :R])
        z = _sigmoid(zx[:, R:2 * R] + uh[:, R:2 * R])
        if after:
            n = np.tanh(zx[:, 2 * R:] + r * uh[:, 2 * R:])
        else:
            n = np.tanh(zx[:, 2 * R:] + (r * h) @ Wh[:, 2 * R:])
        h_new = (1 - z) * n + z * h
        err = h_new @ W3 + b3 - y[t]
        total += 0.5 * np.sum(err ** 2) / scale
        steps.append((x[t], a, h, uh, r, z, n, h_new, err / scale))
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
        d1 = (dzx @ Wx.T) * (1 - a ** 2)
        grads["W1"] += x_t.T @ d1
        grads["b1"] += d1.sum(0)
        dx[t] = d1 @ W1.T
        dh_next = dh_prev
    grads.update(x=dx, h0=dh_next)
    return total, grads, h
