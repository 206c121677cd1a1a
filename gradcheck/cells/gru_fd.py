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

from ..fd_window_state import WindowState, activation_aux, activation_change
from . import fd_cells

__all__ = ["GRUWindowState", "fd_window", "NAMES"]

NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0")


class GRUWindowState(WindowState):
    """The unperturbed window with a GRU cell. Beside WindowState's attributes: after
    (the reset after the product); zx [T, B, 3R]; u [T, B, 3R] (h_{t-1} Wh + bh);
    zr, zz, zn and r, z, n [T, B, R]; rh = r h_{t-1}; aux_rz (of r and z side by side
    [T, B, 2R]), aux_n."""

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
        # r and z side by side [T, B, 2R]: one pass of the sigmoid's change for both
        self.aux_rz = activation_aux("sigmoid", np.concatenate([self.zr, self.zz], -1),
                                     np.concatenate([self.r, self.z], -1))
        self.aux_n = activation_aux("tanh", self.zn, self.n)
        return h

    def cell_growth(self):
        return max(float(np.max(np.abs(v), initial=0.0)) for v in (self.zr, self.zz, self.zn))

    def copies_change(self, t0, rows, tiled, starts, into_x=None, moved=None, column=None):
        """Run steps t0..T-1 for N copy rows (+ copies then - copies; rows [N] the example
        of each; ``tiled``: every example in order, repeated); ``starts``, ``into_x``,
        ``moved`` as in fd_cells (moved: Wh or bh; ``column`` is not used: a moved r
        column reaches every unit of n in the step it moves). Returns (change [N/2],
        kink [N/2])."""
        N, R = rows.size, self.n.shape[-1]
        B, T = self.x.shape[1], self.x.shape[0]
        G, Bt = (N // B, B) if tiled else (N, 1)
        Wh = self.params["Wh"]
        every = np.arange(G)

        def base(arr, t):
            return arr[t] if tiled else arr[t, rows][:, None]

        dh = starts["h0"].reshape(G, Bt, R) if "h0" in starts else np.zeros((G, Bt, R))
        change, kink = np.zeros(N // 2), np.zeros(N // 2, bool)
        for t in range(t0, T):
            h_prev = base(self.h, t)
            hp = h_prev + dh                                     # each copy's h_{t-1}
            dzx = np.zeros((G, Bt, 3 * R))
            if into_x is not None:
                into_x(t, dzx)
            # the recurrent products: all three blocks after, r and z only before
            width = 3 * R if self.after else 2 * R
            du = (dh.reshape(N, R) @ Wh[:, :width]).reshape(G, Bt, width)
            n_block = None
            if moved is not None:
                name, row, col, sign = moved
                value = hp[every, :, row] if name == "Wh" else 1.0
                if self.after:
                    du[every, :, col] += sign[:, None] * value
                else:
                    n_block = col >= 2 * R               # Wh_n multiplies r * h_{t-1}
                    rz = ~n_block
                    du[every[rz], :, col[rz]] += sign[rz, None] * value[rz]
            drz = activation_change("sigmoid", dzx[:, :, :2 * R] + du[:, :, :2 * R],
                                    tuple(base(a, t) for a in self.aux_rz))
            dr, dz = drz[..., :R], drz[..., R:]
            r = base(self.r, t)
            if self.after:
                u_n = base(self.u, t)[..., 2 * R:]
                dzn = dzx[:, :, 2 * R:] + dr * (u_n + du[:, :, 2 * R:]) + r * du[:, :, 2 * R:]
            else:
                drh = dr * hp + r * dh                           # d(r h_{t-1})
                dzn = dzx[:, :, 2 * R:] + (drh.reshape(N, R) @ Wh[:, 2 * R:]).reshape(G, Bt, R)
                if n_block is not None and n_block.any():
                    rh = (r + dr) * hp                           # each copy's r h_{t-1}
                    m = every[n_block]
                    dzn[m, :, col[n_block] - 2 * R] += sign[n_block, None] * rh[m, :, row[n_block]]
            dn = activation_change("tanh", dzn, tuple(base(a, t) for a in self.aux_n))
            z, n = base(self.z, t), base(self.n, t)
            dh = (1.0 - z) * dn + z * dh + dz * (hp - n - dn)
            step, k = self.pair_loss_change(t, dh.reshape(N, R), rows, tiled)
            change += step
            if k is not None:
                kink |= k
        return change, kink


def fd_window(params, x, y, h0, *, loss, activations, reduction, reset_after=False,
              names=None):
    """Central differences of the window's loss for each array in ``names`` (default all
    of them: NAMES, and bh with ``reset_after``). Returns oracle_fd.FDResult."""
    w = GRUWindowState(params, x, y, h0, reset_after=reset_after, loss=loss,
                       activations=activations, reduction=reduction)
    return fd_cells.fd_window(w, names or NAMES + (("bh",) if reset_after else ()))
