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


class TimeLSTM:
    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.stateful = stateful
        self.h = self.c = self.dh = None

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h = self.c = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=xs.dtype)
        hs = np.empty((N, T, H), dtype=xs.dtype)
        self.xs, self.steps = xs, []
        for t in range(T):
            A = xs[:, t] @ Wx + self.h @ Wh + b                  # [N, 4H]: f, g, i, o
            f, g = sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H])
            i, o = sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
            c_prev, h_prev = self.c, self.h
            self.c = f * c_prev + g * i
            tanh_c = np.tanh(self.c)
            self.h = o * tanh_c
            self.steps.append((h_prev, c_prev, self.c, f, g, i, o, tanh_c))
            hs[:, t] = self.h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        dxs = np.empty_like(self.xs)
        dWx, dWh, db = (np.zeros_like(p) for p in (Wx, Wh, b))
        dh, dc = 0.0, 0.0
        for t in reversed(range(T)):
            h_prev, c_prev, c_next, f, g, i, o, tanh_c = self.steps[t]
            dh_t = dhs[:, t] + dh
            ds = dc + dh_t * o * (1.0 - tanh_c ** 2)
            df = ds * (c_next if BUG == "lstm_df_with_c_t" else c_prev)
            dA = np.hstack((df * f * (1.0 - f), ds * i * (1.0 - g ** 2),
                            ds * g * i * (1.0 - i), dh_t * tanh_c * o * (1.0 - o)))
            dWx += self.xs[:, t].T @ dA
            dWh += h_prev.T @ dA
            db += dA.sum(axis=0)
            dxs[:, t] = dA @ Wx.T
            dh, dc = dA @ Wh.T, ds * f
        for p, g in zip(self.grads, (dWx, dWh, db)):
            p[...] = g
        self.dh = dh
        return dxs


class TimeGRU:
    reset_after = False

    def __init__(self, Wx, Wh, b, stateful=True):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.stateful = stateful
        self.h = self.dh = None

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)
        hs = np.empty((N, T, H), dtype=xs.dtype)
        self.xs, self.steps = xs, []
        for t in range(T):
            h_prev = self.h
            X = xs[:, t] @ Wx + b                                # [N, 3H]: z, r, n
            z = sigmoid(X[:, :H] + h_prev @ Wh[:, :H])
            r = sigmoid(X[:, H:2 * H] + h_prev @ Wh[:, H:2 * H])
            if self.reset_after:
                n = np.tanh(X[:, 2 * H:] + r * (h_prev @ Wh[:, 2 * H:]))
            else:
                n = np.tanh(X[:, 2 * H:] + (r * h_prev) @ Wh[:, 2 * H:])
            self.h = (1.0 - z) * h_prev + z * n
            self.steps.append((h_prev, z, r, n))
            hs[:, t] = self.h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        dxs = np.empty_like(self.xs)
        dWx, dWh, db = (np.zeros_like(p) for p in (Wx, Wh, b))
        dh = 0.0
        for t in reversed(range(T)):
            h_prev, z, r, n = self.steps[t]
            dh_t = dhs[:, t] + dh
            dn = dh_t * z * (1.0 - n ** 2)                       # before tanh
            dz = dh_t * (n - h_prev) * z * (1.0 - z)
            if self.reset_after:
                du = dn * r                                      # d(h_prev Wh_n)
                dr = dn * (h_prev @ Wh[:, 2 * H:]) * r * (1.0 - r)
                back_n = du @ Wh[:, 2 * H:].T
            else:
                drh = dn @ Wh[:, 2 * H:].T                       # d(r * h_prev)
                dr = drh * h_prev * r * (1.0 - r)
                back_n = drh * r
            dA = np.hstack((dz, dr, dn))                         # [N, 3H]
            dWx += self.xs[:, t].T @ dA
            dWh[:, :2 * H] += h_prev.T @ dA[:, :2 * H]
            dWh[:, 2 * H:] += h_prev.T @ du if self.reset_after else (r * h_prev).T @ dn
            db += dA.sum(axis=0)
            dxs[:, t] = dA @ Wx.T
            dh = dA[:, :2 * H] @ Wh[:, :2 * H].T + back_n
            if BUG != "gru_no_direct_path":
                dh = dh + dh_t * (1.0 - z)
        for p, g in zip(self.grads, (dWx, dWh, db)):
            p[...] = g
        self.dh = dh
        return dxs


class TimeGRUAfter(TimeGRU):
    reset_after = True
