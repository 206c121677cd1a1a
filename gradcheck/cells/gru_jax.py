"""The JAX oracle of dense -> GRU -> dense, written from the equations (never from the
reference): loss, h_last, every gradient and each step's share of the weights'.

    r = s(zx_r + h Wh_r [+ bh_r])   z = s(zx_z + h Wh_z [+ bh_z])    zx = a Wx + b
    n = tanh(zx_n + (r h) Wh_n)            (reset before)
    n = tanh(zx_n + r (h Wh_n + bh_n))     (reset after)
    h_t = (1 - z) n + z h_{t-1}

The losses and f1, f3 are the RNN oracle's (gradcheck.oracle_jax); float64 within its own
calls; one compiled function per shape and configuration, kept in this process.
"""
import functools
from typing import NamedTuple

import numpy as np

from ..oracle_jax import activation, cell_loss_inputs, step_loss

__all__ = ["GRUResult", "jax_window"]

PARAM_NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3")


class GRUResult(NamedTuple):
    """One window, float64 NumPy. per_step[name]: [T, *shape]; states [T+1, B, R]."""
    loss: float
    h_last: np.ndarray
    grads: dict
    per_step: dict
    step_losses: np.ndarray
    states: np.ndarray

    @property
    def extra_states(self):
        """The GRU has no state but h: {}."""
        return {}

    @property
    def outputs(self):
        return {"loss": self.loss, "h_last": self.h_last}


def _window_loss(steps, x, h0, y, ids, acts, loss_id, scale, after):
    import jax
    import jax.numpy as jnp
    from jax import lax

    f1, f3 = acts
    R = h0.shape[-1]
    mask_o = jnp.ones(steps["W3"].shape[-1], bool)              # [O]: every output counts
    names = PARAM_NAMES + (("bh",) if after else ())

    def step(h_prev, inputs):
        w, x_t, y_t, ids_t = inputs
        p = dict(zip(names, w))
        a = activation(f1, x_t @ p["W1"] + p["b1"])            # [B, H]
        zx = a @ p["Wx"] + p["b"]                               # [B, 3R]
        Wh = p["Wh"]
        if after:
            u = h_prev @ Wh + p["bh"]
            r = jax.nn.sigmoid(zx[:, :R] + u[:, :R])
            z = jax.nn.sigmoid(zx[:, R:2 * R] + u[:, R:2 * R])
            n = jnp.tanh(zx[:, 2 * R:] + r * u[:, 2 * R:])
        else:
            r = jax.nn.sigmoid(zx[:, :R] + h_prev @ Wh[:, :R])
            z = jax.nn.sigmoid(zx[:, R:2 * R] + h_prev @ Wh[:, R:2 * R])
            n = jnp.tanh(zx[:, 2 * R:] + (r * h_prev) @ Wh[:, 2 * R:])
        h = (1.0 - z) * n + z * h_prev
        z3 = h @ p["W3"] + p["b3"]
        return h, (h, jnp.sum(step_loss(loss_id, f3, z3, y_t, ids_t, mask_o)))

    weights = tuple(steps[n] for n in names)
    h_last, (hs, losses) = lax.scan(step, h0, (weights, x, y, ids))
    return jnp.sum(losses) / scale, (h_last, hs, losses / scale)


@functools.lru_cache(maxsize=None)
def _compiled(after):
    import jax
    import jax.numpy as jnp

    def run(params, x, h0, y, ids, acts, loss_id, scale):
        T = x.shape[0]
        steps = {n: jnp.broadcast_to(p, (T,) + p.shape) for n, p in params.items()}
        fn = jax.value_and_grad(_window_loss, argnums=(0, 1, 2), has_aux=True)
        return fn(steps, x, h0, y, ids, acts, loss_id, scale, after)
    return jax.jit(run)


def jax_window(params, x, y, h0, *, loss, activations, reduction, reset_after=False):
    """Loss, h_last and the gradients of one window, in float64 (bh with ``reset_after``).

    Shapes: params W1 [I,H], b1 [H], Wx [H,3R], Wh [R,3R], b [3R] (and bh [3R]), W3 [R,O],
    b3 [O]; x [T,B,I]; y [T,B,O] or [T,B] ids (ce); h0 [B,R]. Returns a GRUResult."""
    import jax

    T, B, _ = x.shape
    O = np.shape(params["W3"])[1]
    names = PARAM_NAMES + (("bh",) if reset_after else ())
    f64 = {n: np.asarray(params[n], np.float64) for n in names}
    yy, ids, acts, loss_id, scale = cell_loss_inputs(y, T, B, O, loss, activations, reduction)
    with jax.enable_x64(True):
        out = jax.device_get(_compiled(bool(reset_after))(
            f64, np.asarray(x, np.float64), np.asarray(h0, np.float64), yy, ids, acts,
            loss_id, scale))
    (value, (h_last, hs, losses)), (g_steps, g_x, g_h0) = out
    per_step = {n: np.asarray(g_steps[n]) for n in names}
    grads = {n: g.sum(axis=0) for n, g in per_step.items()}
    grads.update(x=np.asarray(g_x), h0=np.asarray(g_h0))
    states = np.concatenate([np.asarray(h0, np.float64)[None], np.asarray(hs)])
    return GRUResult(float(value), np.asarray(h_last), grads, per_step, np.asarray(losses),
                     states)
