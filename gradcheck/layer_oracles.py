"""Oracles for one layer by itself: a JAX model of the layer written from the equations,
its vector-Jacobian product, and central finite differences of the same layer.

Never calls the NumPy reference. Everything is float64: JAX's x64 mode is switched on
for this module's own calls only (``jax.enable_x64``), never for the process. Layers (bptt.md), any leading time axes:

    dense1:   a = f1(x W1 + b1)                          x [T, B, I]
    rnn_step: h_t = f2(a_t W2 + h_prev U + b2)           a_t [B, H], h_prev [B, R]
    rnn:      h_t = f2(a_t W2 + h_{t-1} U + b2), t=1..T  a [T, B, H], h0 [B, R]
    dense2:   yhat = f3(h W3 + b3)                       h [T, B, R]
    loss:     L(z3, y) summed over t, b (and o), / B for "mean"   z3 [T, B, O]
"""
import functools

import numpy as np

import jax
import jax.numpy as jnp

from .tolerances import LAYER_FD_STEP

__all__ = ["layer_function", "jax_vjp", "jax_per_step", "fd_vjp"]

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


def layer_function(layer, options):
    """The layer as a JAX function of its differentiable inputs (a tuple, in the order of
    layer_check.LAYER_SPECS), with ``options`` (activations, loss, reduction) fixed;
    ``y`` (loss only) comes as a keyword."""
    f1, f2, f3 = (_F[a] for a in options["activations"])
    if layer == "dense1":
        return lambda x, W1, b1: f1(x @ W1 + b1)
    if layer == "dense2":
        return lambda h, W3, b3: f3(h @ W3 + b3)
    if layer == "rnn_step":
        return lambda a_t, h_prev, W2, U, b2: f2(a_t @ W2 + h_prev @ U + b2)
    if layer == "rnn":
        def rnn(a, h0, W2, U, b2, per_step=False, dz=None):
            h, out = h0, []
            for t in range(a.shape[0]):            # each step its own weights when per_step
                w2, u, b = (W2[t], U[t], b2[t]) if per_step else (W2, U, b2)
                z = a[t] @ w2 + h @ u + b
                h = f2(z if dz is None else z + dz[t])  # dz = 0: its gradient is d2_t
                out.append(h)
            return jnp.stack(out)
        return rnn
    if layer == "loss":
        return lambda z3, y: _loss(z3, y, options["loss"], options["activations"][2],
                                   options["reduction"])
    raise ValueError(f"unknown layer {layer!r}")


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
    fn = layer_function(layer, dict(zip(("activations", "loss", "reduction"), key)))

    def run(inputs, g, y):
        f = functools.partial(fn, y=y) if layer == "loss" else fn
        out, vjp = jax.vjp(f, *inputs)
        return out, vjp(g)
    return jax.jit(run)


@_in_float64
def jax_vjp(layer, options, inputs, upstream, y=None):
    """(output, grads): the layer's output and g^T J for each input, float64 NumPy.
    ``inputs``: the differentiable inputs in order; ``upstream`` g, the output's shape."""
    out, grads = _compiled_vjp(layer, _key(options))(
        _as64(inputs), jnp.asarray(np.asarray(upstream, np.float64)),
        None if y is None else jnp.asarray(y))
    return np.asarray(out), tuple(np.asarray(g) for g in grads)


@functools.lru_cache(maxsize=None)
def _compiled_per_step(key):
    fn = layer_function("rnn", dict(zip(("activations", "loss", "reduction"), key)))

    def run(inputs, g):
        a, h0, W2, U, b2 = inputs
        T = a.shape[0]
        copies = tuple(jnp.broadcast_to(w, (T,) + w.shape) for w in (W2, U, b2))
        dz = jnp.zeros((T,) + h0.shape)
        h, vjp = jax.vjp(lambda dz, *w: fn(a, h0, *w, per_step=True, dz=dz), dz, *copies)
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
def _compiled_fd(layer, key):
    """phi at every +step and -step of every input: per input, ([n], [n])."""
    fn = layer_function(layer, dict(zip(("activations", "loss", "reduction"), key)))

    def run(inputs, g, y, steps):
        f = functools.partial(fn, y=y) if layer == "loss" else fn
        out = []
        for i, v in enumerate(inputs):
            def phi(delta, i=i, v=v):
                arrays = list(inputs)
                arrays[i] = v + delta.reshape(v.shape)
                return jnp.sum(g * f(*arrays))
            basis = jnp.diag(steps[i])                                      # [n, n]
            out.append((jax.vmap(phi)(basis), jax.vmap(phi)(-basis)))
        return out
    return jax.jit(run)


@_in_float64
def fd_vjp(layer, options, inputs, upstream, y=None):
    """Central differences of phi = sum(g * layer(inputs)) over every element of every
    input, in float64: (phi(v + s) - phi(v - s)) / 2s with s = LAYER_FD_STEP * max(1, |v|)."""
    g = jnp.asarray(np.asarray(upstream, np.float64))
    base = _as64(inputs)
    y = None if y is None else jnp.asarray(y)
    steps = tuple(LAYER_FD_STEP * np.maximum(1.0, np.abs(np.asarray(v).ravel())) for v in base)
    moved = _compiled_fd(layer, _key(options))(base, g, y, tuple(map(jnp.asarray, steps)))
    return tuple(((np.asarray(p) - np.asarray(m)) / (2 * s)).reshape(v.shape)
                 for (p, m), s, v in zip(moved, steps, base))
