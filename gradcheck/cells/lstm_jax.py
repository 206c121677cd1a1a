"""The JAX oracle of dense -> LSTM -> dense, written from the equations (never from the
reference): loss, h_last, c_last, every gradient and each step's share of the weights'.

    zg_t = a_t Wx + h_{t-1} Wh + b     (blocks i, f, g, o)
    c_t = s(zf) c_{t-1} + s(zi) tanh(zg)        h_t = s(zo) tanh(c_t)

The losses and f1, f3 are the RNN oracle's (gradcheck.oracle_jax). Computes in float64
(``jax.enable_x64`` around its own calls only); one compiled function per shape and
configuration, kept in this process. Every step has its own copy of the shared weights,
so their gradients are the per-step contributions (``per_step``).
"""
import functools
from typing import NamedTuple

import numpy as np

from ..oracle_jax import activation, cell_loss_inputs, step_loss

__all__ = ["LSTMResult", "jax_window"]

PARAM_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3")


class LSTMResult(NamedTuple):
    """One window, float64 NumPy. per_step[name]: [T, *shape]; states, cells [T+1, B, R]
    (h0 then h_1..h_T; c0 then c_1..c_T); step_losses [T]."""
    loss: float
    h_last: np.ndarray
    c_last: np.ndarray
    grads: dict
    per_step: dict
    step_losses: np.ndarray
    states: np.ndarray
    cells: np.ndarray

    @property
    def extra_states(self):
        """Each further state at every step, by its incoming name: {"c0": cells}."""
        return {"c0": self.cells}

    @property
    def outputs(self):
        """The forward's outputs by the model's names."""
        return {"loss": self.loss, "h_last": self.h_last, "c_last": self.c_last}


def _window_loss(steps, x, h0, c0, y, ids, acts, loss_id, scale):
    import jax
    import jax.numpy as jnp
    from jax import lax

    f1, f3 = acts
    R = h0.shape[-1]
    mask_o = jnp.ones(steps["W3"].shape[-1], bool)              # [O]: every output counts

    def step(carry, inputs):
        h_prev, c_prev = carry
        (W1, b1, Wx, Wh, b, W3, b3), x_t, y_t, ids_t = inputs
        a = activation(f1, x_t @ W1 + b1)                   # [B, H]
        zg = a @ Wx + h_prev @ Wh + b                       # [B, 4R]
        i = jax.nn.sigmoid(zg[:, :R])
        f = jax.nn.sigmoid(zg[:, R:2 * R])
        g = jnp.tanh(zg[:, 2 * R:3 * R])
        o = jax.nn.sigmoid(zg[:, 3 * R:])
        c = f * c_prev + i * g
        h = o * jnp.tanh(c)
        z3 = h @ W3 + b3                                    # [B, O]
        loss_t = jnp.sum(step_loss(loss_id, f3, z3, y_t, ids_t, mask_o))
        return (h, c), (h, c, loss_t)

    weights = tuple(steps[n] for n in PARAM_NAMES)
    (h_last, c_last), (hs, cs, losses) = lax.scan(step, (h0, c0), (weights, x, y, ids))
    return jnp.sum(losses) / scale, (h_last, c_last, hs, cs, losses / scale)


@functools.lru_cache(maxsize=None)
def _compiled():
    import jax
    import jax.numpy as jnp

    def run(params, x, h0, c0, y, ids, acts, loss_id, scale):
        T = x.shape[0]
        steps = {n: jnp.broadcast_to(p, (T,) + p.shape) for n, p in params.items()}
        fn = jax.value_and_grad(_window_loss, argnums=(0, 1, 2, 3), has_aux=True)
        return fn(steps, x, h0, c0, y, ids, acts, loss_id, scale)
    return jax.jit(run)


def jax_window(params, x, y, h0, c0, *, loss, activations, reduction):
    """Loss, h_last, c_last and the ten gradients of one window, in float64.

    Shapes: params W1 [I,H], b1 [H], Wx [H,4R], Wh [R,4R], b [4R], W3 [R,O], b3 [O];
    x [T,B,I]; y [T,B,O] or [T,B] ids (ce); h0, c0 [B,R]. Returns an LSTMResult."""
    import jax

    T, B, _ = x.shape
    O = np.shape(params["W3"])[1]
    f64 = {n: np.asarray(params[n], np.float64) for n in PARAM_NAMES}
    yy, ids, acts, loss_id, scale = cell_loss_inputs(y, T, B, O, loss, activations, reduction)
    with jax.enable_x64(True):
        out = jax.device_get(_compiled()(
            f64, np.asarray(x, np.float64), np.asarray(h0, np.float64),
            np.asarray(c0, np.float64), yy, ids, acts, loss_id, scale))
    (value, (h_last, c_last, hs, cs, losses)), (g_steps, g_x, g_h0, g_c0) = out
    per_step = {n: np.asarray(g_steps[n]) for n in PARAM_NAMES}
    grads = {n: g.sum(axis=0) for n, g in per_step.items()}
    grads.update(x=np.asarray(g_x), h0=np.asarray(g_h0), c0=np.asarray(g_c0))
    states = np.concatenate([np.asarray(h0, np.float64)[None], np.asarray(hs)])
    cells = np.concatenate([np.asarray(c0, np.float64)[None], np.asarray(cs)])
    return LSTMResult(float(value), np.asarray(h_last), np.asarray(c_last), grads, per_step,
                      np.asarray(losses), states, cells)
