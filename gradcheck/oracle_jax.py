"""An independent JAX model of one BPTT window, written from bptt.md: loss, h_last, grads.

Never calls the NumPy reference. Computes in float64 (this module turns on JAX's
x64 mode). To avoid a compile per shape, every array is zero-padded up to a size
bucket and masked: padded hidden and state units have zero weights into the real
ones, padded outputs and examples are masked out of the loss, padded time steps
freeze the state. Activations, loss and reduction are run-time arguments, so one
compiled function serves every configuration that falls in the same buckets.

The model gives every time step its own copy of the shared weights, so the
gradient of each copy is that step's contribution (``per_step``); their sum is
the weights' gradient.
"""
import functools
from typing import NamedTuple

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

__all__ = ["JaxResult", "jax_window", "jax_truncated"]

PARAM_NAMES = ("W1", "b1", "W2", "U", "b2", "W3", "b3")
ACTIVATION_NAMES = ("tanh", "sigmoid", "relu", "identity")
LOSS_NAMES = ("l2", "ce", "bce")


class JaxResult(NamedTuple):
    """Oracle outputs for one window, float64 NumPy. per_step[name]: [T, *shape]."""
    loss: float
    h_last: np.ndarray
    grads: dict
    per_step: dict
    step_losses: np.ndarray
    states: np.ndarray                   # [T+1, B, R]: h0, h_1, .., h_T


def _activation(index, z):
    return lax.switch(index, [jnp.tanh, jax.nn.sigmoid, jax.nn.relu, lambda v: v], z)


def _step_loss(loss_id, f3_id, z3, y_t, ids_t, mask_o):
    """Per-example loss of one step. Shapes: z3, y_t [B, O]; ids_t [B]; mask_o [O]."""
    def l2():
        err = (_activation(f3_id, z3) - y_t) * mask_o
        return 0.5 * jnp.sum(err * err, axis=-1)

    def ce():
        logits = jnp.where(mask_o, z3, -jnp.inf)
        m = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
        lse = m[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - m), axis=-1))
        return lse - jnp.take_along_axis(z3, ids_t[:, None], axis=-1)[:, 0]

    def bce():
        return jnp.sum((jax.nn.softplus(z3) - y_t * z3) * mask_o, axis=-1)

    return lax.switch(loss_id, [l2, ce, bce])


def _window_loss(steps, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b, mask_o,
                 act_ids, loss_id, scale):
    """Loss of a window whose weights are given per step (steps[name]: [T, *shape]).

    cut_t [T] bool: the state's derivative is stopped as it enters that step (a
    truncated-BPTT window starts there); inject_t [T] bool: the state's value is
    replaced by h_in [T, B, R] there; weight_t [T]: each step's loss weight."""
    f1, f2, f3 = act_ids

    def step(h_prev, inputs):
        (W1, b1, W2, U, b2, W3, b3), x_t, y_t, ids_t, live, cut, inject, h_in_t, weight = inputs
        h_prev = jnp.where(inject, h_in_t, h_prev)
        h_prev = jnp.where(cut, lax.stop_gradient(h_prev), h_prev)
        z1 = x_t @ W1 + b1                                  # [B, H]
        a = _activation(f1, z1)
        z2 = a @ W2 + h_prev @ U + b2                       # [B, R]
        h = jnp.where(live, _activation(f2, z2), h_prev)    # padded steps keep the state
        z3 = h @ W3 + b3                                    # [B, O]
        loss_t = jnp.sum(_step_loss(loss_id, f3, z3, y_t, ids_t, mask_o) * mask_b) * weight
        return h, (h, loss_t)

    weights = tuple(steps[n] for n in PARAM_NAMES)
    h_last, (states, losses) = lax.scan(
        step, h0, (weights, x, y, ids, mask_t, cut_t, inject_t, h_in, weight_t))
    return jnp.sum(losses) / scale, (h_last, states, losses / scale)


@jax.jit
def _value_and_grads(params, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b,
                     mask_o, act_ids, loss_id, scale):
    T = x.shape[0]
    steps = {n: jnp.broadcast_to(p, (T,) + p.shape) for n, p in params.items()}
    fn = jax.value_and_grad(_window_loss, argnums=(0, 1, 2), has_aux=True)
    (loss, (h_last, states, losses)), (g_steps, g_x, g_h0) = fn(
        steps, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b, mask_o, act_ids,
        loss_id, scale)
    return loss, h_last, states, losses, g_steps, g_x, g_h0


def _bucket(n, smallest):
    """The padded size for a dimension of n: a power of two, at least ``smallest``."""
    return max(smallest, 1 << (n - 1).bit_length())


def _pad(arr, shape):
    out = np.zeros(shape, dtype=arr.dtype)
    out[tuple(slice(0, s) for s in arr.shape)] = arr
    return out


@functools.lru_cache(maxsize=None)
def _masks(T, B, O, Tp, Bp, Op):
    return (np.arange(Tp) < T, (np.arange(Bp) < B).astype(np.float64), np.arange(Op) < O)


def jax_window(params, x, y, h0, *, loss, activations, reduction):
    """Loss, h_last and the nine gradients of one window, in float64.

    Shapes: as in the reference contract; inputs of any float dtype are upcast.
    Returns a JaxResult (per_step holds each weight's per-step gradients [T, ...]).
    """
    T = x.shape[0]
    return _run(params, x, y, h0, np.zeros(T, bool), None, np.ones(T), loss, activations,
                reduction)


def jax_truncated(params, x, y, h0, *, interval, loss, activations, reduction, window=None,
                  carried=None):
    """A whole [T, B, I] sequence under truncated BPTT, in one pass, from the equations.

    The state's value runs through the sequence; its derivative is stopped at the
    start of every window of ``interval`` steps. With ``window`` (1-based), only
    that window's steps count in the loss, so the gradients are that window's
    alone; without it, the loss and gradients sum over all windows. ``carried``
    [W-1, B, R], if given, is the state's value entering windows 2..W (another
    implementation's carried state), used in place of the model's own. grads["x"]
    is [T, B, I] over the whole sequence; grads["h0"] is the first state's.
    """
    T = x.shape[0]
    steps = np.arange(T)
    cut = (steps % interval == 0) & (steps > 0)
    weight = np.ones(T) if window is None else (steps // interval == window - 1).astype(float)
    h_in = None
    if carried is not None:
        h_in = np.zeros((T,) + np.shape(h0))
        h_in[cut] = np.asarray(carried, np.float64).reshape((-1,) + np.shape(h0))
    return _run(params, x, y, h0, cut, h_in, weight, loss, activations, reduction)


def _run(params, x, y, h0, cut, h_in, weight, loss, activations, reduction):
    """Pad to the size buckets, run the compiled model, cut the padding off again."""
    T, B, I = x.shape
    H, R, O = params["W1"].shape[1], params["W2"].shape[1], params["W3"].shape[1]
    Tp, Bp = _bucket(T, 4), _bucket(B, 16)
    Ip, Hp, Rp, Op = (_bucket(n, 16) for n in (I, H, R, O))
    shapes = {"W1": (Ip, Hp), "b1": (Hp,), "W2": (Hp, Rp), "U": (Rp, Rp), "b2": (Rp,),
              "W3": (Rp, Op), "b3": (Op,)}
    padded = {n: _pad(np.asarray(params[n], np.float64), shapes[n]) for n in PARAM_NAMES}
    xp = _pad(np.asarray(x, np.float64), (Tp, Bp, Ip))
    h0p = _pad(np.asarray(h0, np.float64), (Bp, Rp))
    if loss == "ce":
        ids, yp = _pad(np.asarray(y, np.int32), (Tp, Bp)), np.zeros((Tp, Bp, Op))
    else:
        ids, yp = np.zeros((Tp, Bp), np.int32), _pad(np.asarray(y, np.float64), (Tp, Bp, Op))
    mask_t, mask_b, mask_o = _masks(T, B, O, Tp, Bp, Op)
    cut_t = _pad(np.asarray(cut, bool), (Tp,))
    inject_t = cut_t if h_in is not None else np.zeros(Tp, bool)
    h_in = np.zeros((Tp, Bp, Rp)) if h_in is None else _pad(h_in, (Tp, Bp, Rp))
    weight_t = _pad(np.asarray(weight, np.float64), (Tp,))
    act_ids = tuple(np.int32(ACTIVATION_NAMES.index(a)) for a in activations)
    scale = float(B) if reduction == "mean" else 1.0
    out = _value_and_grads(padded, xp, h0p, yp, ids, mask_t, cut_t, inject_t, h_in, weight_t,
                           mask_b, mask_o, act_ids, np.int32(LOSS_NAMES.index(loss)), scale)
    loss_v, h_last, states, losses, g_steps, g_x, g_h0 = jax.device_get(out)
    per_step = {n: np.asarray(g_steps[n])[(slice(0, T),) + tuple(slice(0, s) for s in
                                                                   params[n].shape)]
                for n in PARAM_NAMES}
    grads = {n: g.sum(axis=0) for n, g in per_step.items()}
    grads["x"] = np.asarray(g_x)[:T, :B, :I]
    grads["h0"] = np.asarray(g_h0)[:B, :R]
    states = np.concatenate([np.asarray(h0, np.float64)[None], np.asarray(states)[:T, :B, :R]])
    return JaxResult(float(loss_v), np.asarray(h_last)[:B, :R], grads, per_step,
                     np.asarray(losses)[:T], states)
