"""Textbook style LSTM and GRU: stateful layer classes with params/grads lists (grads written
in place), forward(xs)/backward(dhs), batch first, the state kept inside; written here from
the style's public description. ``TimeLSTM``: gate blocks f, g, i, o; ``set_state(h, c=None)``,
``reset_state()``; attributes h, c, dh (no dc). ``TimeGRU``: blocks z, r, n, one bias, the
reset gate before the recurrent product, ``h = (1-z)*h_prev + z*n``; ``TimeGRUAfter``, the
same with the reset gate after the product (``n = tanh(x Wx_n + b_n + r*(h_prev Wh_n))``).
The dense layers and the loss are the textbook style's RNN file's (``textbook.py``), as in
one ``time_layers.py``.

``BUG`` (a module global the tests set) injects one mistake people make in this style.
"""
import numpy as np

from textbook import TimeAffine, TimeSoftmaxWithLoss  # noqa: F401

BUG = None        # None, "lstm_df_with_c_t", "gru_no_direct_path"


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class _TimeCell:
    """What TimeLSTM and TimeGRU share: params/grads lists, the state, the loops over time.
    A cell's ``_step(X, h_prev)`` (X = x_t Wx + b) returns h_t and keeps what its
    ``_step_back(saved, dh_t, carry)`` needs; that returns (dA, dWh_t, dh_prev, carry)."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.stateful = stateful
        self.h = self.dh = None

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None

    def _start(self, N, H, dtype):
        """The further state (the LSTM's c) at the start of a forward."""

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)
        self._start(N, H, xs.dtype)
        hs = np.empty((N, T, H), dtype=xs.dtype)
        self.xs, self.steps = xs, []
        for t in range(T):
            self.h = self._step(xs[:, t] @ Wx + b, self.h)
            hs[:, t] = self.h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        T = dhs.shape[1]
        dxs = np.empty_like(self.xs)
        dWx, dWh, db = (np.zeros_like(p) for p in (Wx, Wh, b))
        dh, carry = 0.0, 0.0
        for t in reversed(range(T)):
            dA, dWh_t, dh, carry = self._step_back(self.steps[t], dhs[:, t] + dh, carry)
            dWx += self.xs[:, t].T @ dA
            dWh += dWh_t
            db += dA.sum(axis=0)
            dxs[:, t] = dA @ Wx.T
        for p, g in zip(self.grads, (dWx, dWh, db)):
            p[...] = g
        self.dh = dh
        return dxs


class TimeLSTM(_TimeCell):
    c = None

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h = self.c = None

    def _start(self, N, H, dtype):
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=dtype)

    def _step(self, X, h_prev):
        Wh = self.params[1]
        H = Wh.shape[0]
        A = X + h_prev @ Wh                                      # [N, 4H]: f, g, i, o
        f, g = sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H])
        i, o = sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
        c_prev = self.c
        self.c = f * c_prev + g * i
        tanh_c = np.tanh(self.c)
        self.steps.append((h_prev, c_prev, self.c, f, g, i, o, tanh_c))
        return o * tanh_c

    def _step_back(self, saved, dh_t, dc):
        h_prev, c_prev, c_next, f, g, i, o, tanh_c = saved
        ds = dc + dh_t * o * (1.0 - tanh_c ** 2)
        df = ds * (c_next if BUG == "lstm_df_with_c_t" else c_prev)
        dA = np.hstack((df * f * (1.0 - f), ds * i * (1.0 - g ** 2),
                        ds * g * i * (1.0 - i), dh_t * tanh_c * o * (1.0 - o)))
        return dA, h_prev.T @ dA, dA @ self.params[1].T, ds * f


class TimeGRU(_TimeCell):
    reset_after = False

    def __init__(self, Wx, Wh, b, stateful=True):
        super().__init__(Wx, Wh, b, stateful)

    def _step(self, X, h_prev):
        Wh = self.params[1]
        H = Wh.shape[0]                                          # X: blocks z, r, n
        z = sigmoid(X[:, :H] + h_prev @ Wh[:, :H])
        r = sigmoid(X[:, H:2 * H] + h_prev @ Wh[:, H:2 * H])
        if self.reset_after:
            n = np.tanh(X[:, 2 * H:] + r * (h_prev @ Wh[:, 2 * H:]))
        else:
            n = np.tanh(X[:, 2 * H:] + (r * h_prev) @ Wh[:, 2 * H:])
        self.steps.append((h_prev, z, r, n))
        return (1.0 - z) * h_prev + z * n

    def _step_back(self, saved, dh_t, _):
        h_prev, z, r, n = saved
        Wh = self.params[1]
        H = Wh.shape[0]
        dn = dh_t * z * (1.0 - n ** 2)                           # before tanh
        dz = dh_t * (n - h_prev) * z * (1.0 - z)
        if self.reset_after:
            du = dn * r                                          # d(h_prev Wh_n)
            dr = dn * (h_prev @ Wh[:, 2 * H:]) * r * (1.0 - r)
            back_n, dWh_n = du @ Wh[:, 2 * H:].T, h_prev.T @ du
        else:
            drh = dn @ Wh[:, 2 * H:].T                           # d(r * h_prev)
            dr = drh * h_prev * r * (1.0 - r)
            back_n, dWh_n = drh * r, (r * h_prev).T @ dn
        dA = np.hstack((dz, dr, dn))                             # [N, 3H]
        dWh = np.hstack((h_prev.T @ dA[:, :2 * H], dWh_n))
        dh = dA[:, :2 * H] @ Wh[:, :2 * H].T + back_n
        if BUG != "gru_no_direct_path":
            dh = dh + dh_t * (1.0 - z)
        return dA, dWh, dh, 0.0


class TimeGRUAfter(TimeGRU):
    reset_after = True
