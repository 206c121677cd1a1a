"""The JAX oracle of dense -> GRU -> dense, written from the equations (never from the
reference): loss, h_last, every gradient and each step's share of the weights'.

    r = s(zx_r + h Wh_r [+ bh_r])   z = s(zx_z + h Wh_z [+ bh_z])    zx = a Wx + b
    n = tanh(zx_n + (r h) Wh_n)            (reset before)
    n = tanh(zx_n + r (h Wh_n + bh_n))     (reset after)
    h_t = (1 - z) n + z h_{t-1}

This module declares the cell's step (each form: the layer checks' own,
cells/gru_layers.py); the dense layers, the losses, the scan, the size buckets, float64
and the compiled-executable cache are the RNN oracle's (gradcheck.oracle_jax.cell_window).
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


def _step(p, a, carry):
    """One GRU step: a [B, H], carry (h_prev,) [B, R]; with bh in p, the reset gate after
    the recurrent product. The layer checks' step (gru_layers, from the equations)."""
    from .gru_layers import gru_step
    (h_prev,) = carry
    return (gru_step(a, h_prev, p["Wx"], p["Wh"], p["b"], p.get("bh")),)


@functools.lru_cache(maxsize=None)
def _oracle(after):
    here = Path(__file__)                # the step's maths lives beside: both key the cache
    model = describe("gru", **({"reset_after": True} if after else {}))
    return CellOracle("gru-after" if after else "gru", model, _step,
                      here.read_bytes() + here.with_name("gru_layers.py").read_bytes())


def jax_window(params, x, y, h0, *, loss, activations, reduction, reset_after=False):
    """Loss, h_last and the gradients of one window, in float64 (bh with ``reset_after``).

    Shapes: params W1 [I,H], b1 [H], Wx [H,3R], Wh [R,3R], b [3R] (and bh [3R]), W3 [R,O],
    b3 [O]; x [T,B,I]; y [T,B,O] or [T,B] ids (ce); h0 [B,R]. Returns a GRUResult."""
    out = cell_window(_oracle(bool(reset_after)), params, x, y, (h0,), loss=loss,
                      activations=activations, reduction=reduction)
    grads = dict(out.grads, h0=out.grads_states[0])
    return GRUResult(out.loss, out.last[0], grads, out.per_step, out.step_losses,
                     out.trajectories[0])
