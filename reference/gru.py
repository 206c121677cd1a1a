"""dense -> GRU -> dense and its BPTT, in NumPy, in the article's style.

Forward, for t = 1..T (the GRU of the contract, gate blocks r, z, n of R each):

    z1_t = x_t W1 + b1            a_t = f1(z1_t)                        [B, H]
    zx_t = a_t Wx + b             (the input's part of all three blocks) [B, 3R]
    reset before (default):
        r = s(zx_r + h_{t-1} Wh_r)   z = s(zx_z + h_{t-1} Wh_z)
        n = tanh(zx_n + (r * h_{t-1}) Wh_n)
    reset after (params hold bh [3R]):  u = h_{t-1} Wh + bh
        r = s(zx_r + u_r)   z = s(zx_z + u_z)   n = tanh(zx_n + r * u_n)
    h_t = (1 - z) * n + z * h_{t-1}
    z3_t = h_t W3 + b3            yhat_t = f3(z3_t)                     [B, O]

Backward walks t = T..1 with ONE accumulator ``dh_next``:

    dh = d3_t W3^T + dh_next;  dn = dh (1 - z);  dz = dh (h_{t-1} - n)
    dzn = dn tanh'(.);  dzz = dz s'(.);  dzr from r's use (before: in r * h_{t-1};
    after: in r * u_n);  dh_next = dh z + (every block's path back through Wh)
"""
import numpy as np

from .activations import ACTIVATIONS, sigmoid
from .cell_inputs import validate
from .losses import loss_and_delta

__all__ = ["PARAM_NAMES", "GATES", "forward", "backward", "loss_and_grads",
           "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward"]

PARAM_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3")      # and bh when the reset is after
GATES = "rzn"                    # the order of the three blocks of Wx, Wh, b (and bh)


def forward(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
            reduction="mean"):
    """Run one window forward; return (loss, cache). The reset is after the recurrent
    product when params hold ``bh``. Inputs are validated and not modified."""
    validate(params, x, {"h0": h0}, loss, activations, reduction, PARAM_NAMES, blocks=3)
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in PARAM_NAMES)
    after = "bh" in params
    dtype = W1.dtype
    f1, df1_of = ACTIVATIONS[activations[0]]
    x = x.astype(dtype)
    if y.dtype.kind == "f":
        y = y.astype(dtype, copy=False)
    T, B, _ = x.shape
    R = Wh.shape[0]
    z1 = x @ W1 + b1                                      # [T, B, H]
    a = f1(z1)                                            # [T, B, H]
    zx = a @ Wx + b                                       # [T, B, 3R]
    gates = np.empty((T, B, 3 * R), dtype=dtype)          # r, z, n after their nonlinearity
    u = np.empty((T, B, 3 * R), dtype=dtype)              # h_{t-1} Wh (+ bh), per block
    h = np.empty((T + 1, B, R), dtype=dtype)              # h[0] = h0, h[t] = h_t
    h[0] = h0
    for t in range(T):
        u[t] = h[t] @ Wh + (params["bh"] if after else 0.0)
        r = sigmoid(zx[t, :, :R] + u[t, :, :R])
        z = sigmoid(zx[t, :, R:2 * R] + u[t, :, R:2 * R])
        if after:
            n = np.tanh(zx[t, :, 2 * R:] + r * u[t, :, 2 * R:])
        else:
            n = np.tanh(zx[t, :, 2 * R:] + (r * h[t]) @ Wh[:, 2 * R:])
        gates[t] = np.concatenate([r, z, n], axis=1)
        h[t + 1] = (1.0 - z) * n + z * h[t]
    z3 = h[1:] @ W3
    z3 += b3                                              # [T, B, O]
    scale = B if reduction == "mean" else 1
    value, d3 = loss_and_delta(loss, activations[2], z3, y, scale)
    return value, (x, df1_of(z1, a), a, gates, u, h, d3, after)


def backward(params, cache):
    """The gradients of the window, walking t = T..1 with one dh_next."""
    W1, b1, Wx, Wh, b, W3, b3 = (params[n] for n in PARAM_NAMES)
    x, df1, a, gates, u, h, d3, after = cache
    T, B, _ = x.shape
    R, O = W3.shape
    grads = {n: np.zeros(p.shape, p.dtype) for n, p in params.items()}
    dx = np.empty_like(x)                                 # [T, B, I]
    grads["W3"] += h[1:].reshape(T * B, R).T @ d3.reshape(T * B, O)
    grads["b3"] += d3.reshape(T * B, O).sum(axis=0)
    dh_next = np.zeros_like(h[0])                         # [B, R]
    for t in reversed(range(T)):                          # h[t] is h_{t-1}
        r, z, n = (gates[t][:, k * R:(k + 1) * R] for k in range(3))
        dh = d3[t] @ W3.T + dh_next                       # the future's derivative is ADDED
        dzn = dh * (1.0 - z) * (1.0 - n ** 2)             # through n, then tanh
        dzz = dh * (h[t] - n) * z * (1.0 - z)             # through z, then the sigmoid
        if after:
            dun = dzn * r                                 # n's recurrent part, r * u_n
            dzr = dzn * u[t][:, 2 * R:] * r * (1.0 - r)
            du = np.concatenate([dzr, dzz, dun], axis=1)  # [B, 3R], of h_{t-1} Wh + bh
            grads["Wh"] += h[t].T @ du
            grads["bh"] += du.sum(axis=0)
            dh_next = dh * z + du @ Wh.T                  # passed back to step t-1
        else:
            drh = dzn @ Wh[:, 2 * R:].T                   # of r * h_{t-1}
            dzr = drh * h[t] * r * (1.0 - r)
            drz = np.concatenate([dzr, dzz], axis=1)      # [B, 2R]
            grads["Wh"][:, :2 * R] += h[t].T @ drz
            grads["Wh"][:, 2 * R:] += (r * h[t]).T @ dzn
            dh_next = dh * z + drh * r + drz @ Wh[:, :2 * R].T
        dzx = np.concatenate([dzr, dzz, dzn], axis=1)     # [B, 3R], of a_t Wx + b
        grads["Wx"] += a[t].T @ dzx
        grads["b"] += dzx.sum(axis=0)
        d1 = (dzx @ Wx.T) * df1[t]                        # [B, H]
        grads["W1"] += x[t].T @ d1
        grads["b1"] += d1.sum(axis=0)
        dx[t] = d1 @ W1.T
    grads["x"], grads["h0"] = dx, dh_next
    return grads


def loss_and_grads(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
                   reduction="mean"):
    """One BPTT window of dense -> GRU -> dense.

    Shapes: params W1 [I,H], b1 [H], Wx [H,3R], Wh [R,3R], b [3R] (blocks r, z, n), and
    bh [3R] for the reset after the product, W3 [R,O], b3 [O]; x [T,B,I]; y [T,B,O] or
    [T,B] ids (ce); h0 [B,R]. Returns (loss, grads: every param plus x and h0, h_last)."""
    value, cache = forward(params, x, y, h0, loss=loss, activations=tuple(activations),
                           reduction=reduction)
    return value, backward(params, cache), cache[5][-1].copy()


# ------------------------------------------------------------------ the cell as layers
# The GRU layer by itself (``gradcheck layer gru_step|gru``): each forward returns its
# output and a cache, each backward takes the output's upstream derivative. Given ``bh``
# (last), the reset gate is after the recurrent product, and dbh is returned last.

def gru_step_forward(a_t, h_prev, Wx, Wh, b, bh=None):
    """One step; returns (h_t, cache). a_t [B, H]; h_prev [B, R]; Wx [H, 3R], Wh [R, 3R],
    b [3R] and bh [3R] or None (blocks r, z, n)."""
    R = Wh.shape[0]
    zx = a_t @ Wx + b                                     # [B, 3R]
    u = h_prev @ Wh + (0.0 if bh is None else bh)         # [B, 3R]
    r = sigmoid(zx[:, :R] + u[:, :R])
    z = sigmoid(zx[:, R:2 * R] + u[:, R:2 * R])
    if bh is None:
        n = np.tanh(zx[:, 2 * R:] + (r * h_prev) @ Wh[:, 2 * R:])
    else:
        n = np.tanh(zx[:, 2 * R:] + r * u[:, 2 * R:])
    h_t = (1.0 - z) * n + z * h_prev                      # [B, R]
    return h_t, (a_t, h_prev, Wx, Wh, bh is not None, r, z, n, u)


def gru_step_backward(dh_t, cache):
    """(da_t, dh_prev, dWx, dWh, db[, dbh]) from dh_t [B, R], the step's whole derivative."""
    a_t, h_prev, Wx, Wh, after, r, z, n, u = cache
    R = Wh.shape[0]
    dWh = np.zeros_like(Wh)
    dzn = dh_t * (1.0 - z) * (1.0 - n ** 2)               # through n, then tanh
    dzz = dh_t * (h_prev - n) * z * (1.0 - z)             # through z, then the sigmoid
    if after:
        dzr = dzn * u[:, 2 * R:] * r * (1.0 - r)
        du = np.concatenate([dzr, dzz, dzn * r], axis=1)  # [B, 3R], of h_prev Wh + bh
        dWh += h_prev.T @ du
        dh_prev = dh_t * z + du @ Wh.T
    else:
        drh = dzn @ Wh[:, 2 * R:].T                       # of r * h_prev
        dzr = drh * h_prev * r * (1.0 - r)
        drz = np.concatenate([dzr, dzz], axis=1)          # [B, 2R]
        dWh[:, :2 * R] += h_prev.T @ drz
        dWh[:, 2 * R:] += (r * h_prev).T @ dzn
        dh_prev = dh_t * z + drh * r + drz @ Wh[:, :2 * R].T
    dzx = np.concatenate([dzr, dzz, dzn], axis=1)         # [B, 3R], of a_t Wx + b
    grads = (dzx @ Wx.T, dh_prev, a_t.T @ dzx, dWh, dzx.sum(axis=0))
    return grads + (du.sum(axis=0),) if after else grads


def gru_forward(a, h0, Wx, Wh, b, bh=None):
    """Every step of the window; returns (h [T, B, R], cache). a [T, B, H]; h0 [B, R]."""
    T = a.shape[0]
    h = np.empty((T,) + h0.shape, dtype=np.result_type(a, h0))
    caches, h_t = [], h0
    for t in range(T):
        h_t, cache = gru_step_forward(a[t], h_t, Wx, Wh, b, bh)
        h[t] = h_t
        caches.append(cache)
    return h, caches


def gru_backward(dh, cache):
    """(da, dh0, dWx, dWh, db[, dbh]) from dh [T, B, R], each step's derivative from above;
    one dh_next carries the future's part back."""
    caches = cache
    a0, h0 = caches[0][:2]
    T = len(caches)
    da = np.empty((T,) + a0.shape, dtype=dh.dtype)
    sums, dh_next = None, np.zeros_like(h0)
    for t in reversed(range(T)):
        da[t], dh_next, *weights = gru_step_backward(dh[t] + dh_next, caches[t])
        sums = weights if sums is None else [s + w for s, w in zip(sums, weights)]
    return (da, dh_next, *sums)
