"""Oracles for one layer by itself: a JAX model of the layer written from the equations,
its vector-Jacobian product, and central finite differences of the same layer.

Never calls the NumPy reference. Everything is float64: JAX's x64 mode is switched on
for this module's own calls only (``jax.enable_x64``), never for the process. Layers (bptt.md), any leading time axes:

    dense1:   a = f1(x W1 + b1)                          x [T, B, I]
    rnn_step: h_t = f2(a_t W2 + h_prev U + b2)           a_t [B, H], h_prev [B, R]
    rnn:      h_t = f2(a_t W2 + h_{t-1} U + b2), t=1..T  a [T, B, H], h0 [B, R]
    dense2:   yhat = f3(h W3 + b3)                       h [T, B, R]
    loss:     L(z3, y) summed over t, b (and o), / B for "mean"   z3 [T, B, O]

A cell's layers (model.LayerSpec, from the cell registry) come from the cell's own
"layer_jax" module: its step function (this module is the RNN's); a layer over a window
repeats its step, the states carried from step to step (``window_function``). A layer
with several outputs (an LSTM step's h_t, c_t) takes one upstream gradient per output.
"""
import functools

import numpy as np

import jax
import jax.numpy as jnp

from .model import cell_layers, side
from .tolerances import LAYER_FD_STEP

__all__ = ["layer_function", "step_function", "window_function", "jax_vjp", "jax_per_step",
           "jax_window_per_step", "fd_vjp"]

_F = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu,
      "identity": lambda v: v}


def _loss(z3, y, loss, f3, reduction):
    if loss == "l2":
        err = _F[f3](z3) - y
        total = 0.5 * jnp.sum(err * err)
    elif loss == "ce":
        lse = jax.scipy.special.logsumexp(z3, axis=-1)
        total = jnp.sum(lse - jnp.take_along_axis(z3, y[..., None], axis=-1)[..., 0])
    else:                                   # bce on logits
        total = jnp.sum(jax.nn.softplus(z3) - y * z3)
    return total / (z3.shape[-2] if reduction == "mean" else 1)


def step_function(layer, options):
    """The RNN's layer of one step (its "layer_jax" side): h_t = f2(a_t W2 + h_prev U + b2)."""
    f2 = _F[options["activations"][1]]
    return {"rnn_step": lambda a_t, h_prev, W2, U, b2: f2(a_t @ W2 + h_prev @ U + b2)}[layer]


def window_function(step, spec):
    """The layer over a window of ``spec`` (a LayerSpec with ``step``) from the JAX
    function of its ``step``: each input of role "input" sliced per step, the states
    carried (the step's outputs, in the order of the state inputs), every h_t stacked.
    ``per_step``: each param input carries one copy per step ([T, ...]); ``trajectory``:
    also return every state at every step ([T+1, B, R] each, the incoming first). Inputs
    beyond the spec's are its cell options' arrays (the GRU's bh): params."""
    def window(*inputs, per_step=False, trajectory=False):
        roles = [a.role for a in spec.inputs] + ["param"] * (len(inputs) - len(spec.inputs))
        T = inputs[roles.index("input")].shape[0]
        states = [v for v, r in zip(inputs, roles) if r == "state"]
        seen, out = [[s] for s in states], []
        for t in range(T):
            carried, args = iter(states), []
            for v, r in zip(inputs, roles):
                args.append(v[t] if r == "input" or (r == "param" and per_step)
                            else next(carried) if r == "state" else v)
            new = step(*args)
            states = list(new) if isinstance(new, tuple) else [new]
            for k, s in enumerate(states):
                seen[k].append(s)
            out.append(states[0])
        h = jnp.stack(out)
        return (h, tuple(jnp.stack(s) for s in seen)) if trajectory else h
    return window


def layer_function(layer, options):
    """The layer as a JAX function of its differentiable inputs (a tuple, in the order of
    its LayerSpec), with ``options`` (activations, loss, reduction) fixed;
    ``y`` (loss only) comes as a keyword. A cell's layer comes from its cell's side."""
    spec = cell_layers().get(layer)
    if spec is not None:
        step = side(spec.cell, "layer_jax").step_function(spec.step or layer, options)
        return step if spec.step is None else window_function(step, spec)
    f1, f2, f3 = (_F[a] for a in options["activations"])
    if layer == "dense1":
        return lambda x, W1, b1: f1(x @ W1 + b1)
    if layer == "dense2":
        return lambda h, W3, b3: f3(h @ W3 + b3)
    if layer == "loss":
        return lambda z3, y: _loss(z3, y, options["loss"], options["activations"][2],
                                   options["reduction"])
    raise ValueError(f"unknown layer {layer!r}")


def _rnn_with_dz(options):
    """The rnn layer with each step's own weights and a zero added to each z2_t (its
    gradient is d2_t), for the dU candidates."""
    f2 = _F[options["activations"][1]]

    def rnn(a, h0, W2, U, b2, dz):
        h, out = h0, []
        for t in range(a.shape[0]):
            h = f2(a[t] @ W2[t] + h @ U[t] + b2[t] + dz[t])
            out.append(h)
        return jnp.stack(out)
    return rnn


def _outputs(fn):
    """``fn`` returning a tuple of outputs always (one for a layer of one output)."""
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        return out if isinstance(out, tuple) else (out,)
    return wrapped


def _in_float64(fn):
    """``fn`` run with JAX's x64 mode on (its arrays are built and computed in float64)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)
    return wrapper


def _as64(arrays):
    return tuple(jnp.asarray(np.asarray(a, np.float64)) for a in arrays)


def _key(options):
    return (tuple(options["activations"]), options["loss"], options["reduction"])


@functools.lru_cache(maxsize=None)
def _compiled_vjp(layer, key):
    fn = _outputs(layer_function(layer, dict(zip(("activations", "loss", "reduction"), key))))

    def run(inputs, g, y):
        f = functools.partial(fn, y=y) if layer == "loss" else fn
        out, vjp = jax.vjp(f, *inputs)
        return out, vjp(g)
    return jax.jit(run)


@_in_float64
def jax_vjp(layer, options, inputs, upstream, y=None):
    """(outputs, grads): the layer's outputs (a tuple) and g^T J for each input, float64
    NumPy. ``inputs``: the differentiable inputs in order; ``upstream``: a tuple of g, one
    per output, each the output's shape."""
    out, grads = _compiled_vjp(layer, _key(options))(
        _as64(inputs), _as64(upstream), None if y is None else jnp.asarray(y))
    return tuple(np.asarray(o) for o in out), tuple(np.asarray(g) for g in grads)


@functools.lru_cache(maxsize=None)
def _compiled_per_step(key):
    fn = _rnn_with_dz(dict(zip(("activations", "loss", "reduction"), key)))

    def run(inputs, g):
        a, h0, W2, U, b2 = inputs
        T = a.shape[0]
        copies = tuple(jnp.broadcast_to(w, (T,) + w.shape) for w in (W2, U, b2))
        dz = jnp.zeros((T,) + h0.shape)
        h, vjp = jax.vjp(lambda dz, *w: fn(a, h0, *w, dz), dz, *copies)
        return h, vjp(g)
    return jax.jit(run)


@_in_float64
def jax_per_step(options, inputs, upstream):
    """The rnn layer's per-step weight contributions {W2, U, b2: [T, ...]} (each step
    given its own copy of the weights; "d2": dL/dz2_t [T, B, R]) and its states
    [T+1, B, R] (h0 first)."""
    h, g = _compiled_per_step(_key(options))(_as64(inputs),
                                             jnp.asarray(np.asarray(upstream, np.float64)))
    h0 = _as64(inputs)[1]
    states = np.concatenate([np.asarray(h0)[None], np.asarray(h)])
    return dict(zip(("d2", "W2", "U", "b2"), (np.asarray(x) for x in g))), states


@functools.lru_cache(maxsize=None)
def _compiled_window_per_step(spec, key):
    fn = layer_function(spec.name, dict(zip(("activations", "loss", "reduction"), key)))
    params = [a.role == "param" for a in spec.inputs]

    def run(inputs, g):
        T = inputs[0].shape[0]
        copies = [jnp.broadcast_to(v, (T,) + v.shape) for v, p in zip(inputs, params) if p]

        def of_copies(*w):
            it = iter(w)
            return fn(*(next(it) if p else v for v, p in zip(inputs, params)), per_step=True,
                      trajectory=True)
        h, vjp, states = jax.vjp(of_copies, *copies, has_aux=True)
        return vjp(g), states
    return jax.jit(run)


@_in_float64
def jax_window_per_step(spec, options, inputs, upstream):
    """A cell's layer over a window (``spec``: its LayerSpec, with ``step``, its cell's
    options applied): each step's share of every param's gradient ({name: [T, ...]}, each
    step given its own copy) and every state at every step ({incoming name: [T+1, B, R]},
    the incoming state first)."""
    grads, states = _compiled_window_per_step(spec, _key(options))(
        _as64(inputs), jnp.asarray(np.asarray(upstream, np.float64)))
    params = [a.name for a in spec.inputs if a.role == "param"]
    incoming = [a.name for a in spec.inputs if a.role == "state"]
    return (dict(zip(params, (np.asarray(x) for x in grads))),
            dict(zip(incoming, (np.asarray(s) for s in states))))


@functools.lru_cache(maxsize=None)
def _compiled_fd(layer, key):
    """phi at every +step and -step of every input: per input, ([n], [n])."""
    fn = _outputs(layer_function(layer, dict(zip(("activations", "loss", "reduction"), key))))

    def run(inputs, g, y, steps):
        f = functools.partial(fn, y=y) if layer == "loss" else fn
        out = []
        for i, v in enumerate(inputs):
            def phi(delta, i=i, v=v):
                arrays = list(inputs)
                arrays[i] = v + delta.reshape(v.shape)
                return sum(jnp.sum(gk * ok) for gk, ok in zip(g, f(*arrays)))
            basis = jnp.diag(steps[i])                                      # [n, n]
            out.append((jax.vmap(phi)(basis), jax.vmap(phi)(-basis)))
        return out
    return jax.jit(run)


@_in_float64
def fd_vjp(layer, options, inputs, upstream, y=None):
    """Central differences of phi = sum over outputs of sum(g * output) over every element
    of every input, in float64: (phi(v + s) - phi(v - s)) / 2s with
    s = LAYER_FD_STEP * max(1, |v|). ``upstream``: a tuple of g, one per output."""
    g = _as64(upstream)
    base = _as64(inputs)
    y = None if y is None else jnp.asarray(y)
    steps = tuple(LAYER_FD_STEP * np.maximum(1.0, np.abs(np.asarray(v).ravel())) for v in base)
    moved = _compiled_fd(layer, _key(options))(base, g, y, tuple(map(jnp.asarray, steps)))
    return tuple(((np.asarray(p) - np.asarray(m)) / (2 * s)).reshape(v.shape)
                 for (p, m), s, v in zip(moved, steps, base))
