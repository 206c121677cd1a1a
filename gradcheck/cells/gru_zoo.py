"""The GRU's zoo: realistic wrong BPTT windows (reset before the product), each one mistake
of the backward pass, and the candidate test that names a mistake only when it reproduces
the numbers. Every bug runs the reference's forward (reference/gru.py) and this module's
backward with one switch on; each is loadable as ``gradcheck.cells.gru_zoo:NAME``.
Each bug is a diagnosis kind, ``gru_<bug>``, registered by gradcheck/cells/gru.py.
"""
import numpy as np

from .._reference import cell_module
from .gru import BUGS
from .zoo_match import finding as match_finding, reproducing_bugs

__all__ = ["BUGS", "gru_bptt", "reproducing", "layer_reproducing", "finding"]

GRAD_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0")


def _backward(params, cache, flaw=None):
    """The gradients of a reset-before window from the reference's cache, with ``flaw``."""
    W1, Wx, Wh, W3 = (params[n] for n in ("W1", "Wx", "Wh", "W3"))
    x, df1, a, gates, u, h, d3, _ = cache
    T, B, _ = x.shape
    R, O = W3.shape
    grads = {n: np.zeros(params[n].shape) for n in params}
    dx = np.empty(x.shape)
    grads["W3"] += h[1:].reshape(T * B, R).T @ d3.reshape(T * B, O)
    grads["b3"] += d3.reshape(T * B, O).sum(axis=0)
    dh_next = np.zeros((B, R))
    for t in reversed(range(T)):
        r, z, n = (gates[t][:, k * R:(k + 1) * R] for k in range(3))
        dh = d3[t] @ W3.T + (0.0 if flaw == "no_dh_next" else dh_next)
        keep, new = (1.0 - z, z) if flaw == "z_swapped" else (z, 1.0 - z)
        n_prime = {"n_grad_sigmoid": n * (1.0 - n), "tanh_prime_of_h": 1.0 - h[t + 1] ** 2}.get(
            flaw, 1.0 - n ** 2)
        dzn = dh * new * n_prime
        dz = dh * ((n - h[t]) if flaw == "dz_sign" else (h[t] - n))
        dzz = dz * z * (1.0 - z)
        drh = dzn @ Wh[:, 2 * R:].T
        dzr = drh * (1.0 if flaw == "dr_without_h_prev" else h[t]) * r * (1.0 - r)
        h_rz = h[t + 1] if flaw == "dWh_from_h_t" else h[t]
        blocks = (dzz, dzr) if flaw == "gate_order_backward" else (dzr, dzz)
        drz = np.concatenate(blocks, axis=1)
        grads["Wh"][:, :2 * R] += h_rz.T @ drz
        grads["Wh"][:, 2 * R:] += (h[t] if flaw == "reset_after_in_backward"
                                   else r * h[t]).T @ dzn
        dh_next = ((0.0 if flaw == "no_direct_path" else dh * keep)
                   + (0.0 if flaw == "no_reset_path" else drh * r) + drz @ Wh[:, :2 * R].T)
        dzx = np.concatenate([drz, dzn], axis=1)
        grads["Wx"] += a[t].T @ dzx
        grads["b"] += dzx.sum(axis=0)
        d1 = (dzx @ Wx.T) * df1[t]
        grads["W1"] += x[t].T @ d1
        grads["b1"] += d1.sum(axis=0)
        dx[t] = d1 @ W1.T
    grads.update(x=dx, h0=dh_next)
    return grads


def gru_bptt(flaw):
    """The loss_and_grads of the GRU contract (reset before) with mistake ``flaw``."""
    reference = cell_module("gru")

    def loss_and_grads(params, x, y, h0, **options):
        value, cache = reference.forward(params, x, y, h0, **options)
        grads = _backward(params, cache, flaw)
        dtype = params["W1"].dtype
        return value, {n: g.astype(dtype) for n, g in grads.items()}, cache[5][-1].copy()
    loss_and_grads.__name__ = loss_and_grads.__qualname__ = flaw
    return loss_and_grads


def __getattr__(name):                  # gradcheck.cells.gru_zoo:NAME loads bug NAME
    if name in BUGS:
        return gru_bptt(name)
    raise AttributeError(name)


def reproducing(params, x, y, h0, impl_grads, options, tol):
    """{bug: worst error / tol} of the bugs whose gradients all agree with ``impl_grads``
    at ``tol`` on these inputs (float64); {} for the reset after the product (bh), which
    the zoo does not cover."""
    if "bh" in params:
        return {}
    f64 = {n: np.asarray(p, np.float64) for n, p in params.items()}
    y = y if y.dtype.kind in "iu" else np.asarray(y, np.float64)
    _, cache = cell_module("gru").forward(f64, np.asarray(x, np.float64), y,
                                          np.asarray(h0, np.float64), **options)
    return reproducing_bugs(BUGS, lambda c, bug: _backward(f64, c, bug), cache, impl_grads,
                            tol, GRAD_NAMES)


def layer_reproducing(layer, inputs, upstreams, impl_grads, tol):
    """{bug: worst error / tol} of the bugs whose gradients of the GRU layer ``layer``
    ("gru_step" or "gru", gradcheck.cells.gru's LAYERS) all agree with ``impl_grads``
    ({input name: gradient}) at ``tol``; {} for the reset after the product (bh), which the
    zoo does not cover. The layer is the window with its dense layers the identity
    (W1 = I, W3 = I) and the upstream derivative as d3. ``inputs``: {name: array}."""
    if len(inputs) != 5:
        return {}
    a, h0, Wx, Wh, b = inputs.values()                  # the layer's order (a or a_t first)
    step = layer == "gru_step"
    x = a[None] if step else a                          # [T, B, H]
    T, B, H = x.shape
    R = Wh.shape[0]
    params = {"W1": np.eye(H), "b1": np.zeros(H), "Wx": Wx, "Wh": Wh, "b": b,
              "W3": np.eye(R), "b3": np.zeros(R)}
    _, cache = cell_module("gru").forward(params, x, np.zeros((T, B, R)), h0, loss="l2",
                                          activations=("identity", "tanh", "identity"),
                                          reduction="sum")
    cache = cache[:6] + (upstreams[0][None] if step else upstreams[0],) + cache[7:]
    got = dict(zip(("x", "h0", "Wx", "Wh", "b"), (impl_grads[n] for n in inputs)))
    if step:
        got["x"] = np.asarray(got["x"])[None]
    return reproducing_bugs(BUGS, lambda c, bug: _backward(params, c, bug), cache, got, tol,
                            GRAD_NAMES)


def finding(fits):
    """(kind, sentence) for the bugs that reproduce the numbers, or None when none does."""
    return match_finding(BUGS, "GRU", fits)
