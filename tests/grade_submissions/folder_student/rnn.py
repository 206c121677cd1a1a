"""A correct submission in another style: classes, whole-sequence arrays, einsum."""
import numpy as np

ACT = {
    "tanh": (np.tanh, lambda z, a: 1.0 - a ** 2),
    "sigmoid": (lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)), lambda z, a: a - a * a),
    "relu": (lambda z: z * (z > 0), lambda z, a: np.where(z > 0, 1.0, 0.0).astype(z.dtype)),
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
}


class RNN:
    def __init__(self, params, acts):
        self.p = params
        self.acts = [ACT[a] for a in acts]

    def forward(self, x, h0):
        p = self.p
        (f1, _), (f2, _), _ = self.acts
        self.z1 = np.einsum("tbi,ih->tbh", x, p["W1"]) + p["b1"]
        self.a = f1(self.z1)
        pre = np.einsum("tbh,hr->tbr", self.a, p["W2"]) + p["b2"]
        T = x.shape[0]
        self.hs = np.empty((T + 1,) + h0.shape, dtype=h0.dtype)
        self.hs[0] = h0
        self.z2 = np.empty_like(pre)
        for t in range(T):
            self.z2[t] = pre[t] + self.hs[t] @ p["U"]
            self.hs[t + 1] = f2(self.z2[t])
        self.z3 = np.einsum("tbr,ro->tbo", self.hs[1:], p["W3"]) + p["b3"]
        return self.z3


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    net = RNN(params, activations)
    z3 = net.forward(x, h0)
    T, B, _ = x.shape
    n = float(B) if reduction == "mean" else 1.0
    f3, df3 = ACT[activations[2]]
    if loss == "l2":
        yhat = f3(z3)
        L = 0.5 * ((yhat - y) ** 2).sum()
        d3 = (yhat - y) * df3(z3, yhat)
    elif loss == "ce":
        lse = np.logaddexp.reduce(z3, axis=-1)
        onehot = np.eye(z3.shape[-1], dtype=z3.dtype)[y]
        L = (lse - (z3 * onehot).sum(-1)).sum()
        d3 = np.exp(z3 - lse[..., None]) - onehot
    else:
        L = (np.logaddexp(0.0, z3) - y * z3).sum()
        d3 = 0.5 * (1.0 + np.tanh(0.5 * z3)) - y
    d3 = d3 / n
    p = params
    _, df1 = net.acts[0]
    _, df2 = net.acts[1]
    dW3 = np.einsum("tbr,tbo->ro", net.hs[1:], d3)
    db3 = d3.sum((0, 1))
    dh_all = np.einsum("tbo,ro->tbr", d3, p["W3"])
    d2 = np.empty_like(net.z2)
    carry = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        d2[t] = (dh_all[t] + carry) * df2(net.z2[t], net.hs[t + 1])
        carry = d2[t] @ p["U"].T
    d1 = np.einsum("tbr,hr->tbh", d2, p["W2"]) * df1(net.z1, net.a)
    grads = {
        "W1": np.einsum("tbi,tbh->ih", x, d1), "b1": d1.sum((0, 1)),
        "W2": np.einsum("tbh,tbr->hr", net.a, d2),
        "U": np.einsum("tbr,tbs->rs", net.hs[:-1], d2), "b2": d2.sum((0, 1)),
        "W3": dW3, "b3": db3,
        "x": np.einsum("tbh,ih->tbi", d1, p["W1"]), "h0": carry,
    }
    return L / n, grads, net.hs[-1].copy()
