"""The finite-difference engine's driver for the cells (LSTM, GRU): which copies to run for
each array, with which steps, and how each array's perturbation enters the window.

A cell's engine (``NAME_fd.py``) provides a WindowState subclass with
``copies_change(t0, G, starts, into_x, moved, column=None)``, which runs steps t0..T-1 of
G perturbed copies of the whole batch (the + copies, then the - copies) in difference
form and returns (change [G/2, B], kink [G/2, B]), each example's own:

- ``starts``: {state name: [G, B, R] differences entering step t0} (h0, and c0 for the
  LSTM);
- ``into_x(t, dzx)``: adds the change of the cell's input pre-activations ``a_t Wx + b``
  at step t in place, block by block: dzx [K, G, B, R] (``by_block``; W1, b1, x, Wx and
  b move only these);
- ``moved``: (name, row [G], col [G], sign [G]) for the cell's own recurrent parameters
  (Wh, bh), whose perturbation only the cell knows how to apply (col: a column of the
  [.., K R] array, block col // R, unit col % R);
- ``column``: [G] the one pre-activation column each copy's perturbation moves (Wx, b,
  Wh, bh), so a cell may run the copies' first step on that column alone (they enter
  it with no state difference); a cell may ignore it.

Arrays of gate blocks are kept block by block ([K, .., R], each block contiguous): an
operation on one block of a [.., K R] array walks R numbers at a time, which NumPy does
many times slower than a contiguous block.

Every array whose name is a parameter of the cell and not in ``RECURRENT`` enters by
``into_x``. W3 and b3 move only the output layer (oracle_fd.fd_output_layer).
"""
import numpy as np

from ..fd_window_state import activation_change, relu_crossed
from ..oracle_fd import FDResult, Workers, fd_output_layer
from ..tolerances import FD_STEP

__all__ = ["fd_window", "fd_directional", "by_block", "RECURRENT"]

RECURRENT = ("Wh", "bh")          # parameters the cell applies itself (``moved``)
# Rows x steps x width of one batch of perturbed copies (float64 elements): small enough
# that a step's arrays of a chunk stay in a core's cache (the chunks run on both cores),
# large enough that NumPy's per-call overhead stays small beside the arithmetic, and that
# every array has chunks for both cores. A step's arrays are the window state's scratch
# arrays (fd_window_state.Scratch), reused by every chunk a thread runs. Measured on the
# article's LSTM and GRU checks (python -m gradcheck.bench, threads on both cores): 2^19
# took least; 2^18 and 2^20 more (smaller chunks: the Python between NumPy's calls, which
# holds the GIL, keeps the two threads from running at once; larger: out of cache).
_CHUNK_ELEMENTS = 1 << 19


def by_block(arr, K):
    """arr [.., K R] as its K blocks [K, .., R], each contiguous (a copy)."""
    R = arr.shape[-1] // K
    return np.ascontiguousarray(np.moveaxis(arr.reshape(arr.shape[:-1] + (K, R)), -2, 0))


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
    R = p["Wh"].shape[0]
    M = idx.size
    sign = np.concatenate([e, -e])                               # [G = 2M]
    elem = np.concatenate([idx, idx])
    k = np.zeros(M, bool)
    into_x, moved, column = None, None, None
    if name in ("W1", "b1"):
        i, j = np.divmod(elem, H) if name == "W1" else (None, elem)
        dz1 = sign[None, None, :] * (x[:, :, i] if name == "W1" else np.ones((T, B, 1)))
        aux = tuple(a[:, :, j] for a in w.f1_aux)
        da = np.moveaxis(activation_change(w.activations[0], dz1, aux), 2, 1)  # [T, G, B]
        Wx_rows = by_block(p["Wx"][j], width // R)[:, :, None, :]   # [K, G, 1, R]
        if w.relu[0]:
            z = w.z1[:, :, j]
            k |= relu_crossed(z + dz1, z - dz1, z)[..., :M].any(axis=(0, 1))

        def into_x(t, dzx):
            term = w.scratch.get("into_x", dzx.shape)
            np.multiply(da[t][None, :, :, None], Wx_rows, out=term)
            dzx += term
    elif name in RECURRENT:
        r, column = np.divmod(elem, width) if p[name].ndim == 2 else (None, elem)
        moved = (name, r, column, sign)
    else:                                                        # Wx, b
        r, column = np.divmod(elem, width) if name == "Wx" else (None, elem)
        block, unit = np.divmod(column, R)
        every = np.arange(2 * M)

        def into_x(t, dzx):
            dzx[block, every, :, unit] += sign[:, None] * (w.a[t][:, r].T if name == "Wx"
                                                           else 1.0)
    change, crossed = w.copies_change(0, 2 * M, {}, into_x, moved, column=column)
    k |= crossed.any(axis=1)
    return idx, change.sum(axis=1) / (2 * e * w.scale), k


def _example(w, name, shape, workers):
    """x or an incoming state (h0, c0), one input column at a time: a copy of the whole
    batch moves every example's element of that column at once (the examples do not
    mix, so each keeps its own loss change); x[t] copies start at step t. Chunks of
    columns run on every core."""
    T, B, I = w.x.shape
    R = w.params["Wh"].shape[0]
    e_all = _steps(w, name, shape).reshape(-1, B, I if name == "x" else R)   # [T or 1, B, K]
    grad, kink = np.empty(e_all.shape), np.zeros(e_all.shape, bool)
    width = w.params["Wx"].shape[1]
    jobs = [(t0, cols) for t0 in range(e_all.shape[0])
            for cols in _chunks(e_all.shape[2], B, width, T - t0)]
    for t0, cols, g, k in workers.map(lambda job: _example_chunk(w, name, *job, e_all[job[0]]),
                                      jobs):
        grad[t0][:, cols], kink[t0][:, cols] = g, k
    return grad.reshape(shape), kink.reshape(shape)


def _example_chunk(w, name, t0, cols, e):
    """Central differences of the elements [:, cols] of x[t0] (or of h0, c0: t0 = 0) for
    every example (steps e [B, K]). Returns (t0, cols, grads [B, M], kinks [B, M])."""
    p = w.params
    B, M = w.x.shape[1], cols.size
    e = e[:, cols].T                                             # [M, B]
    sign = np.concatenate([e, -e])                               # [G = 2M, B]
    col = np.concatenate([cols, cols])                           # [G]
    starts, into_x = {}, None
    kink = np.zeros((M, B), bool)
    if name == "x":
        dz1 = sign[:, :, None] * p["W1"][col][:, None, :]        # [G, B, H]
        da = activation_change(w.activations[0], dz1, tuple(a[t0] for a in w.f1_aux))
        R = p["Wh"].shape[0]
        dzx_in = da[None] @ by_block(p["Wx"], p["Wx"].shape[1] // R)[:, None]  # [K, G, B, R]
        if w.relu[0]:
            z = w.z1[t0]
            moved = z + dz1
            kink |= relu_crossed(moved[:M], moved[M:], z).any(-1)

        def into_x(t, dzx):
            if t == t0:
                dzx += dzx_in
    else:
        d = np.zeros((2 * M, B, w.params["Wh"].shape[0]))
        d[np.arange(2 * M), :, col] = sign
        starts[name] = d
    change, crossed = w.copies_change(t0, 2 * M, starts, into_x, None)
    kink |= crossed
    return t0, cols, (change / (2 * e * w.scale)).T, kink.T


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
                grads[name], kinks[name] = _example(w, name, w.x.shape if name == "x" else (B, R),
                                                    workers)
    return FDResult(grads, kinks)


def _element(w, name, index, step):
    """The central difference of the loss for one element of a recurrent parameter (Wh,
    bh) moved by +-``step`` (the cell applies it: ``moved``). Returns dL/d element."""
    width = w.params["Wx"].shape[1]
    flat = np.ravel_multi_index(index, w.params[name].shape)
    r, col = np.divmod(flat, width) if w.params[name].ndim == 2 else (None, flat)
    moved = (name, None if r is None else np.array([r, r]), np.array([col, col]),
             np.array([step, -step]))
    change, _ = w.copies_change(0, 2, {}, None, moved, column=np.array([col, col]))
    return float(change.sum()) / (2 * step * w.scale)


def _into_x_change(w, name, d, e):
    """The change of a_t Wx + b [T, B, KR] when ``name`` (W1, b1, x, Wx or b) moves by e d."""
    p = w.params
    if name in ("W1", "b1", "x"):
        dz1 = {"W1": lambda: w.x @ d, "b1": lambda: np.broadcast_to(d, w.z1.shape),
               "x": lambda: d @ p["W1"]}[name]()
        return activation_change(w.activations[0], e * dz1, w.f1_aux) @ p["Wx"]
    return e * (w.a @ d) if name == "Wx" else np.broadcast_to(e * d, w.a.shape[:2] + d.shape)


def _run_copies(w, copies):
    """Each copy (name, step, d) as a pair of perturbed copies of the whole batch, all run
    together, a chunk at a time. Returns [len(copies)]: loss(+) - loss(-) summed over B."""
    T, B, _ = w.x.shape
    R, width = w.params["Wh"].shape[0], w.params["Wx"].shape[1]
    out = []
    for idx in _chunks(len(copies), B, width, T):
        group = [copies[i] for i in idx]
        M = len(group)
        dzx_in = np.zeros((2 * M, T, B, width))                 # [G, T, B, KR]
        starts = {}
        for m, (name, step, d) in enumerate(group):
            for g, e in ((m, step), (m + M, -step)):            # + copies, then - copies
                if name in w.params or name == "x":
                    dzx_in[g] = _into_x_change(w, name, d, e)
                else:                                            # a state entering the window
                    starts.setdefault(name, np.zeros((2 * M, B, R)))[g] = e * d
        dzx_blocks = by_block(dzx_in, width // R)               # [K, G, T, B, R]

        def into_x(t, dzx, dzx_blocks=dzx_blocks):
            dzx += dzx_blocks[:, :, t]
        change, _ = w.copies_change(0, 2 * M, starts, into_x, None)
        out.extend(change.sum(axis=1))
    return out


def fd_directional(w, directions, base_step=FD_STEP):
    """Central differences of the window ``w``'s loss along given directions (``--mode
    projections``; the pictures' V curve): directions[name] [K, *shape of name], for any
    array of the window. The step along d is ``base_step`` / max|d|, shrunk by the reach of
    the array's elements as fd_window's steps are, so no element moves further than the
    element-wise check moves it. W3 and b3 move the output layer only (closed form); W1,
    b1, x, Wx, b and the incoming states are pairs of perturbed copies of the whole batch,
    run together; the cell's recurrent parameters (RECURRENT), which only the cell can
    move, move one element (a one-hot direction) or are differenced element by element at
    FD_STEP and projected. Returns {name: [K] directional derivatives} (relu kinks are
    not tracked)."""
    B = w.x.shape[1]
    every = np.arange(B)
    out, copies, where = {}, [], []
    for name, dirs in directions.items():
        dirs = np.asarray(dirs, np.float64)
        out[name] = np.empty(len(dirs))
        shape = dirs.shape[1:]
        least = float(np.min(_steps(w, name, shape))) / FD_STEP      # 1 / max(1, reach)
        for k, d in enumerate(dirs):
            step = base_step * least / max(float(np.max(np.abs(d))), 1e-300)
            if name in ("W3", "b3"):                             # the output layer only
                dz3 = 2 * step * (w.h[1:] @ d if name == "W3" else np.broadcast_to(d, w.z3.shape))
                change = w.loss_change(w.z3 - 0.5 * dz3, dz3, slice(None), every).sum()
                out[name][k] = change / (2 * step * w.scale)
            elif name in RECURRENT and np.count_nonzero(d) == 1:
                index = np.unravel_index(np.flatnonzero(d)[0], shape)
                out[name][k] = _element(w, name, index, step * abs(d[index])) * d[index]
            elif name in RECURRENT:
                if base_step != FD_STEP:
                    raise ValueError(f"{name}: a direction of more than one element is "
                                     f"differenced at FD_STEP only")
                full = fd_window(w, [name]).grads[name]
                out[name][k] = float(np.sum(d * full))
            else:
                copies.append((name, step, d))
                where.append((name, k, step))
    for (name, k, step), change in zip(where, _run_copies(w, copies)):
        out[name][k] = change / (2 * step * w.scale)
    return out
