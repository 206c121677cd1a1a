"""The network's layers one by one, each a forward that returns a cache and a backward
(NumPy only), for checking a layer by itself (``gradcheck layer``).

The same equations as network.py (bptt.md), with leading time axes where a layer runs
for every step at once:

    dense:  z = x W + b, out = f(z)                x [..., B, I] -> [..., B, H]
    rnn:    h_t = f2(a_t W2 + h_{t-1} U + b2)      a [T, B, H], h0 [B, R] -> h [T, B, R]
    loss:   L(z3, y) / scale, d3 = dL/dz3           z3 [T, B, O] -> a float

``rnn_backward`` walks t = T..1 with one ``dh_next`` accumulator, as the article does.
network.loss_and_grads does not call these (its own loop batches the state-free layers
over time); tests/test_reference.py proves the two agree.
"""
import numpy as np

from .activations import ACTIVATIONS
from .losses import loss_and_delta

__all__ = ["dense_forward", "dense_backward", "rnn_step_forward", "rnn_step_backward",
           "rnn_forward", "rnn_backward", "loss_forward", "loss_backward"]


def dense_forward(x, W, b, activation="identity"):
    """out = f(x W + b); returns (out, cache). Shapes: x [..., B, I]; W [I, H]; b [H]."""
    f, df = ACTIVATIONS[activation]
    z = x @ W + b
    out = f(z)
    return out, (x, W, df(z, out))


def dense_backward(dout, cache):
    """(dx, dW, db) from dout [..., B, H]: the sums run over every leading axis."""
    x, W, dfz = cache
    dz = dout * dfz
    I, H = W.shape
    dW = x.reshape(-1, I).T @ dz.reshape(-1, H)
    db = dz.reshape(-1, H).sum(axis=0)
    return dz @ W.T, dW, db


def rnn_step_forward(a_t, h_prev, W2, U, b2, activation="tanh"):
    """h_t = f2(a_t W2 + h_prev U + b2); returns (h_t, cache). a_t [B, H]; h_prev [B, R]."""
    f, df = ACTIVATIONS[activation]
    z = a_t @ W2 + h_prev @ U + b2
    h_t = f(z)
    return h_t, (a_t, h_prev, W2, U, df(z, h_t))


def rnn_step_backward(dh_t, cache):
    """(da_t, dh_prev, dW2, dU, db2) from dh_t [B, R], the step's whole state derivative."""
    a_t, h_prev, W2, U, df2 = cache
    d2 = dh_t * df2
    return d2 @ W2.T, d2 @ U.T, a_t.T @ d2, h_prev.T @ d2, d2.sum(axis=0)


def rnn_forward(a, h0, W2, U, b2, activation="tanh"):
    """Every step of the window; returns (h [T, B, R], cache). a [T, B, H]; h0 [B, R]."""
    T = a.shape[0]
    h = np.empty((T,) + h0.shape, dtype=np.result_type(a, h0))
    caches, h_prev = [], h0
    for t in range(T):
        h_prev, c = rnn_step_forward(a[t], h_prev, W2, U, b2, activation)
        h[t] = h_prev
        caches.append(c)
    return h, caches


def rnn_backward(dh, cache):
    """(da, dh0, dW2, dU, db2) from dh [T, B, R], each step's derivative from above;
    one dh_next accumulator carries the future's part back."""
    caches = cache
    a0, h0, W2, U, _ = caches[0]
    T = len(caches)
    da = np.empty((T,) + a0.shape, dtype=dh.dtype)
    dW2, dU, db2 = np.zeros_like(W2), np.zeros_like(U), np.zeros(U.shape[0], dh.dtype)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        da[t], dh_next, gW2, gU, gb2 = rnn_step_backward(dh[t] + dh_next, caches[t])
        dW2 += gW2
        dU += gU
        db2 += gb2
    return da, dh_next, dW2, dU, db2


def loss_forward(z3, y, loss="l2", activation="identity", reduction="mean"):
    """The window's loss on z3 [T, B, O] (f3 applied inside for l2); returns (value, cache)."""
    scale = z3.shape[-2] if reduction == "mean" else 1
    value, d3 = loss_and_delta(loss, activation, np.array(z3, copy=True), y, scale)
    return value, d3


def loss_backward(dloss, cache):
    """dz3 = dloss * dL/dz3, the shape of z3."""
    return dloss * cache
