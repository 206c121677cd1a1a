"""A correct dense -> GRU -> dense BPTT written with per-step objects (reset before the
recurrent product, or after it when params hold bh): one ``Dense`` and one ``GRUStep``
object per time step, each keeping its own cache, sharing one set of weights and adding
into one set of gradients; the window's backward calls the steps in reverse order."""
import numpy as np

from tests.impls.cells.heads import output_loss, sigmoid
from tests.impls.cells.lstm_classes import Dense, Shared


class GRUStep:
    """One step of the cell: h from (a, h_prev), and back."""

    def __init__(self, shared):
        self.shared = shared
        self.after = "bh" in shared.p

    def forward(self, a, h_prev):
        p = self.shared.p
        R = p["Wh"].shape[0]
        wx = a @ p["Wx"] + p["b"]                         # [B, 3R]
        wh = h_prev @ p["Wh"] + (p["bh"] if self.after else 0.0)
        self.r = sigmoid(wx[:, :R] + wh[:, :R])
        self.z = sigmoid(wx[:, R:2 * R] + wh[:, R:2 * R])
        if self.after:
            self.u_n = wh[:, 2 * R:]
            self.n = np.tanh(wx[:, 2 * R:] + self.r * self.u_n)
        else:
            self.n = np.tanh(wx[:, 2 * R:] + (self.r * h_prev) @ p["Wh"][:, 2 * R:])
        self.a, self.h_prev = a, h_prev
        return (1.0 - self.z) * self.n + self.z * h_prev

    def backward(self, dh):
        """dh: dL/dh_t from everything after; returns (da, dh_prev)."""
        p, grads = self.shared.p, self.shared.grads
        R = p["Wh"].shape[0]
        r, z, n, h_prev = self.r, self.z, self.n, self.h_prev
        dzn = dh * (1.0 - z) * (1.0 - n * n)
        dzz = dh * (h_prev - n) * z * (1.0 - z)
        dh_prev = dh * z
        if self.after:
            dzr = dzn * self.u_n * r * (1.0 - r)
            dwh = np.concatenate([dzr, dzz, dzn * r], axis=1)     # of h_prev Wh + bh
            grads["Wh"] += h_prev.T @ dwh
            grads["bh"] += dwh.sum(axis=0)
            dh_prev += dwh @ p["Wh"].T
        else:
            drh = dzn @ p["Wh"][:, 2 * R:].T                      # of r * h_prev
            dzr = drh * h_prev * r * (1.0 - r)
            drz = np.concatenate([dzr, dzz], axis=1)
            grads["Wh"][:, :2 * R] += h_prev.T @ drz
            grads["Wh"][:, 2 * R:] += (r * h_prev).T @ dzn
            dh_prev += drh * r + drz @ p["Wh"][:, :2 * R].T
        dwx = np.concatenate([dzr, dzz, dzn], axis=1)
        grads["Wx"] += self.a.T @ dwx
        grads["b"] += dwx.sum(axis=0)
        return dwx @ p["Wx"].T, dh_prev


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    shared = Shared(params)
    T, B, _ = x.shape
    scale = B if reduction == "mean" else 1
    steps, total, h = [], 0.0, h0
    for t in range(T):
        first, cell = Dense(shared, "W1", "b1", activations[0]), GRUStep(shared)
        last = Dense(shared, "W3", "b3", "identity")      # logits; f3 is in the loss
        h = cell.forward(first.forward(x[t]), h)
        value, d3 = output_loss(loss, activations[2], last.forward(h), y[t], scale)
        total += value
        steps.append((first, cell, last, d3))
    dx = np.empty_like(x)
    dh = np.zeros_like(h0)
    for t in reversed(range(T)):
        first, cell, last, d3 = steps[t]
        da, dh = cell.backward(last.backward(d3) + dh)
        dx[t] = first.backward(da)
    return total, dict(shared.grads, x=dx, h0=dh), h
