"""Course style: functional layers with caches, batch first ([N, T, D]), written here.

``BUG`` (a module global the tests set) injects one mistake people make in this style.
"""
import numpy as np

BUG = None        # None, "first_step_last_state", "float32_buffer", "dh_next_U_untransposed",
                  # "no_dh_next", "dWh_from_next_h", "dh_next_halved"


def temporal_affine_forward(x, w, b):
    """x [N, T, D], w [D, M], b [M] -> out [N, T, M], cache."""
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    N, T, D = x.shape
    dx = dout @ w.T
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, -1)
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1.0 - next_h ** 2)
    dprev_h = dz @ (Wh if BUG == "dh_next_U_untransposed" else Wh.T)
    dWh = (next_h if BUG == "dWh_from_next_h" else prev_h).T @ dz
    return dz @ Wx.T, dprev_h, x.T @ dz, dWh, dz.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """x [N, T, D], h0 [N, H] -> h [N, T, H], cache."""
    N, T, _ = x.shape
    dtype = np.float32 if BUG == "float32_buffer" else x.dtype
    h = np.zeros((N, T, h0.shape[1]), dtype=dtype)
    prev, caches = h0, []
    for t in range(T):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, (caches, h)


def rnn_backward(dh, cache):
    caches, h = cache
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.zeros((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, dh.dtype)
    dprev = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        up = dh[:, t] if BUG == "no_dh_next" else dh[:, t] + dprev
        if BUG == "dh_next_halved":
            up = dh[:, t] + 0.5 * dprev                 # no candidate makes this mistake
        c = caches[t]
        if BUG == "first_step_last_state":
            c = (c[0], h[:, t - 1]) + c[2:]        # h[:, -1] at t = 0: the last state, not h0
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(up, c)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db


def temporal_softmax_loss(x, y, mask):
    """x [N, T, V] scores, y [N, T] ids, mask [N, T]: summed over T, averaged over N."""
    N, T, V = x.shape
    flat = x.reshape(N * T, V)
    p = np.exp(flat - flat.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ids, m = y.reshape(N * T), mask.reshape(N * T)
    loss = -np.sum(m * np.log(p[np.arange(N * T), ids])) / N
    dx = p.copy()
    dx[np.arange(N * T), ids] -= 1.0
    dx *= m[:, None] / N
    return loss, dx.reshape(N, T, V)
