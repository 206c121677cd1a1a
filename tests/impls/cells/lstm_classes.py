"""A correct dense -> LSTM -> dense BPTT written with per-step objects: one ``Dense`` and one
``LSTMStep`` object per time step, each keeping its own cache, all sharing one set of
weights and adding into one set of gradients (``Shared``); the window's backward calls the
steps' ``backward`` in reverse order, handing each the state derivatives of the one after."""
import numpy as np

from tests.impls.cells.heads import NONLINEAR, output_loss, sigmoid


class Shared:
    """The weights every step uses and the gradients every step adds into."""

    def __init__(self, params):
        self.p = params
        self.grads = {n: np.zeros_like(v) for n, v in params.items()}


class Dense:
    """out = f(x W + b) for one step."""

    def __init__(self, shared, W, b, activation):
        self.shared, self.W, self.b = shared, W, b
        self.f, self.df = NONLINEAR[activation]

    def forward(self, x):
        self.x = x
        self.z = x @ self.shared.p[self.W] + self.shared.p[self.b]
        self.out = self.f(self.z)
        return self.out

    def backward(self, dout):
        dz = dout * self.df(self.z, self.out)
        self.shared.grads[self.W] += self.x.T @ dz
        self.shared.grads[self.b] += dz.sum(axis=0)
        return dz @ self.shared.p[self.W].T


class LSTMStep:
    """One step of the cell: (h, c) from (a, h_prev, c_prev), and back."""

    def __init__(self, shared):
        self.shared = shared

    def forward(self, a, h_prev, c_prev):
        p = self.shared.p
        R = p["Wh"].shape[0]
        z = a @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
        self.i, self.f = sigmoid(z[:, :R]), sigmoid(z[:, R:2 * R])
        self.g, self.o = np.tanh(z[:, 2 * R:3 * R]), sigmoid(z[:, 3 * R:])
        self.a, self.h_prev, self.c_prev = a, h_prev, c_prev
        c = self.f * c_prev + self.i * self.g
        self.tc = np.tanh(c)
        return self.o * self.tc, c

    def backward(self, dh, dc):
        """dh, dc: dL/dh_t and dL/dc_t from everything after; returns (da, dh_prev, dc_prev)."""
        p, grads = self.shared.p, self.shared.grads
        i, f, g, o = self.i, self.f, self.g, self.o
        dc = dc + dh * o * (1.0 - self.tc ** 2)
        dz = np.concatenate([dc * g * i * (1.0 - i), dc * self.c_prev * f * (1.0 - f),
                             dc * i * (1.0 - g * g), dh * self.tc * o * (1.0 - o)], axis=1)
        grads["Wx"] += self.a.T @ dz
        grads["Wh"] += self.h_prev.T @ dz
        grads["b"] += dz.sum(axis=0)
        return dz @ p["Wx"].T, dz @ p["Wh"].T, dc * f


def loss_and_grads(params, x, y, h0, c0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    shared = Shared(params)
    T, B, _ = x.shape
    scale = B if reduction == "mean" else 1
    steps, total, h, c = [], 0.0, h0, c0
    for t in range(T):
        first, cell = Dense(shared, "W1", "b1", activations[0]), LSTMStep(shared)
        last = Dense(shared, "W3", "b3", "identity")     # logits; f3 is in the loss
        h, c = cell.forward(first.forward(x[t]), h, c)
        value, d3 = output_loss(loss, activations[2], last.forward(h), y[t], scale)
        total += value
        steps.append((first, cell, last, d3))
    dx = np.empty_like(x)
    dh, dc = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        first, cell, last, d3 = steps[t]
        da, dh, dc = cell.backward(last.backward(d3) + dh, dc)
        dx[t] = first.backward(da)
    grads = dict(shared.grads, x=dx, h0=dh, c0=dc)
    return total, grads, h, c
