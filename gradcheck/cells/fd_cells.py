"""The finite-difference engine's driver for the cells (LSTM, GRU): which copies to run for
each array, with which steps, and how each array's perturbation enters the window.

A cell's engine (``NAME_fd.py``) provides a WindowState subclass with
``copies_change(t0, rows, tiled, starts, into_x, moved)``, which runs steps t0..T-1 of
N perturbed copies in difference form and returns (change [N/2], kink [N/2]):

- ``starts``: {state name: [N, R] differences entering step t0} (h0, and c0 for the LSTM);
- ``into_x(t, dzx)``: adds the change of the cell's input pre-activations
  ``a_t Wx + b`` [G, Bt, K R] at step t in place (W1, b1, x, Wx and b move only these);
- ``moved``: (name, row [G], col [G], sign [G]) for the cell's own recurrent
  parameters (Wh, bh), whose perturbation only the cell knows how to apply;
- ``column`` (keyword, may be None): [G] the one pre-activation column each copy's
  perturbation moves (Wx, b, Wh, bh), so a cell may run the copies' first step on
  that column alone (they enter it with no state difference); a cell may ignore it.

Every array whose name is a parameter of the cell and not in ``RECURRENT`` enters by
``into_x``. W3 and b3 move only the output layer (oracle_fd.fd_output_layer).
"""
import numpy as np

from ..fd_window_state import activation_change, relu_crossed
from ..oracle_fd import FDResult, Workers, fd_output_layer
from ..tolerances import FD_STEP

__all__ = ["fd_window", "RECURRENT"]

RECURRENT = ("Wh", "bh")          # parameters the cell applies itself (``moved``)
# Rows x steps x width of one batch of perturbed copies (float64 elements): small enough
# that a step's arrays of a chunk stay in a core's cache (the chunks run on both cores),
# large enough that NumPy's per-call overhead stays small beside the arithmetic.
_CHUNK_ELEMENTS = 1 << 17


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


def _param(w, name, shape, workers):
    """A parameter: every example, every step, a chunk of elements at a time; the chunks
    run on every core (NumPy releases the GIL in its kernels; chunks write disjoint
    elements)."""
    T, B, _ = w.x.shape
    e_all = _steps(w, name, shape)
    grad, kink = np.empty(e_all.size), np.zeros(e_all.size, bool)
    chunks = list(_chunks(e_all.size, B, w.params["Wx"].shape[1], T))
    for idx, g, k in workers.map(lambda idx: _param_chunk(w, name, idx, e_all[idx]), chunks):
        grad[idx], kink[idx] = g, k
    return grad.reshape(shape), kink.reshape(shape)


def _param_chunk(w, name, idx, e):
    """Central differences of the parameter elements ``idx`` (steps ``e`` [M]), all
    examples. Returns (idx, grads [M], kinks [M])."""
    p, x = w.params, w.x
    T, B, _ = x.shape
    H, width = p["Wx"].shape
    M = idx.size
    sign = np.concatenate([e, -e])                               # [G = 2M]
    elem = np.concatenate([idx, idx])
    rows = np.tile(np.arange(B), 2 * M)
    k = np.zeros(M, bool)
    into_x, moved, column = None, None, None
    if name in ("W1", "b1"):
        i, j = np.divmod(elem, H) if name == "W1" else (None, elem)
        dz1 = sign[None, None, :] * (x[:, :, i] if name == "W1" else np.ones((T, B, 1)))
        aux = tuple(a[:, :, j] for a in w.f1_aux)
        da = np.moveaxis(activation_change(w.activations[0], dz1, aux), 2, 1)  # [T, G, B]
        Wx_rows = p["Wx"][j][:, None, :]                         # [G, 1, KR]
        if w.relu[0]:
            z = w.z1[:, :, j]
            k |= relu_crossed(z + dz1, z - dz1, z)[..., :M].any(axis=(0, 1))

        def into_x(t, dzx):
            dzx += da[t][:, :, None] * Wx_rows
    elif name in RECURRENT:
        r, column = np.divmod(elem, width) if p[name].ndim == 2 else (None, elem)
        moved = (name, r, column, sign)
    else:                                                        # Wx, b
        r, column = np.divmod(elem, width) if name == "Wx" else (None, elem)
        every = np.arange(2 * M)

        def into_x(t, dzx):
            dzx[every, :, column] += sign[:, None] * (w.a[t][:, r].T if name == "Wx" else 1.0)
    change, crossed = w.copies_change(0, rows, True, {}, into_x, moved, column=column)
    k |= crossed.reshape(M, B).any(axis=1)
    return idx, change.reshape(M, B).sum(axis=1) / (2 * e * w.scale), k


def _example(w, name, shape):
    """x or an incoming state (h0, c0): one example per element; x[t] copies start at t."""
    p = w.params
    T, B, I = w.x.shape
    R = p["Wh"].shape[0]
    e_all = _steps(w, name, shape)
    grad, kink = np.empty(e_all.size), np.zeros(e_all.size, bool)
    per_t = B * I if name == "x" else B * R
    for t0 in (range(T) if name == "x" else [0]):
        for idx in _chunks(per_t, 1, p["Wx"].shape[1], T - t0):
            flat = idx + t0 * per_t
            e = e_all[flat]
            sign = np.concatenate([e, -e])
            b, col = np.divmod(idx, I if name == "x" else R)
            rows = np.concatenate([b, b])
            cols = np.concatenate([col, col])
            starts, into_x = {}, None
            if name == "x":
                dz1 = sign[:, None] * p["W1"][cols]              # [N, H]
                aux = tuple(a[t0, rows] for a in w.f1_aux)
                dzx_in = (activation_change(w.activations[0], dz1, aux) @ p["Wx"])[:, None]
                if w.relu[0]:
                    z = w.z1[t0, rows]
                    moved = z + dz1
                    kink[flat] |= relu_crossed(moved[:idx.size], moved[idx.size:],
                                               z[:idx.size]).any(-1)

                def into_x(t, dzx, t0=t0, dzx_in=dzx_in):
                    if t == t0:
                        dzx += dzx_in
            else:
                d = np.zeros((rows.size, R))
                d[np.arange(rows.size), cols] = sign
                starts[name] = d
            change, crossed = w.copies_change(t0, rows, False, starts, into_x, None)
            grad[flat] = change / (2 * e * w.scale)
            kink[flat] |= crossed
    return grad.reshape(shape), kink.reshape(shape)


def fd_window(w, names):
    """Central differences of the window ``w`` (a cell's WindowState) for each array in
    ``names``. Returns oracle_fd.FDResult."""
    grads, kinks = {}, {}
    B, R = w.x.shape[1], w.params["Wh"].shape[0]
    with Workers() as workers:
        for name in names:
            if name in ("W3", "b3"):
                grads[name], kinks[name] = fd_output_layer(w, name)
            elif name in w.params:
                grads[name], kinks[name] = _param(w, name, np.shape(w.params[name]), workers)
            else:
                grads[name], kinks[name] = _example(w, name, w.x.shape if name == "x" else (B, R))
    return FDResult(grads, kinks)
