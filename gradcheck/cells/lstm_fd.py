"""Central finite differences of the dense -> LSTM -> dense window's loss, every element
(NumPy, float64), in difference form like the RNN's engine (gradcheck.oracle_fd).

Written from the equations, independent of the reference and of the JAX oracle:

    zg_t = a_t Wx + h_{t-1} Wh + b      (blocks i, f, g, o)           [B, 4R]
    c_t = f c_{t-1} + i g               h_t = o tanh(c_t)              [B, R]

A perturbed copy carries only its differences from the unperturbed window, dh and dc.
Each gate's change comes from the addition formulas (fd_window_state.activation_change),
and the products of gates are expanded so that every term is a change times an O(1)
value, never a difference of two O(1) values:

    dc_t = f dc_{t-1} + df (c_{t-1} + dc_{t-1}) + i dg + di (g + dg)
    dh_t = o dtanh(c_t) + do (tanh(c_t) + dtanh(c_t))

so rounding stays relative to the perturbation and the step can be as tiny as the RNN's
(tolerances.FD_STEP). Which copies run for each array: gradcheck/cells/fd_cells.py.
"""
import numpy as np

from ..fd_window_state import (WindowState, activation_aux, activation_change,
                               tanh_aux_scaled, tanh_change_into)
from ..tolerances import FD_STEP
from . import fd_cells
from .fd_cells import by_block

__all__ = ["LSTMWindowState", "fd_window", "fd_directional", "NAMES"]

NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0", "c0")
GATE_ACTIVATIONS = ("sigmoid", "sigmoid", "tanh", "sigmoid")       # i, f, g, o


class LSTMWindowState(WindowState):
    """The unperturbed window with an LSTM cell. Beside WindowState's attributes:
    zg [T, B, 4R] the gates' pre-activations; gates [T, B, 4R] after their nonlinearity
    (gate_values: its four blocks i, f, g, o [T, B, R]); c [T + 1, B, R] (c[0] = c0);
    tc = tanh(c_t) [T, B, R]; gate_scale [4, 1, 1, 1] (1/2 for a sigmoid's block, 1 for
    g's); gate_aux: activation_aux of tanh at gate_scale * zg, block by block [4, T, B, R];
    tc_aux: of tanh(c_t); Wh_blocks [4, R, R]."""

    def __init__(self, params, x, y, h0, c0, **options):
        self.c0 = np.asarray(c0, np.float64)
        super().__init__(params, x, y, h0, **options)

    def run_cell(self, h0):
        p = self.params
        T, B, _ = self.x.shape
        R = p["Wh"].shape[0]
        self.zg = self.a @ p["Wx"] + p["b"]                      # [T, B, 4R], + h Wh below
        self.gates = np.empty_like(self.zg)
        h, c = np.empty((T + 1, B, R)), np.empty((T + 1, B, R))
        h[0], c[0] = h0, self.c0
        for t in range(T):
            self.zg[t] += h[t] @ p["Wh"]
            for k, name in enumerate(GATE_ACTIVATIONS):
                block = slice(k * R, (k + 1) * R)
                z = self.zg[t, :, block]
                self.gates[t, :, block] = np.tanh(z) if name == "tanh" else 1 / (1 + np.exp(-z))
            i, f, g, o = self.gate_blocks(self.gates[t])
            c[t + 1] = f * c[t] + i * g
            h[t + 1] = o * np.tanh(c[t + 1])
        self.c = c
        self.tc = np.tanh(c[1:])                                 # [T, B, R]
        # every gate as a tanh: s(z) = (1 + tanh(z / 2)) / 2, so one pass of the tanh's
        # change over the four blocks (the halving is exact in binary)
        self.gate_scale = np.array([0.5 if a == "sigmoid" else 1.0
                                    for a in GATE_ACTIVATIONS])[:, None, None, None]
        scaled = by_block(self.zg, 4) * self.gate_scale          # [4, T, B, R]
        self.gate_aux = activation_aux("tanh", scaled, np.tanh(scaled))
        self.gate_values = tuple(by_block(self.gates, 4))        # i, f, g, o [T, B, R]
        i, _, g, _ = self.gate_values
        # what dc_t is the moved gate's change times when one gate column moves alone
        # (_one_column_step): g for i, c_{t-1} for f, i for g, nothing for o [4, T, B, R]
        self.dc_factor = np.stack([g, c[:-1], i, np.zeros_like(g)])
        self.tc_aux = activation_aux("tanh", c[1:], self.tc)
        self.gate_aux_scaled = tanh_aux_scaled(self.gate_aux, self.gate_scale)
        self.tc_aux_scaled = tanh_aux_scaled(self.tc_aux, 1.0)
        self.Wh_blocks = by_block(p["Wh"], 4)                    # [4, R, R]
        return h

    def gate_blocks(self, arr):
        """The four blocks i, f, g, o of arr's last axis (views)."""
        R = arr.shape[-1] // 4
        return tuple(arr[..., k * R:(k + 1) * R] for k in range(4))

    def cell_growth(self):
        return max(float(np.max(np.abs(self.zg), initial=0.0)),
                   float(np.max(np.abs(self.c), initial=0.0)))

    def copies_change(self, t0, G, starts, into_x=None, moved=None, column=None):
        """Run steps t0..T-1 for G copies of the batch (+ copies, then - copies);
        ``starts``, ``into_x``, ``moved``, ``column`` as in fd_cells (moved: Wh).
        Returns (change [G/2, B], kink [G/2, B])."""
        T, B, _ = self.x.shape
        R = self.c.shape[-1]
        N, rows = G * B, np.tile(np.arange(B), G)
        zeros = np.zeros((G, B, R))
        dh = starts["h0"] if "h0" in starts else zeros
        dc = starts["c0"] if "c0" in starts else zeros
        change, kink = np.zeros(N // 2), np.zeros(N // 2, bool)
        one_column = column is not None and not starts
        dzg = self.scratch.get("dzg", (4, G, B, R))
        for t in range(t0, T):
            first = one_column and t == t0                       # dh = 0: dh Wh = 0
            if first:
                dzg.fill(0.0)
            else:
                np.matmul(dh.reshape(1, N, R), self.Wh_blocks, out=dzg.reshape(4, N, R))
            if into_x is not None:
                into_x(t, dzg)
            if moved is not None:                                # Wh: h_{t-1} of each copy
                _, r, col, sign = moved
                every = np.arange(G)
                dzg[col // R, every, :, col % R] += sign[:, None] * (self.h[t][:, r].T
                                                                     + dh[every, :, r])
            # the step's (dh, dc) go to the scratch arrays the previous step did not use
            out = tuple(self.scratch.get(f"{v}{t % 2}", (G, B, R)) for v in ("dh", "dc"))
            if first:
                dh, dc = self._one_column_step(t, dzg, column, out)
            else:
                dh, dc = self._step(t, dzg, dh, dc, out)
            step, k = self.pair_loss_change(t, dh.reshape(N, R), rows, True)
            change += step
            if k is not None:
                kink |= k
        return change.reshape(G // 2, B), kink.reshape(G // 2, B)

    def _gate_changes(self, t, dzg):
        """The four gates' changes [4, G, B, R] (a scratch array) at step t from the
        change of their pre-activations dzg [4, G, B, R]."""
        dq = self.scratch.get("dq", dzg.shape)
        if not tanh_change_into(dzg, tuple(a[:, t, None] for a in self.gate_aux_scaled), dq,
                                self.scratch.get("work", dzg.shape)):
            np.multiply(activation_change("tanh", dzg * self.gate_scale,
                                          tuple(a[:, t, None] for a in self.gate_aux)),
                        self.gate_scale, out=dq)
        return dq

    def _tanh_c_change(self, t, dc):
        """tanh(c_t + dc) - tanh(c_t) [G, B, R] (a scratch array)."""
        dtc = self.scratch.get("dtc", dc.shape)
        if not tanh_change_into(dc, tuple(a[t] for a in self.tc_aux_scaled), dtc,
                                self.scratch.get("work_c", dc.shape)):
            dtc[...] = activation_change("tanh", dc, tuple(a[t] for a in self.tc_aux))
        return dtc

    def _step(self, t, dzg, dh, dc, out):
        """Step t of the copies: (dh, dc) [G, B, R] from the previous ones and the change
        of the gates' pre-activations dzg [4, G, B, R], written into ``out`` (two
        arrays [G, B, R], neither of them dh or dc)."""
        di, df, dg, do = self._gate_changes(t, dzg)
        i, f, g, o = (v[t] for v in self.gate_values)
        dh_new, dc_new = out
        term = self.scratch.get("term", dc.shape)
        # products of gates, each term a change times an O(1) value:
        # dc = f dc + df (c + dc) + i dg + di (g + dg)
        np.add(self.c[t], dc, out=term)
        term *= df
        np.multiply(f, dc, out=dc_new)
        dc_new += term
        np.multiply(i, dg, out=term)
        dc_new += term
        np.add(g, dg, out=term)
        term *= di
        dc_new += term
        dtc = self._tanh_c_change(t, dc_new)
        # dh = o dtanh(c) + do (tanh(c) + dtanh(c))
        np.add(self.tc[t], dtc, out=dh_new)
        dh_new *= do
        dtc *= o
        dh_new += dtc
        return dh_new, dc_new

    def _one_column_step(self, t, dzg, col, out):
        """Step t of copies that enter it with no state difference and whose gate
        pre-activations move in one column each (col [G]; dzg [4, G, B, R] zero
        elsewhere): one gate changes, and c and h in that column's unit alone. Returns
        (dh, dc) [G, B, R] written into ``out``, the dense step's values (its other terms
        are exact zeros)."""
        _, G, B, R = dzg.shape
        every = np.arange(G)
        gate, unit = np.divmod(col, R)                           # [G]: block (i f g o), unit

        def at(arr):                                             # [T, B, R] at t, unit: [G, B]
            return arr[t].T[unit]

        def at_gate(arr):                                        # [4, T, B, R] likewise
            return arr[gate, t, :, unit]

        k = self.gate_scale[gate, :, 0, 0]                       # [G, 1]
        dq = activation_change("tanh", dzg[gate, every, :, unit] * k,
                               tuple(at_gate(a) for a in self.gate_aux))
        dq *= k                                                  # the moved gate's change [G, B]
        dc_u = dq * at_gate(self.dc_factor)
        dtc = activation_change("tanh", dc_u, tuple(at(a) for a in self.tc_aux))
        # dh = o dtanh(c) + do (tanh(c) + dtanh(c)), do = dq where o moved
        dh_u = at(self.tc) + dtc
        dh_u *= np.where((gate == 3)[:, None], dq, 0.0)
        dtc *= at(self.gate_values[3])
        dh_u += dtc
        dh, dc = out
        dh.fill(0.0)
        dc.fill(0.0)
        dh[every, :, unit], dc[every, :, unit] = dh_u, dc_u
        return dh, dc




def fd_window(params, x, y, h0, c0, *, loss, activations, reduction, names=None):
    """Central differences of the window's loss for each array in ``names`` (default all
    ten, NAMES). Shapes: as in the LSTM contract. Returns oracle_fd.FDResult."""
    w = LSTMWindowState(params, x, y, h0, c0, loss=loss, activations=activations,
                        reduction=reduction)
    return fd_cells.fd_window(w, names or NAMES)


def fd_directional(params, x, y, h0, c0, directions, *, loss, activations, reduction,
                   base_step=FD_STEP):
    """Central differences of the window's loss along ``directions`` ({name: [K, *shape]},
    --mode projections). Returns {name: [K]} (fd_cells.fd_directional)."""
    w = LSTMWindowState(params, x, y, h0, c0, loss=loss, activations=activations,
                        reduction=reduction)
    return fd_cells.fd_directional(w, directions, base_step)
