"""dense -> LSTM -> dense and its BPTT, in NumPy, in the article's style.

Forward, for t = 1..T (the LSTM cell of the contract, gate blocks i, f, g, o):

    z1_t = x_t W1 + b1                  a_t = f1(z1_t)                 [B, H]
    zg_t = a_t Wx + h_{t-1} Wh + b      (four blocks of R: i, f, g, o) [B, 4R]
    i = s(zg_i)   f = s(zg_f)   g = tanh(zg_g)   o = s(zg_o)           [B, R] each
    c_t = f * c_{t-1} + i * g           h_t = o * tanh(c_t)            [B, R]
    z3_t = h_t W3 + b3                  yhat_t = f3(z3_t)              [B, O]

Backward walks t = T..1 with ONE accumulator per state, ``dh_next`` and ``dc_next``:

    dh_t  = d3_t W3^T + dh_next                 (the future's part is ADDED)
    dc_t  = dh_t * o * tanh'(c_t) + dc_next     (through h_t = o tanh(c_t), and the future)
    do = dh_t * tanh(c_t);  di = dc_t * g;  dg = dc_t * i;  df = dc_t * c_{t-1}
    dzg   = [di s'(zg_i), df s'(zg_f), dg tanh'(zg_g), do s'(zg_o)]    [B, 4R]
    dh_next = dzg Wh^T;  dc_next = dc_t * f     (the only state derivatives kept)

One shared set of weights; the per-step weight gradients are summed (+=).
"""
from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS, sigmoid
from .cell_inputs import validate
from .losses import loss_and_delta

__all__ = ["PARAM_NAMES", "GRAD_NAMES", "GATES", "Cache", "forward", "backward",
           "loss_and_grads", "lstm_step_forward", "lstm_step_backward", "lstm_forward",
           "lstm_backward"]

PARAM_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3")
GRAD_NAMES = PARAM_NAMES + ("x", "h0", "c0")
GATES = "ifgo"                   # the order of the four blocks of Wx, Wh and b


class Cache(NamedTuple):
    """What the backward needs, for every step. Shapes: x [T, B, I]; df1 = f1'(z1) and
    a [T, B, H]; gates [T, B, 4R] (i, f, g, o after their nonlinearities); c [T+1, B, R]
    with c[0] = c0; tc = tanh(c_t) [T, B, R]; h [T+1, B, R] with h[0] = h0; d3 = dL/dz3
    [T, B, O], already divided by the reduction."""
    x: np.ndarray
    df1: np.ndarray
    a: np.ndarray
    gates: np.ndarray
    c: np.ndarray
    tc: np.ndarray
    h: np.ndarray
    d3: np.ndarray


def forward(params, x, y, h0, c0, *, loss="l2", activations=("tanh", "tanh", "identity"),
            reduction="mean"):
    """Run one window forward; return (loss, cache). Inputs are not modified."""
    validate(params, x, {"h0": h0, "c0": c0}, loss, activations, reduction, PARAM_NAMES,
             blocks=4)
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in PARAM_NAMES)
    dtype = W1.dtype
    f1, df1_of = ACTIVATIONS[activations[0]]
    x = x.astype(dtype)
    if y.dtype.kind == "f":
        y = y.astype(dtype, copy=False)
    T, B, _ = x.shape
    R = Wh.shape[0]
    z1 = x @ W1 + b1                                      # [T, B, H]
    a = f1(z1)                                            # [T, B, H]
    gates = a @ Wx + b                                    # [T, B, 4R], + h_{t-1} Wh below
    h = np.empty((T + 1, B, R), dtype=dtype)              # h[0] = h0, h[t] = h_t
    c = np.empty((T + 1, B, R), dtype=dtype)              # c[0] = c0, c[t] = c_t
    tc = np.empty((T, B, R), dtype=dtype)                 # tanh(c_t)
    h[0], c[0] = h0, c0
    for t in range(T):                                    # the recurrence, step by step
        zg = gates[t]
        zg += h[t] @ Wh
        zg[:, :2 * R] = sigmoid(zg[:, :2 * R])            # i, f
        zg[:, 2 * R:3 * R] = np.tanh(zg[:, 2 * R:3 * R])  # g
        zg[:, 3 * R:] = sigmoid(zg[:, 3 * R:])            # o
        i, f, g, o = (zg[:, k * R:(k + 1) * R] for k in range(4))
        c[t + 1] = f * c[t] + i * g
        tc[t] = np.tanh(c[t + 1])
        h[t + 1] = o * tc[t]
    z3 = h[1:] @ W3
    z3 += b3                                              # [T, B, O]
    scale = B if reduction == "mean" else 1
    value, d3 = loss_and_delta(loss, activations[2], z3, y, scale)
    return value, Cache(x, df1_of(z1, a), a, gates, c, tc, h, d3)


def backward(params, cache):
    """The ten gradients of the window, walking t = T..1 with dh_next and dc_next."""
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in PARAM_NAMES)
    x, df1, a, gates, c, tc, h, d3 = cache
    T, B, _ = x.shape
    R, O = W3.shape
    grads = {n: np.zeros(params[n].shape, params[n].dtype) for n in PARAM_NAMES}
    dW1, db1, dWx, dWh, db, dW3, db3 = (grads[n] for n in PARAM_NAMES)
    dx = np.empty_like(x)                                 # [T, B, I]
    dW3 += h[1:].reshape(T * B, R).T @ d3.reshape(T * B, O)
    db3 += d3.reshape(T * B, O).sum(axis=0)
    dh_next = np.zeros_like(h[0])                         # [B, R]
    dc_next = np.zeros_like(c[0])                         # [B, R]
    dzg = np.empty((B, 4 * R), dtype=x.dtype)             # [B, 4R], this step's gates
    for t in reversed(range(T)):                          # h[t], c[t] are h_{t-1}, c_{t-1}
        i, f, g, o = (gates[t][:, k * R:(k + 1) * R] for k in range(4))
        dh = d3[t] @ W3.T + dh_next                       # the future's derivative is ADDED
        dc = dh * o * (1.0 - tc[t] ** 2) + dc_next        # through h = o tanh(c), and the future
        dzg[:, :R] = dc * g * i * (1.0 - i)               # di * s'(zi)
        dzg[:, R:2 * R] = dc * c[t] * f * (1.0 - f)       # df * s'(zf), with c_{t-1}
        dzg[:, 2 * R:3 * R] = dc * i * (1.0 - g ** 2)     # dg * tanh'(zg)
        dzg[:, 3 * R:] = dh * tc[t] * o * (1.0 - o)       # do * s'(zo)
        dWx += a[t].T @ dzg
        dWh += h[t].T @ dzg
        db += dzg.sum(axis=0)
        dh_next = dzg @ Wh.T                              # passed back to step t-1
        dc_next = dc * f
        d1 = (dzg @ Wx.T) * df1[t]                        # [B, H]
        dW1 += x[t].T @ d1
        db1 += d1.sum(axis=0)
        dx[t] = d1 @ W1.T                                 # [B, I]
    grads["x"], grads["h0"], grads["c0"] = dx, dh_next, dc_next
    return grads


def loss_and_grads(params, x, y, h0, c0, *, loss="l2",
                   activations=("tanh", "tanh", "identity"), reduction="mean"):
    """One BPTT window of dense -> LSTM -> dense.

    Shapes: params W1 [I,H], b1 [H], Wx [H,4R], Wh [R,4R], b [4R] (blocks i, f, g, o),
    W3 [R,O], b3 [O]; x [T,B,I]; y [T,B,O] floats (l2, bce) or [T,B] ids (ce); h0, c0
    [B,R]. Returns (loss, grads: the seven params plus x, h0, c0, h_last, c_last)."""
    value, cache = forward(params, x, y, h0, c0, loss=loss, activations=tuple(activations),
                           reduction=reduction)
    grads = backward(params, cache)
    return value, grads, cache.h[-1].copy(), cache.c[-1].copy()


# ------------------------------------------------------------------ the cell as layers
# The LSTM layer by itself (``gradcheck layer lstm_step|lstm``): each forward returns its
# outputs and a cache, each backward takes one upstream derivative per output.

def lstm_step_forward(a_t, h_prev, c_prev, Wx, Wh, b):
    """One step; returns (h_t, c_t, cache). a_t [B, H]; h_prev, c_prev [B, R];
    Wx [H, 4R], Wh [R, 4R], b [4R] (blocks i, f, g, o)."""
    R = Wh.shape[0]
    zg = a_t @ Wx + h_prev @ Wh + b                       # [B, 4R]
    i, f, o = (sigmoid(zg[:, k * R:(k + 1) * R]) for k in (0, 1, 3))
    g = np.tanh(zg[:, 2 * R:3 * R])
    c_t = f * c_prev + i * g                              # [B, R]
    tc = np.tanh(c_t)
    h_t = o * tc                                          # [B, R]
    return h_t, c_t, (a_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tc)


def lstm_step_backward(dh_t, dc_t, cache):
    """(da_t, dh_prev, dc_prev, dWx, dWh, db) from dh_t and dc_t [B, R], each the step's
    whole derivative (from above and from the future)."""
    a_t, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    dc = dh_t * o * (1.0 - tc ** 2) + dc_t                # through h = o tanh(c), and dc_t
    dzg = np.concatenate([dc * g * i * (1.0 - i),         # di * s'(zi)
                          dc * c_prev * f * (1.0 - f),    # df * s'(zf), with c_{t-1}
                          dc * i * (1.0 - g ** 2),        # dg * tanh'(zg)
                          dh_t * tc * o * (1.0 - o)],     # do * s'(zo)
                         axis=1)                          # [B, 4R]
    return (dzg @ Wx.T, dzg @ Wh.T, dc * f, a_t.T @ dzg, h_prev.T @ dzg, dzg.sum(axis=0))


def lstm_forward(a, h0, c0, Wx, Wh, b):
    """Every step of the window; returns (h [T, B, R], cache). a [T, B, H]; h0, c0 [B, R].
    The last cell state is not returned (the layer's output is h)."""
    T = a.shape[0]
    h = np.empty((T,) + h0.shape, dtype=np.result_type(a, h0))
    caches, h_t, c_t = [], h0, c0
    for t in range(T):
        h_t, c_t, cache = lstm_step_forward(a[t], h_t, c_t, Wx, Wh, b)
        h[t] = h_t
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """(da, dh0, dc0, dWx, dWh, db) from dh [T, B, R], each step's derivative from above;
    dh_next and dc_next carry the future's part back."""
    caches = cache
    a0, h0, c0, Wx, Wh = caches[0][:5]
    T = len(caches)
    da = np.empty((T,) + a0.shape, dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], dh.dtype)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        da[t], dh_next, dc_next, gWx, gWh, gb = lstm_step_backward(dh[t] + dh_next, dc_next,
                                                                   caches[t])
        dWx += gWx
        dWh += gWh
        db += gb
    return da, dh_next, dc_next, dWx, dWh, db
