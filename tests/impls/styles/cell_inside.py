"""Per-step cell that keeps its state and the future's state derivative inside (forward(x_t),
backward(dh_t) -> dx_t), two biases, parameters and gradients in dicts; written here.
Its initial state is the attribute a0 (zeros when None); after the first step's backward,
dA_next holds the derivative of the loss with respect to it."""
import numpy as np


class Cell:
    def __init__(self, n_out):
        self.n_out = n_out
        self.parameters, self.gradients = {}, {}
        self.a0 = None
        self.flush()

    def flush(self):
        self.A, self.Z, self.X = [], [], []
        self.dA_next = None
        for k, v in self.parameters.items():
            self.gradients[k] = np.zeros_like(v)

    def forward(self, x):
        p = self.parameters
        if self.A:
            a_prev = self.A[-1]
        else:
            a_prev = self.a0 if self.a0 is not None else np.zeros((x.shape[0], self.n_out))
        z = a_prev @ p["Waa"] + p["ba"] + x @ p["Wax"] + p["bx"]
        self.X.append(x)
        self.Z.append(a_prev)
        self.A.append(np.tanh(z))
        return self.A[-1]

    def backward(self, dA):
        p, g = self.parameters, self.gradients
        a, a_prev, x = self.A.pop(), self.Z.pop(), self.X.pop()
        if self.dA_next is not None:
            dA = dA + self.dA_next
        dz = dA * (1.0 - a ** 2)
        g["Waa"] += a_prev.T @ dz
        g["Wax"] += x.T @ dz
        g["ba"] += dz.sum(axis=0)
        g["bx"] += dz.sum(axis=0)
        self.dA_next = dz @ p["Waa"].T
        return dz @ p["Wax"].T


class Dense:
    def __init__(self, W, b):
        self.parameters = {"W": W, "b": b}
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.inputs = []

    def flush(self):
        self.inputs = []
        for g in self.gradients.values():
            g[...] = 0.0

    def forward(self, x):
        self.inputs.append(x)
        return x @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dout):
        x = self.inputs.pop()
        self.gradients["W"] += x.T @ dout
        self.gradients["b"] += dout.sum(axis=0)
        return dout @ self.parameters["W"].T


def l2_loss(z, y):
    err = z - y
    return 0.5 * np.sum(err ** 2) / len(z), err / len(z)
