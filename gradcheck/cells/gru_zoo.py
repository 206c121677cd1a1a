"""The GRU's zoo: realistic wrong BPTT windows, each one mistake of the backward pass, and
the candidate test that names a mistake only when it reproduces the numbers. Most bugs are
of the reset before the product (the default); those named ``after_*`` are of the reset
after it (--reset-after, params with bh; each Bug's ``options`` says its form). Every bug
runs the reference's forward (reference/gru.py) and this module's backward with one switch
on; each is loadable as ``gradcheck.cells.gru_zoo:NAME``. Each bug is a diagnosis kind,
``gru_<bug>``, registered by gradcheck/cells/gru.py.
"""
import numpy as np

from .._reference import cell_module
from .gru import AFTER, BUGS
from .zoo_match import hooks, layer_window, of_form, reproducing_bugs

__all__ = ["BUGS", "gru_bptt", "reproducing", "layer_reproducing", "layer_candidate",
           "finding", "HOOKS"]

GRAD_NAMES = ("W1", "b1", "Wx", "Wh", "b", "bh", "W3", "b3", "x", "h0")


def _backward(params, cache, flaw=None):
    """The gradients of the window from the reference's cache (reset before the product,
    or after it when the forward's params held bh), with ``flaw``."""
    W1, Wx, Wh, W3 = (params[n] for n in ("W1", "Wx", "Wh", "W3"))
    x, df1, a, gates, u, h, d3, after = cache
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
        if after:
            dzr, dh_next = _after_step(params, grads, flaw, dzn, dzz, r, u[t], h[t],
                                       dh * keep)
            dzx = np.concatenate([dzr, dzz, dzn], axis=1)
        else:
            drh = dzn @ Wh[:, 2 * R:].T
            dzr = drh * (1.0 if flaw == "dr_without_h_prev" else h[t]) * r * (1.0 - r)
            h_rz = h[t + 1] if flaw == "dWh_from_h_t" else h[t]
            blocks = (dzz, dzr) if flaw == "gate_order_backward" else (dzr, dzz)
            drz = np.concatenate(blocks, axis=1)
            grads["Wh"][:, :2 * R] += h_rz.T @ drz
            grads["Wh"][:, 2 * R:] += (h[t] if flaw == "reset_after_in_backward"
                                       else r * h[t]).T @ dzn
            dh_next = ((0.0 if flaw == "no_direct_path" else dh * keep)
                       + (0.0 if flaw == "no_reset_path" else drh * r)
                       + drz @ Wh[:, :2 * R].T)
            dzx = np.concatenate([drz, dzn], axis=1)
        grads["Wx"] += a[t].T @ dzx
        grads["b"] += dzx.sum(axis=0)
        d1 = (dzx @ Wx.T) * df1[t]
        grads["W1"] += x[t].T @ d1
        grads["b1"] += d1.sum(axis=0)
        dx[t] = d1 @ W1.T
    grads.update(x=dx, h0=dh_next)
    return grads


def _after_step(params, grads, flaw, dzn, dzz, r, u, h_prev, direct):
    """One step of the reset after the product, n = tanh(zx_n + r * u_n) with u = h_{t-1}
    Wh + bh: adds into dWh and dbh; returns (dzr, dh_next). ``direct``: dh * z."""
    Wh = params["Wh"]
    R = Wh.shape[0]
    u_n = u[:, 2 * R:]                                   # h_{t-1} Wh_n + bh_n
    if flaw == "after_dr_as_before":
        r_times = dzn @ Wh[:, 2 * R:].T * h_prev
    else:
        r_times = dzn * (u_n - params["bh"][2 * R:] if flaw == "after_dr_without_bh" else u_n)
    dzr = r_times * r * (1.0 - r)
    dun = dzn * r                                        # of u_n
    du = np.concatenate([dzr, dzz, dun], axis=1)         # [B, 3R], of h_{t-1} Wh + bh
    grads["Wh"][:, :2 * R] += h_prev.T @ du[:, :2 * R]
    grads["Wh"][:, 2 * R:] += h_prev.T @ (dzn if flaw == "after_dWh_n_without_r" else dun)
    grads["bh"][:2 * R] += du[:, :2 * R].sum(axis=0)
    grads["bh"][2 * R:] += {"after_dbh_n_without_r": dzn.sum(axis=0),
                            "after_dbh_n_missing": 0.0}.get(flaw, dun.sum(axis=0))
    n_path = {"after_no_reset_path": 0.0, "after_n_path_without_r": dzn @ Wh[:, 2 * R:].T}.get(
        flaw, dun @ Wh[:, 2 * R:].T)
    return dzr, direct + du[:, :2 * R] @ Wh[:, :2 * R].T + n_path


def gru_bptt(flaw):
    """The loss_and_grads of the GRU contract with mistake ``flaw``, in the form it is a
    mistake of (a reset-after bug asks for params with bh)."""
    reference = cell_module("gru")
    after = AFTER[0] in BUGS[flaw].options

    def loss_and_grads(params, x, y, h0, **options):
        if ("bh" in params) != after:
            raise NotImplementedError(f"{flaw} is a mistake of the reset "
                                      f"{'after' if after else 'before'} the product"
                                      f"{' (--reset-after)' if after else ''}")
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


def layer_reproducing(layer, inputs, upstreams, impl_grads, tol):
    """{bug: worst error / tol} of the bugs of the layer's form (bh: the reset after the
    product) whose gradients of the GRU layer ``layer`` ("gru_step" or "gru",
    gradcheck.cells.gru's LAYERS) all agree with ``impl_grads`` ({input name: gradient})
    at ``tol``: each bug's window run on the layer (zoo_match.layer_window), the upstream
    derivative as d3. ``inputs``: {input name: array} in the layer's order, float64."""
    names = list(inputs)                                # a (or a_t), h0, Wx, Wh, b[, bh]
    step = layer == "gru_step"
    bugs = of_form(BUGS, "gru", inputs)
    x, params, y = layer_window(inputs[names[0]], {n: inputs[n] for n in names[2:]}, step)
    _, cache = cell_module("gru").forward(params, x, y, inputs[names[1]], loss="l2",
                                          reduction="sum",
                                          activations=("identity", "tanh", "identity"))
    cache = cache[:6] + (upstreams[0][None] if step else upstreams[0],) + cache[7:]
    got = dict(zip(("x", "h0"), (impl_grads[n] for n in names)),
               **{n: impl_grads[n] for n in names[2:]})
    got = {n: g for n, g in got.items() if g is not None}     # None: skipped, not compared
    if step:
        got["x"] = np.asarray(got["x"])[None]
    return reproducing_bugs(bugs, lambda c, bug: _backward(params, c, bug), cache, got, tol,
                            GRAD_NAMES)


# What the registry calls on this zoo (its "zoo" and "layer_zoo" sides), made from BUGS.
HOOKS = hooks("gru", BUGS, _backward, layer_reproducing, GRAD_NAMES)
reproducing, finding, layer_candidate = HOOKS
