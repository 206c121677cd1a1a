"""The JAX oracle of dense -> LSTM -> dense, written from the equations (never from the
reference): loss, h_last, c_last, every gradient and each step's share of the weights'.

    zg_t = a_t Wx + h_{t-1} Wh + b     (blocks i, f, g, o)
    c_t = s(zf) c_{t-1} + s(zi) tanh(zg)        h_t = s(zo) tanh(c_t)

This module declares the cell's step (the layer checks' own, cells/lstm_layers.py); the
dense layers, the losses, the scan, the size buckets, float64 and the compiled-executable
cache are the RNN oracle's (gradcheck.oracle_jax.cell_window). Every step has its own copy of the shared weights, so
their gradients are the per-step contributions (``per_step``).
"""
import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..model import describe
from ..oracle_jax import CellOracle, cell_window

__all__ = ["LSTMResult", "jax_window"]


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


def _step(p, a, carry):
    """One LSTM step: a [B, H], carry (h_prev, c_prev) [B, R] each; the layer checks'
    step (lstm_layers, written from the equations)."""
    from .lstm_layers import lstm_step
    h_prev, c_prev = carry
    return lstm_step(a, h_prev, c_prev, p["Wx"], p["Wh"], p["b"])


@functools.lru_cache(maxsize=None)
def _oracle():
    here = Path(__file__)                # the step's maths lives beside: both key the cache
    return CellOracle("lstm", describe("lstm"), _step,
                      here.read_bytes() + here.with_name("lstm_layers.py").read_bytes())


def jax_window(params, x, y, h0, c0, *, loss, activations, reduction):
    """Loss, h_last, c_last and the ten gradients of one window, in float64.

    Shapes: params W1 [I,H], b1 [H], Wx [H,4R], Wh [R,4R], b [4R], W3 [R,O], b3 [O];
    x [T,B,I]; y [T,B,O] or [T,B] ids (ce); h0, c0 [B,R]. Returns an LSTMResult."""
    out = cell_window(_oracle(), params, x, y, (h0, c0), loss=loss, activations=activations,
                      reduction=reduction)
    grads = dict(out.grads, h0=out.grads_states[0], c0=out.grads_states[1])
    return LSTMResult(out.loss, *out.last, grads, out.per_step, out.step_losses,
                      *out.trajectories)
