"""The JAX oracle of dense -> GRU -> dense, written from the equations (never from the
reference): loss, h_last, every gradient and each step's share of the weights'.

    r = s(zx_r + h Wh_r [+ bh_r])   z = s(zx_z + h Wh_z [+ bh_z])    zx = a Wx + b
    n = tanh(zx_n + (r h) Wh_n)            (reset before)
    n = tanh(zx_n + r (h Wh_n + bh_n))     (reset after)
    h_t = (1 - z) n + z h_{t-1}

This module declares the cell's step (each form); the dense layers, the losses, the scan,
the size buckets, float64 and the compiled-executable cache are the RNN oracle's
(gradcheck.oracle_jax.cell_window).
"""
import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..model import describe
from ..oracle_jax import CellOracle, cell_window

__all__ = ["GRUResult", "jax_window"]


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


def _step_before(p, a, carry):
    """One GRU step, the reset gate before the recurrent product: a [B, H], carry (h,)."""
    import jax
    import jax.numpy as jnp

    (h_prev,) = carry
    R = h_prev.shape[-1]
    zx = a @ p["Wx"] + p["b"]                               # [B, 3R]
    Wh = p["Wh"]
    r = jax.nn.sigmoid(zx[:, :R] + h_prev @ Wh[:, :R])
    z = jax.nn.sigmoid(zx[:, R:2 * R] + h_prev @ Wh[:, R:2 * R])
    n = jnp.tanh(zx[:, 2 * R:] + (r * h_prev) @ Wh[:, 2 * R:])
    return ((1.0 - z) * n + z * h_prev,)


def _step_after(p, a, carry):
    """One GRU step, the reset gate after the recurrent product (with bh)."""
    import jax
    import jax.numpy as jnp

    (h_prev,) = carry
    R = h_prev.shape[-1]
    zx = a @ p["Wx"] + p["b"]                               # [B, 3R]
    u = h_prev @ p["Wh"] + p["bh"]                          # [B, 3R]
    r = jax.nn.sigmoid(zx[:, :R] + u[:, :R])
    z = jax.nn.sigmoid(zx[:, R:2 * R] + u[:, R:2 * R])
    n = jnp.tanh(zx[:, 2 * R:] + r * u[:, 2 * R:])
    return ((1.0 - z) * n + z * h_prev,)


@functools.lru_cache(maxsize=None)
def _oracle(after):
    model = describe("gru", **({"reset_after": True} if after else {}))
    return CellOracle("gru-after" if after else "gru", model,
                      _step_after if after else _step_before, Path(__file__).read_bytes())


def jax_window(params, x, y, h0, *, loss, activations, reduction, reset_after=False):
    """Loss, h_last and the gradients of one window, in float64 (bh with ``reset_after``).

    Shapes: params W1 [I,H], b1 [H], Wx [H,3R], Wh [R,3R], b [3R] (and bh [3R]), W3 [R,O],
    b3 [O]; x [T,B,I]; y [T,B,O] or [T,B] ids (ce); h0 [B,R]. Returns a GRUResult."""
    out = cell_window(_oracle(bool(reset_after)), params, x, y, (h0,), loss=loss,
                      activations=activations, reduction=reduction)
    grads = dict(out.grads, h0=out.grads_states[0])
    return GRUResult(out.loss, out.last[0], grads, out.per_step, out.step_losses,
                     out.trajectories[0])
