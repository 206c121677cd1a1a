"""Cell style: per-step cells that keep their own per-step lists and add their
gradients into a dict; the model's default options (tanh, tanh, identity; l2, mean).
Written here. ``BUG`` (a module global the tests set) injects one mistake.
"""
import numpy as np

BUG = None        # None, "dx_missing_f1", "dx_skips_f1", "l2_without_half", "dU_transposed"


class Dense:
    def __init__(self, W, b, activation="identity"):
        self.params = {"W": W, "b": b}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.activation, self.inputs, self.outputs = activation, [], []

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0.0

    def forward(self, x):
        out = x @ self.params["W"] + self.params["b"]
        if self.activation == "tanh":
            out = np.tanh(out)
        self.inputs.append(x)
        self.outputs.append(out)
        return out

    def backward(self, dout):
        x, out = self.inputs.pop(), self.outputs.pop()
        upstream = dout
        if self.activation == "tanh" and BUG != "dx_missing_f1":
            dout = dout * (1.0 - out ** 2)
        self.grads["W"] += x.T @ dout
        self.grads["b"] += dout.sum(axis=0)
        if BUG == "dx_skips_f1":
            return upstream @ self.params["W"].T   # dx without tanh', dW and db with it
        return dout @ self.params["W"].T


class RNNCell:
    def __init__(self, Wx, Wh, b):
        self.params = {"Wx": Wx, "Wh": Wh, "b": b}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.steps = []

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0.0

    def forward(self, x, h_prev):
        p = self.params
        h = np.tanh(x @ p["Wx"] + h_prev @ p["Wh"] + p["b"])
        self.steps.append((x, h_prev, h))
        return h

    def backward(self, dh):
        x, h_prev, h = self.steps.pop()
        dz = dh * (1.0 - h ** 2)
        self.grads["Wx"] += x.T @ dz
        self.grads["Wh"] += (dz.T @ h_prev) if BUG == "dU_transposed" else h_prev.T @ dz
        self.grads["b"] += dz.sum(axis=0)
        return dz @ self.params["Wx"].T, dz @ self.params["Wh"].T


def l2_loss(z, y):
    """0.5 * sum of squares, averaged over the batch: (loss, dz)."""
    err = z - y
    if BUG == "l2_without_half":
        return np.sum(err ** 2) / len(z), 2.0 * err / len(z)
    return 0.5 * np.sum(err ** 2) / len(z), err / len(z)
