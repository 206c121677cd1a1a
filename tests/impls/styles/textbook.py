"""Textbook style: stateful layer classes with params/grads lists (grads written in
place), forward(xs)/backward(dhs), batch first, the state kept inside. Written here.

``BUG`` (a module global the tests set) injects one mistake people make in this style.
"""
import numpy as np

BUG = None        # None, "grads_not_reset", "dh_next_skips_f2"
DTYPE = None      # None (the inputs' dtype), or the dtype the layers compute and keep grads in


def _c(a):
    """``a`` in the layers' own dtype (DTYPE), when one is set."""
    return a if DTYPE is None else np.asarray(a, DTYPE)


class TimeAffine:
    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W, dtype=DTYPE), np.zeros_like(b, dtype=DTYPE)]
        self.x = None

    def forward(self, x):
        W, b = map(_c, self.params)
        self.x = x = _c(x)
        return x @ W + b

    def backward(self, dout):
        W, dout = _c(self.params[0]), _c(dout)
        N, T, D = self.x.shape
        self.grads[0][...] = self.x.reshape(N * T, D).T @ dout.reshape(N * T, -1)
        self.grads[1][...] = dout.sum(axis=(0, 1))
        return dout @ W.T


class TimeRNN:
    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p, dtype=DTYPE) for p in self.params]
        self.stateful, self.h, self.dh = stateful, None, None

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None

    def forward(self, xs):
        Wx, Wh, b = map(_c, self.params)
        xs = _c(xs)
        self.h = None if self.h is None else _c(self.h)
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=xs.dtype)
        self.xs, self.hprev = xs, []
        hs = np.empty((N, T, H), dtype=xs.dtype)
        for t in range(T):
            self.hprev.append(self.h)
            self.h = np.tanh(xs[:, t] @ Wx + self.h @ Wh + b)
            hs[:, t] = self.h
        self.hs = hs
        return hs

    def backward(self, dhs):
        Wx, Wh, b = map(_c, self.params)
        dhs = _c(dhs)
        N, T, H = dhs.shape
        dxs = np.empty_like(self.xs)
        g = [np.zeros_like(p) for p in (Wx, Wh, b)]
        dh = 0
        for t in reversed(range(T)):
            dz = (dhs[:, t] + dh) * (1.0 - self.hs[:, t] ** 2)
            g[0] += self.xs[:, t].T @ dz
            g[1] += self.hprev[t].T @ dz
            g[2] += dz.sum(axis=0)
            if BUG == "dh_next_skips_f2":
                dh = (dhs[:, t] + dh) @ Wh.T      # the state's derivative before tanh'
            else:
                dh = dz @ Wh.T
            dxs[:, t] = dz @ Wx.T
        for i, gi in enumerate(g):
            if BUG == "grads_not_reset":
                self.grads[i][...] += gi          # the buffers keep the last window's sums
            else:
                self.grads[i][...] = gi
        self.dh = dh
        return dxs


class TimeSoftmaxWithLoss:
    """Softmax cross-entropy averaged over batch AND time; ts [N, T] ids."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, xs, ts):
        N, T, V = xs.shape
        flat = xs.reshape(N * T, V)
        p = np.exp(flat - flat.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        self.cache = (p, ts.reshape(N * T), (N, T, V))
        return -np.mean(np.log(p[np.arange(N * T), ts.reshape(N * T)]))

    def backward(self, dout=1):
        p, ids, (N, T, V) = self.cache
        dx = p.copy()
        dx[np.arange(N * T), ids] -= 1.0
        return (dx * dout / (N * T)).reshape(N, T, V)
