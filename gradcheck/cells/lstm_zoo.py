"""The LSTM's zoo: realistic wrong BPTT windows, each one mistake of the backward pass, and
the candidate test that names a mistake only when it reproduces the numbers.

Every bug runs the reference's forward (reference/lstm.py) and this module's backward
with one switch on (``Flaw``). Each is loadable as ``gradcheck.cells.lstm_zoo:NAME``
(module attributes), so it can be checked through the isolated path like any file:

    gradcheck --cell lstm --interval 3 --impl gradcheck.cells.lstm_zoo:no_dc_next

Each bug is a diagnosis kind of its own, ``lstm_<bug>``, registered with the cell's
declaration (gradcheck/cells/lstm.py, which lists them in BUGS).
"""
import numpy as np

from .._reference import cell_module
from .lstm import BUGS
from .zoo_match import hooks, layer_window, reproducing_bugs

__all__ = ["BUGS", "lstm_bptt", "reproducing", "layer_reproducing", "layer_candidate",
           "finding", "HOOKS"]

GRAD_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0", "c0")


def _backward(params, cache, flaw=None, dc_last=None):
    """The gradients of the window from the reference's cache, with mistake ``flaw``;
    ``dc_last``: the derivative arriving at the last cell state from outside (a layer's
    upstream dc_t), or None (zero)."""
    W1, Wx, Wh, W3 = (params[n] for n in ("W1", "Wx", "Wh", "W3"))
    x, df1, a, gates, c, tc, h, d3 = cache
    T, B, _ = x.shape
    R, O = W3.shape
    grads = {n: np.zeros(params[n].shape) for n in params}
    dx = np.empty(x.shape)
    grads["W3"] += h[1:].reshape(T * B, R).T @ d3.reshape(T * B, O)
    grads["b3"] += d3.reshape(T * B, O).sum(axis=0)
    dh_next, dc_next = np.zeros((B, R)), np.zeros((B, R)) if dc_last is None else dc_last
    order = (0, 1, 3, 2) if flaw == "gate_order_backward" else (0, 1, 2, 3)
    for t in reversed(range(T)):
        i, f, g, o = (gates[t][:, k * R:(k + 1) * R] for k in range(4))
        dh = d3[t] @ W3.T + (0.0 if flaw == "no_dh_next" else dh_next)
        tanh_prime = 1.0 - (h[t + 1] if flaw == "tanh_prime_of_h" else tc[t]) ** 2
        through_h = {"no_tanh_prime_c": dh * o, "dc_without_o": dh * tanh_prime}.get(
            flaw, dh * o * tanh_prime)
        dc = through_h + (0.0 if flaw == "no_dc_next" else dc_next)
        di = dc * (c[t] if flaw == "i_f_swapped" else g)
        df = dc * {"forget_grad_with_c_t": c[t + 1], "i_f_swapped": g}.get(flaw, c[t])
        dg = dc * i
        do = dh * (c[t + 1] if flaw == "o_grad_with_c" else tc[t])
        g_prime = g * (1.0 - g) if flaw == "g_grad_sigmoid" else 1.0 - g ** 2
        blocks = (di * i * (1 - i), df * f * (1 - f), dg * g_prime, do * o * (1 - o))
        dzg = np.concatenate([blocks[k] for k in order], axis=1)        # [B, 4R]
        grads["Wx"] += a[t].T @ dzg
        grads["Wh"] += (h[t + 1] if flaw == "dWh_from_h_t" else h[t]).T @ dzg
        grads["b"] += dzg.sum(axis=0)
        dh_next = dzg @ Wh.T
        dc_next = dc if flaw == "dc_next_without_f" else dc * f
        d1 = (dzg @ Wx.T) * df1[t]
        grads["W1"] += x[t].T @ d1
        grads["b1"] += d1.sum(axis=0)
        dx[t] = d1 @ W1.T
    grads.update(x=dx, h0=dh_next, c0=np.zeros((B, R)) if flaw == "dc0_zeros" else dc_next)
    return grads


def lstm_bptt(flaw):
    """The loss_and_grads of the LSTM contract with mistake ``flaw`` (a name of BUGS)."""
    reference = cell_module("lstm")

    def loss_and_grads(params, x, y, h0, c0, **options):
        value, cache = reference.forward(params, x, y, h0, c0, **options)
        grads = _backward(params, cache, flaw)
        dtype = params["W1"].dtype
        return (value, {n: g.astype(dtype) for n, g in grads.items()}, cache.h[-1].copy(),
                cache.c[-1].copy())
    loss_and_grads.__name__ = loss_and_grads.__qualname__ = flaw
    return loss_and_grads


def __getattr__(name):                  # gradcheck.cells.lstm_zoo:NAME loads bug NAME
    if name in BUGS:
        return lstm_bptt(name)
    raise AttributeError(name)


def layer_reproducing(layer, inputs, upstreams, impl_grads, tol):
    """{bug: worst error / tol} of the bugs whose gradients of the LSTM layer ``layer``
    ("lstm_step" or "lstm", gradcheck.cells.lstm's LAYERS) all agree with ``impl_grads``
    ({input name: gradient}) at ``tol``: each bug's window run on the layer
    (zoo_match.layer_window), the upstream derivative as d3; an LSTM step's upstream dc_t
    arrives as dc_next. ``inputs``: {input name: array} in the layer's order, float64."""
    names = list(inputs)                                # a (or a_t), h0, c0, Wx, Wh, b
    step = layer == "lstm_step"
    x, params, y = layer_window(inputs[names[0]], {n: inputs[n] for n in names[3:]}, step)
    _, cache = cell_module("lstm").forward(params, x, y, inputs[names[1]], inputs[names[2]],
                                           loss="l2", reduction="sum",
                                           activations=("identity", "tanh", "identity"))
    cache = cache._replace(d3=upstreams[0][None] if step else upstreams[0])
    dc_last = upstreams[1] if step else None
    got = dict(zip(("x", "h0", "c0"), (impl_grads[n] for n in names)),
               **{n: impl_grads[n] for n in names[3:]})
    got = {n: g for n, g in got.items() if g is not None}     # None: skipped, not compared
    if step:
        got["x"] = np.asarray(got["x"])[None]
    return reproducing_bugs(BUGS, lambda c, bug: _backward(params, c, bug, dc_last), cache,
                            got, tol, GRAD_NAMES)


# What the registry calls on this zoo (its "zoo" and "layer_zoo" sides), made from BUGS.
HOOKS = hooks("lstm", BUGS, _backward, layer_reproducing, GRAD_NAMES)
reproducing, finding, layer_candidate = HOOKS
