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
(tolerances.FD_STEP). W3 and b3 move only the output layer (oracle_fd.fd_output_layer).
"""
import numpy as np

from ..fd_window_state import WindowState, activation_aux, activation_change, relu_crossed
from ..oracle_fd import FDResult, fd_output_layer
from ..tolerances import FD_STEP

__all__ = ["LSTMWindowState", "fd_window", "NAMES"]

NAMES = ("W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0", "c0")
GATE_ACTIVATIONS = ("sigmoid", "sigmoid", "tanh", "sigmoid")       # i, f, g, o
# Rows x steps x width of one batch of perturbed copies (float64 elements).
_CHUNK_ELEMENTS = 1 << 20


class LSTMWindowState(WindowState):
    """The unperturbed window with an LSTM cell. Beside WindowState's attributes:
    zg [T, B, 4R] the gates' pre-activations; gates [T, B, 4R] after their nonlinearity;
    c [T + 1, B, R] (c[0] = c0); tc = tanh(c_t) [T, B, R]; gate_aux[k], tc_aux:
    activation_aux of each gate block and of tanh(c_t)."""

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
        self.gate_aux = [activation_aux(name, z, fz) for name, z, fz in zip(
            GATE_ACTIVATIONS, self.gate_blocks(self.zg), self.gate_blocks(self.gates))]
        self.tc_aux = activation_aux("tanh", c[1:], self.tc)
        return h

    def gate_blocks(self, arr):
        """The four blocks i, f, g, o of arr's last axis (views)."""
        R = arr.shape[-1] // 4
        return tuple(arr[..., k * R:(k + 1) * R] for k in range(4))

    def cell_growth(self):
        return max(float(np.max(np.abs(self.zg), initial=0.0)),
                   float(np.max(np.abs(self.c), initial=0.0)))

    def copies_change(self, t0, rows, tiled, dh=None, dc=None, perturb=None):
        """Run steps t0..T-1 for N copy rows (+ copies then - copies; rows [N] the example
        of each; ``tiled``: every example in order, repeated, so the unperturbed [B, .]
        arrays broadcast instead of being gathered). dh, dc [N, R]: the differences
        entering step t0 (zeros if None); perturb(t, dzg, dh) adds the perturbation of
        the gates' pre-activations at step t to dzg [G, Bt, 4R] in place (dh [G, Bt, R]:
        the copies' state differences, for Wh). Returns (change [N/2], kink [N/2])."""
        N, R = rows.size, self.c.shape[-1]
        B = self.x.shape[1]
        G, Bt = (N // B, B) if tiled else (N, 1)
        T = self.x.shape[0]
        Wh = self.params["Wh"]

        def base(arr, t):
            return arr[t] if tiled else arr[t, rows][:, None]

        dh = np.zeros((G, Bt, R)) if dh is None else dh.reshape(G, Bt, R)
        dc = np.zeros((G, Bt, R)) if dc is None else dc.reshape(G, Bt, R)
        change, kink = np.zeros(N // 2), np.zeros(N // 2, bool)
        for t in range(t0, T):
            dzg = (dh.reshape(N, R) @ Wh).reshape(G, Bt, 4 * R)
            if perturb is not None:
                perturb(t, dzg, dh)
            di, df, dg, do = (activation_change(name, dz, tuple(base(a, t) for a in aux))
                              for name, dz, aux in zip(GATE_ACTIVATIONS, self.gate_blocks(dzg),
                                                       self.gate_aux))
            i, f, g, o = self.gate_blocks(base(self.gates, t))
            # products of gates, each term a change times an O(1) value
            dc = f * dc + df * (base(self.c, t) + dc) + i * dg + di * (g + dg)
            dtc = activation_change("tanh", dc, tuple(base(a, t) for a in self.tc_aux))
            dh = o * dtc + do * (base(self.tc, t) + dtc)
            step, k = self.pair_loss_change(t, dh.reshape(N, R), rows, tiled)
            change += step
            if k is not None:
                kink |= k
        return change, kink


def _most(arr, keep):
    """max |arr| over every axis but ``keep``."""
    axes = tuple(i for i in range(arr.ndim) if i != keep)
    return np.max(np.abs(arr), axis=axes, initial=0.0)


def _steps(w, name, shape):
    """FD_STEP / max(1, reach): no perturbation moves a pre-activation by more than
    FD_STEP (reach: what an element multiplies at its largest, times the window's growth)."""
    p = w.params
    multiplied = {"W1": lambda: _most(w.x, 2)[:, None], "Wx": lambda: _most(w.a, 2)[:, None],
                  "Wh": lambda: _most(w.h[:-1], 2)[:, None],
                  "x": lambda: np.max(np.abs(p["W1"]), axis=1),
                  "h0": lambda: np.max(np.abs(p["Wh"]), axis=1)}.get(name, lambda: 1.0)()
    reach = w.growth * np.asarray(multiplied)
    return np.broadcast_to(FD_STEP / np.maximum(1.0, reach), shape).astype(float).ravel()


def _chunks(n, rows_per_element, width, steps):
    per = max(1, _CHUNK_ELEMENTS // max(1, 2 * rows_per_element * width * steps))
    for start in range(0, n, per):
        yield np.arange(start, min(start + per, n))


def _param(w, name, shape):
    """W1, b1, Wx, Wh, b: every example, every step, a chunk of elements at a time."""
    p, x = w.params, w.x
    T, B, _ = x.shape
    H, R4 = p["Wx"].shape
    e_all = _steps(w, name, shape)
    grad, kink = np.empty(e_all.size), np.zeros(e_all.size, bool)
    for idx in _chunks(e_all.size, B, R4, T):
        e = e_all[idx]
        M = idx.size
        sign = np.concatenate([e, -e])                           # [G = 2M]
        elem = np.concatenate([idx, idx])
        rows = np.tile(np.arange(B), 2 * M)
        k = np.zeros(M, bool)
        if name in ("W1", "b1"):
            i, j = np.divmod(elem, H) if name == "W1" else (None, elem)
            moved = x[:, :, i] if name == "W1" else np.ones((T, B, 1))
            dz1 = sign[None, None, :] * moved                    # [T, B, G]
            aux = tuple(a[:, :, j] for a in w.f1_aux)
            da = np.moveaxis(activation_change(w.activations[0], dz1, aux), 2, 1)  # [T, G, B]
            Wx_rows = p["Wx"][j][:, None, :]                     # [G, 1, 4R]
            if w.relu[0]:
                z = w.z1[:, :, j]
                crossed = relu_crossed(z + dz1, z - dz1, z)[..., :M]
                k |= crossed.any(axis=(0, 1))

            def perturb(t, dzg, dh, da=da, Wx_rows=Wx_rows):
                dzg += da[t][:, :, None] * Wx_rows
        else:
            r, col = np.divmod(elem, R4) if name in ("Wx", "Wh") else (None, elem)
            every = np.arange(2 * M)

            def perturb(t, dzg, dh, r=r, col=col, sign=sign, every=every):
                if name == "Wx":
                    moved = w.a[t][:, r].T                       # [G, B]
                elif name == "Wh":
                    moved = (w.h[t][:, r].T + dh[every, :, r])   # h_{t-1} of each copy
                else:
                    moved = 1.0
                dzg[every, :, col] += sign[:, None] * moved
        change, crossed = w.copies_change(0, rows, True, perturb=perturb)
        k |= crossed.reshape(M, B).any(axis=1)
        grad[idx] = change.reshape(M, B).sum(axis=1) / (2 * e * w.scale)
        kink[idx] = k
    return grad.reshape(shape), kink.reshape(shape)


def _example(w, name, shape):
    """x, h0, c0: one example per element; x[t] copies start at step t."""
    p = w.params
    T, B, I = w.x.shape
    R = p["Wh"].shape[0]
    e_all = _steps(w, name, shape)
    grad, kink = np.empty(e_all.size), np.zeros(e_all.size, bool)
    per_t = B * I if name == "x" else B * R
    for t0 in (range(T) if name == "x" else [0]):
        for idx in _chunks(per_t, 1, 4 * R, T - t0):
            flat = idx + t0 * per_t
            e = e_all[flat]
            sign = np.concatenate([e, -e])
            b, col = np.divmod(idx, I if name == "x" else R)
            rows = np.concatenate([b, b])
            cols = np.concatenate([col, col])
            start = {"h0": None, "c0": None}
            perturb = None
            if name == "x":
                dz1 = sign[:, None] * p["W1"][cols]              # [N, H]
                aux = tuple(a[t0, rows] for a in w.f1_aux)
                dzg_in = (activation_change(w.activations[0], dz1, aux) @ p["Wx"])[:, None]
                if w.relu[0]:
                    z = w.z1[t0, rows]
                    moved = z + dz1
                    kink[flat] |= relu_crossed(moved[:idx.size], moved[idx.size:],
                                               z[:idx.size]).any(-1)

                def perturb(t, dzg, dh, t0=t0, dzg_in=dzg_in):
                    if t == t0:
                        dzg += dzg_in
            else:
                d = np.zeros((rows.size, R))
                d[np.arange(rows.size), cols] = sign
                start[name] = d
            change, crossed = w.copies_change(t0, rows, False, start["h0"], start["c0"], perturb)
            grad[flat] = change / (2 * e * w.scale)
            kink[flat] |= crossed
    return grad.reshape(shape), kink.reshape(shape)


def fd_window(params, x, y, h0, c0, *, loss, activations, reduction, names=None):
    """Central differences of the window's loss for each array in ``names`` (default all
    ten, NAMES). Shapes: as in the LSTM contract. Returns oracle_fd.FDResult."""
    w = LSTMWindowState(params, x, y, h0, c0, loss=loss, activations=activations,
                        reduction=reduction)
    grads, kinks = {}, {}
    sizes = {"B": w.x.shape[1], "I": w.x.shape[2]}
    for name in names or NAMES:
        if name in ("W3", "b3"):
            grads[name], kinks[name] = fd_output_layer(w, name)
            continue
        shape = np.shape(params[name]) if name in params else (
            w.x.shape if name == "x" else (sizes["B"], params["Wh"].shape[0]))
        path = _example if name in ("x", "h0", "c0") else _param
        grads[name], kinks[name] = path(w, name, shape)
    return FDResult(grads, kinks)
