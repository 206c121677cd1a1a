"""Central finite differences of the dense -> GRU -> dense window's loss, every element
(NumPy, float64), in difference form like the RNN's and the LSTM's engines.

Written from the equations, independent of the reference and of the JAX oracle (blocks
r, z, n; zx = a Wx + b; u = h_{t-1} Wh (+ bh)):

    r = s(zx_r + u_r)   z = s(zx_z + u_z)
    n = tanh(zx_n + (r h_{t-1}) Wh_n)      (reset before)   n = tanh(zx_n + r u_n)  (after)
    h_t = (1 - z) n + z h_{t-1}

A copy carries only dh = h_copy - h. The products expand so that every term is a change
times an O(1) value:

    d(r h) = dr (h + dh) + r dh                 d(r u_n) = dr (u_n + du_n) + r du_n
    dh_t = (1 - z) dn + z dh + dz (h + dh - n - dn)

Which copies run for each array: gradcheck/cells/fd_cells.py.
"""
import numpy as np

from ..fd_window_state import (WindowState, activation_aux, activation_change,
                               tanh_aux_scaled, tanh_change_into)
from ..tolerances import FD_STEP
from . import fd_cells
from .fd_cells import by_block

__all__ = ["GRUWindowState", "fd_window", "fd_directional", "NAMES"]

NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0")


class GRUWindowState(WindowState):
    """The unperturbed window with a GRU cell. Beside WindowState's attributes: after
    (the reset after the product); zx [T, B, 3R]; u [T, B, 3R] (h_{t-1} Wh + bh);
    zr, zz, zn and r, z, n [T, B, R]; rh = r h_{t-1}; aux_rz (of r and z as two
    blocks [2, T, B, R]), aux_n, and their tanh_change_into forms; keep = 1 - z; u_n
    [T, B, R] (u's n block); Wh_blocks [3, R, R]."""

    def __init__(self, params, x, y, h0, *, reset_after=False, **options):
        self.after = bool(reset_after)
        super().__init__(params, x, y, h0, **options)

    def run_cell(self, h0):
        p = self.params
        T, B, _ = self.x.shape
        R = p["Wh"].shape[0]
        self.zx = self.a @ p["Wx"] + p["b"]                      # [T, B, 3R]
        self.u = np.empty_like(self.zx)
        self.zr, self.zz, self.zn = (np.empty((T, B, R)) for _ in range(3))
        self.r, self.z, self.n, self.rh = (np.empty((T, B, R)) for _ in range(4))
        h = np.empty((T + 1, B, R))
        h[0] = h0
        for t in range(T):
            self.u[t] = h[t] @ p["Wh"] + (p["bh"] if self.after else 0.0)
            self.zr[t] = self.zx[t, :, :R] + self.u[t, :, :R]
            self.zz[t] = self.zx[t, :, R:2 * R] + self.u[t, :, R:2 * R]
            self.r[t], self.z[t] = (1 / (1 + np.exp(-v)) for v in (self.zr[t], self.zz[t]))
            self.rh[t] = self.r[t] * h[t]
            self.zn[t] = self.zx[t, :, 2 * R:] + (self.r[t] * self.u[t, :, 2 * R:] if self.after
                                                  else self.rh[t] @ p["Wh"][:, 2 * R:])
            self.n[t] = np.tanh(self.zn[t])
            h[t + 1] = (1.0 - self.z[t]) * self.n[t] + self.z[t] * h[t]
        # r and z as two blocks [2, T, B, R]: one pass of the sigmoid's change for both
        self.aux_rz = activation_aux("sigmoid", np.stack([self.zr, self.zz]),
                                     np.stack([self.r, self.z]))
        self.aux_n = activation_aux("tanh", self.zn, self.n)
        # the same changes in place (fd_window_state.tanh_change_into): r and z as tanhs,
        # s(v) = (1 + tanh(v / 2)) / 2, and n
        half = np.stack([self.zr, self.zz]) / 2.0
        self.aux_rz_scaled = tanh_aux_scaled(activation_aux("tanh", half, np.tanh(half)), 0.5)
        self.aux_n_scaled = tanh_aux_scaled(self.aux_n, 1.0)
        self.keep = 1.0 - self.z                                 # [T, B, R], 1 - z
        self.u_n = np.ascontiguousarray(self.u[..., 2 * R:])    # [T, B, R]
        self.Wh_blocks = by_block(p["Wh"], 3)                    # [3, R, R]: r, z, n
        return h

    def cell_growth(self):
        return max(float(np.max(np.abs(v), initial=0.0)) for v in (self.zr, self.zz, self.zn))

    def copies_change(self, t0, G, starts, into_x=None, moved=None, column=None):
        """Run steps t0..T-1 for G copies of the batch (+ copies, then - copies);
        ``starts``, ``into_x``, ``moved`` as in fd_cells (moved: Wh or bh; ``column`` is
        not used: a moved r column reaches every unit of n in the step it moves).
        Returns (change [G/2, B], kink [G/2, B])."""
        T, B, _ = self.x.shape
        R = self.n.shape[-1]
        N, rows = G * B, np.tile(np.arange(B), G)
        every = np.arange(G)
        # the recurrent products: all three blocks after, r and z only before
        K = 3 if self.after else 2
        dh = starts["h0"] if "h0" in starts else np.zeros((G, B, R))
        change, kink = np.zeros(N // 2), np.zeros(N // 2, bool)
        get = self.scratch.get
        hp, term, dzn = (get(key, (G, B, R)) for key in ("hp", "term", "dzn"))
        dzx, du = get("dzx", (3, G, B, R)), get("du", (K, G, B, R))
        for t in range(t0, T):
            np.add(self.h[t], dh, out=hp)                        # each copy's h_{t-1}
            dzx.fill(0.0)
            if into_x is not None:
                into_x(t, dzx)
            np.matmul(dh.reshape(1, N, R), self.Wh_blocks[:K], out=du.reshape(K, N, R))
            n_block = None
            if moved is not None:
                name, row, col, sign = moved
                block, unit = np.divmod(col, R)
                value = hp[every, :, row] if name == "Wh" else np.ones((G, B))
                n_block = (block == 2) & (not self.after)        # Wh_n multiplies r h_{t-1}
                rz = ~n_block
                du[block[rz], every[rz], :, unit[rz]] += sign[rz, None] * value[rz]
            dr, dz = self._rz_changes(t, dzx[:2], du[:2])
            r = self.r[t]
            if self.after:
                # dzn = dzx_n + dr (u_n + du_n) + r du_n
                np.add(self.u_n[t], du[2], out=dzn)
                dzn *= dr
                dzn += dzx[2]
                np.multiply(r, du[2], out=term)
                dzn += term
            else:
                drh = get("drh", (G, B, R))                      # d(r h_{t-1}) = dr hp + r dh
                np.multiply(dr, hp, out=drh)
                np.multiply(r, dh, out=term)
                drh += term
                np.matmul(drh.reshape(N, R), self.Wh_blocks[2], out=dzn.reshape(N, R))
                dzn += dzx[2]
                if n_block is not None and n_block.any():
                    rh = (r + dr) * hp                           # each copy's r h_{t-1}
                    m = every[n_block]
                    dzn[m, :, unit[n_block]] += sign[n_block, None] * rh[m, :, row[n_block]]
            dn = self._n_change(t, dzn)
            z, n = self.z[t], self.n[t]
            # dh = (1 - z) dn + z dh + dz (h + dh - n - dn), into the array the previous
            # step did not use
            dh_new = get(f"dh{t % 2}", (G, B, R))
            np.multiply(self.keep[t], dn, out=dh_new)
            np.multiply(z, dh, out=term)
            dh_new += term
            np.subtract(hp, n, out=term)
            term -= dn
            term *= dz
            dh_new += term
            dh = dh_new
            step, k = self.pair_loss_change(t, dh.reshape(N, R), rows, True)
            change += step
            if k is not None:
                kink |= k
        return change.reshape(G // 2, B), kink.reshape(G // 2, B)

    def _rz_changes(self, t, dzx_rz, du_rz):
        """The changes of r and z [2, G, B, R] (a scratch array) at step t from their
        pre-activations' changes, dzx_rz + du_rz [2, G, B, R]."""
        pre = self.scratch.get("pre_rz", dzx_rz.shape)
        np.add(dzx_rz, du_rz, out=pre)
        out = self.scratch.get("drz", pre.shape)
        if not tanh_change_into(pre, tuple(a[:, t, None] for a in self.aux_rz_scaled), out,
                                self.scratch.get("work_rz", pre.shape)):
            out[...] = activation_change("sigmoid", pre, tuple(a[:, t, None]
                                                               for a in self.aux_rz))
        return out

    def _n_change(self, t, dzn):
        """The change of n [G, B, R] (a scratch array) at step t from its
        pre-activation's, dzn."""
        out = self.scratch.get("dn", dzn.shape)
        if not tanh_change_into(dzn, tuple(a[t] for a in self.aux_n_scaled), out,
                                self.scratch.get("work_n", dzn.shape)):
            out[...] = activation_change("tanh", dzn, tuple(a[t] for a in self.aux_n))
        return out


def fd_window(params, x, y, h0, *, loss, activations, reduction, reset_after=False,
              names=None):
    """Central differences of the window's loss for each array in ``names`` (default all
    of them: NAMES, and bh with ``reset_after``). Returns oracle_fd.FDResult."""
    w = GRUWindowState(params, x, y, h0, reset_after=reset_after, loss=loss,
                       activations=activations, reduction=reduction)
    return fd_cells.fd_window(w, names or NAMES + (("bh",) if reset_after else ()))


def fd_directional(params, x, y, h0, directions, *, loss, activations, reduction,
                   reset_after=False, base_step=FD_STEP):
    """Central differences of the window's loss along ``directions`` ({name: [K, *shape]},
    --mode projections). Returns {name: [K]} (fd_cells.fd_directional)."""
    w = GRUWindowState(params, x, y, h0, reset_after=reset_after, loss=loss,
                       activations=activations, reduction=reduction)
    return fd_cells.fd_directional(w, directions, base_step)
