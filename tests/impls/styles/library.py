"""NumPy-library style: layers that make their own parameters when constructed (from sizes
given as keyword arguments), keep them as attributes (biases as [1, n] rows, broadcast),
accumulate gradients into attributes until their own reset method (each layer names its
own) clears them, and take the whole sequence at once, batch first (the output layer as a
list of steps). Written here.

Declared by library.json beside it (no glue code).
"""
import numpy as np


class Dense:
    """y = x W + b over a whole sequence [N, T, D]. Its gradient buffers are made by
    zero_grad, which the training loop calls before each backward."""

    def __init__(self, n_in, n_out, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out))
        self.b = np.zeros((1, n_out))
        self.dW = self.db = None

    def zero_grad(self):
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dy):
        N, T, D = self.x.shape
        self.dW = self.dW + self.x.reshape(N * T, D).T @ dy.reshape(N * T, -1)
        self.db = self.db + dy.sum(axis=(0, 1)).reshape(1, -1)
        return dy @ self.W.T


class SequenceDense:
    """y_t = h_t W + b applied to a sequence given as a list of steps [N, D]: forward keeps
    every step's input; backward takes the list of every step's upstream gradient, pairs it
    with the stored inputs and returns the list of input gradients. Its gradient buffers are
    made by zero_grad, as Dense's."""

    def __init__(self, n_in, n_out):
        self.W = np.zeros((n_in, n_out))
        self.b = np.zeros((1, n_out))
        self.dW = self.db = None

    def zero_grad(self):
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, hs):
        self.hs = list(hs)
        return [h @ self.W + self.b for h in self.hs]

    def backward(self, dys):
        dhs = []
        for h, dy in zip(self.hs, dys):
            self.dW = self.dW + h.T @ dy
            self.db = self.db + dy.sum(axis=0, keepdims=True)
            dhs.append(dy @ self.W.T)
        return dhs


class StepDense(SequenceDense):
    """SequenceDense called once per step (forward(h_t) keeps each step's input); its
    backward still takes the list of every step's upstream gradient."""

    def zero_grad(self):
        super().zero_grad()
        self.hs = []

    def forward(self, h_t):
        self.hs.append(h_t)
        return h_t @ self.W + self.b


class SimpleRNN:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + bh), batch first; the initial state is given with
    set_initial_state, its gradient left in dh0."""

    def __init__(self, n_in, n_hidden):
        self.Wx = np.zeros((n_in, n_hidden))
        self.Wh = np.eye(n_hidden)
        self.bh = np.zeros((1, n_hidden))
        self.h0 = self.h = None
        self.clear_grads()

    def clear_grads(self):
        self.dWx, self.dWh = np.zeros_like(self.Wx), np.zeros_like(self.Wh)
        self.dbh, self.dh0 = np.zeros_like(self.bh), None

    def set_initial_state(self, h0):
        self.h0 = h0

    def forward(self, xs):
        N, T, _ = xs.shape
        h = self.h0 if self.h0 is not None else np.zeros((N, self.Wh.shape[0]))
        self.xs, self.hs = xs, [h]
        for t in range(T):
            h = np.tanh(xs[:, t] @ self.Wx + h @ self.Wh + self.bh)
            self.hs.append(h)
        self.h = h
        return np.stack(self.hs[1:], axis=1)

    def backward(self, dhs):
        N, T, _ = dhs.shape
        dxs = np.empty_like(self.xs)
        dh_next = np.zeros_like(self.hs[0])
        for t in reversed(range(T)):
            dz = (dhs[:, t] + dh_next) * (1.0 - self.hs[t + 1] ** 2)
            self.dWx += self.xs[:, t].T @ dz
            self.dWh += self.hs[t].T @ dz
            self.dbh += dz.sum(axis=0, keepdims=True)
            dh_next = dz @ self.Wh.T
            dxs[:, t] = dz @ self.Wx.T
        self.dh0 = dh_next
        return dxs


class SoftmaxCE:
    """Softmax cross-entropy of logits [N, T, V] and ids [N, T], mean over batch and time."""

    def forward(self, logits, ids):
        N, T, V = logits.shape
        flat = logits.reshape(N * T, V)
        p = np.exp(flat - flat.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        self.p, self.ids, self.shape = p, ids.reshape(N * T), (N, T, V)
        return -np.mean(np.log(p[np.arange(N * T), self.ids]))

    def backward(self):
        N, T, V = self.shape
        d = self.p.copy()
        d[np.arange(N * T), self.ids] -= 1.0
        return (d / (N * T)).reshape(N, T, V)
