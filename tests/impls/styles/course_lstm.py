"""Course style LSTM: functional layers with caches, batch first ([N, T, D]), written here
from the style's public description: ``lstm_step_forward/backward`` and
``lstm_forward/backward``, the four gate blocks in the order i, f, o, g, the cell state
starting at zero in every ``lstm_forward`` call and never returned. The dense layers and the
loss are the course style's RNN file's (``course.py``), as in one ``rnn_layers.py``.

``BUG`` (a module global the tests set) injects one mistake people make in this style;
``GATES`` is the order this code slices its gate blocks in (a test may set another).
"""
import numpy as np

from course import (temporal_affine_backward, temporal_affine_forward,  # noqa: F401
                    temporal_softmax_loss)

BUG = None        # None, "no_dnext_c", "no_tanh_prime_c"
GATES = "ifog"


def sigmoid(z):
    """1 / (1 + e^-z), without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _blocks(a, H):
    """{gate letter: its [N, H] block of a [N, 4H]} in this code's order GATES."""
    return {g: a[:, k * H:(k + 1) * H] for k, g in enumerate(GATES)}


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """x [N, D], prev_h, prev_c [N, H], Wx [D, 4H], Wh [H, 4H], b [4H] -> next_h, next_c, cache."""
    H = prev_h.shape[1]
    z = _blocks(x @ Wx + prev_h @ Wh + b, H)
    i, f, o, g = sigmoid(z["i"]), sigmoid(z["f"]), sigmoid(z["o"]), np.tanh(z["g"])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """-> dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    through_h = dnext_h * o if BUG == "no_tanh_prime_c" else dnext_h * o * (1.0 - tanh_c ** 2)
    dc = dnext_c + through_h
    d = {"i": dc * g * i * (1.0 - i), "f": dc * prev_c * f * (1.0 - f),
         "o": dnext_h * tanh_c * o * (1.0 - o), "g": dc * i * (1.0 - g ** 2)}
    da = np.concatenate([d[k] for k in GATES], axis=1)          # [N, 4H]
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """x [N, T, D], h0 [N, H] -> h [N, T, H], cache. The cell state starts at zero."""
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=x.dtype)
    prev_h, prev_c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """dh [N, T, H] -> dx, dh0, dWx, dWh, db."""
    N, T, H = dh.shape
    x0, _, _, Wx, Wh = cache[0][:5]
    dx = np.zeros((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros((N, H), dh.dtype), np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        dnext_c = np.zeros_like(dprev_c) if BUG == "no_dnext_c" else dprev_c
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dnext_c, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db
