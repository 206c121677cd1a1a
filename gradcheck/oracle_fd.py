"""Central finite differences of the window's loss, every element, in batches (NumPy, float64).

A third evaluation of the model, written from bptt.md and independent of both
the reference and the JAX oracle. It never runs one Python-level forward per
element; it exploits the model's structure instead (the window and its change
formulas: ``fd_window_state.WindowState``):

* W3, b3 change only the output layer: one logit column per element, evaluated
  for all elements at once in closed form from the unperturbed logits;
* every other array enters through the RNN input ``z2_in = f1(x W1 + b1) W2 + b2``,
  the recurrent weight U or the incoming state h0: perturbed copies of the
  affected examples run the recurrence together, as rows of one large batch,
  from the first step they change (x[t] copies start at step t);
* every copy carries only its difference from the unperturbed model (``d = h_copy
  - h``), activation changes come from addition formulas and the loss change from
  the change in the logits (``dz3 = dh W3``) with log1p/expm1 forms: nothing is ever
  formed as a difference of two O(1) values, so rounding stays relative to the
  perturbation, the step can be tiny (FD_STEP) and what is left is the central
  difference's truncation (tolerances.py says how small it was measured).

Parameter chunks run on a thread per core, in a pool that lives for one call and
is shut down before it returns. Importing this module changes nothing in the
process; ``keep_freed_memory`` is an explicit, process-wide malloc setting that the
command line makes for its own process.

ReLU kinks: an element whose +/- perturbation changes the activation pattern of
a relu layer (a pre-activation crosses zero) is flagged; the loss is not
differentiable there and the comparison excludes it.
"""
import concurrent.futures
import ctypes
import functools
import os
from typing import NamedTuple

import numpy as np
import threadpoolctl

from .fd_window_state import WindowState, relu_crossed
from .model import GRAD_NAMES, shape_of
from .tolerances import FD_STEP

__all__ = ["FDResult", "Workers", "fd_window", "fd_directional", "fd_output_layer",
           "keep_freed_memory"]


def keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks up to 32 MB for reuse, process-wide.

    Never called on import: the command line calls it for its own process (a
    library must not change a user's allocator). The engine makes and drops
    temporaries of a few MB in every step of every chunk; by default glibc serves
    blocks that size with mmap (or trims them back to the system) and every new one
    page-faults afresh, which ``python -m gradcheck.bench`` shows on the mid config.
    Only the process's retained memory changes (by at most a few chunks). Returns
    True when the setting was made; False where malloc is not glibc's (macOS, musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)                               # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)                              # M_TRIM_THRESHOLD
    except (OSError, AttributeError):                            # pragma: no cover
        return False
    return True


# Rows x steps x width of one batch of perturbed copies (float64 elements); bounds
# the engine's memory to a few hundred MB whatever the model size.
_CHUNK_ELEMENTS = 1 << 21


class FDResult(NamedTuple):
    """grads[name]: central differences, shape of the array; kinks[name]: bool, same shape."""
    grads: dict
    kinks: dict


class Workers:
    """A thread per core for the length of one call (``with Workers() as workers``).

    ``workers.map(fn, jobs)`` runs fn over jobs in order, inline when there is one
    job; the pool is made on first use and shut down (its threads joined) on exit."""

    def __init__(self):
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def map(self, fn, jobs):
        if len(jobs) < 2:
            return [fn(job) for job in jobs]
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="gradcheck-fd")
        # one BLAS thread per worker: BLAS's own threads on top of ours oversubscribe the
        # cores; the previous limits are restored when the block ends
        with _blas_controller().limit(limits=1, user_api="blas"):
            return list(self._pool.map(fn, jobs))


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """The process's native thread pools, found once: a ``threadpool_limits`` call scans
    every loaded library again (dl_iterate_phdr) on each use, which cost more than a
    small chunk's arithmetic. NumPy's BLAS is loaded before the first check, so a
    controller made then sees it."""
    return threadpoolctl.ThreadpoolController()


def _steps(shape, reach=1.0):
    """The central-difference step of each element of an array of ``shape``:
    FD_STEP / max(1, reach).

    ``reach`` (broadcastable to shape) is the largest value the element multiplies
    (_reach): a weight on a state of 1e9 would move its pre-activation 1e9 times
    further than its own step, past any kink of a saturated softmax. So no
    perturbation moves a pre-activation by more than FD_STEP. The element's own
    size does not enter: the engine never forms v + step, so there is no rounding
    of v to step over."""
    return np.broadcast_to(FD_STEP / np.maximum(1.0, reach), shape).astype(float)


def _reach(w, name):
    """What each element of ``name`` multiplies, at its largest, shaped to broadcast
    (``w``: a fd_window_state.WindowState):
    W1 rows by |x_i|, W2 by |a_j|, U by |h_{t-1}, r|, W3 by |h_t, r|, x by the rows of
    W1, h0 by the rows of U; 1 for a bias. Times the window's growth: where an
    identity or relu RNN lets the pre-activations grow to 1e8, a perturbation grows
    with them on its way to the logits (seen: a b2 step of 1e-8 moving ce logits by
    ~1 across the saturated softmax's switch), so every step shrinks by as much."""
    return w.growth * _multiplied(w, name)


def _multiplied(w, name):
    def most(arr, keep):                                         # max |arr| over all but keep
        axes = tuple(i for i in range(arr.ndim) if i != keep)
        return np.max(np.abs(arr), axis=axes, initial=0.0)
    p = w.params
    if name == "W1":
        return most(w.x, 2)[:, None]                             # [I, 1]
    if name == "W2":
        return most(w.a, 2)[:, None]                             # [H, 1]
    if name == "U":
        return most(w.h[:-1], 2)[:, None]                        # [R, 1]
    if name == "W3":
        return most(w.h[1:], 2)[:, None]                         # [R, 1]
    if name == "x":
        return np.max(np.abs(p["W1"]), axis=1)                   # [I]
    if name == "h0":
        return np.max(np.abs(p["U"]), axis=1)                    # [R]
    return 1.0


def _chunks(n_elements, rows_per_element, width, steps):
    per = max(1, _CHUNK_ELEMENTS // max(1, 2 * rows_per_element * width * steps))
    for start in range(0, n_elements, per):
        yield np.arange(start, min(start + per, n_elements))


def fd_output_layer(w, name, workers=None):
    """W3 [R, O] or b3 [O]: one logit column per element, closed form (inline: no workers).
    ``w``: a fd_window_state.WindowState (of any cell: only h and z3 are read)."""
    T, B, O = w.z3.shape
    R = w.h.shape[-1]
    if name == "b3":
        e = _steps((O,))                                         # [O]
        delta = np.broadcast_to(e, (T, B, 1, O))
        change = w.column_loss_change(w.z3, delta, 0, slice(None)).sum(axis=(0, 1))[0]
        kink = np.zeros(O, bool)
        if w.relu[2] and w.loss == "l2":
            kink = relu_crossed(w.z3 + e, w.z3 - e, w.z3).any(axis=(0, 1))
        return change / (2 * e * w.scale), kink
    e = _steps((R, O), _reach(w, "W3"))                          # [R, O]
    grad, kink = np.empty((R, O)), np.zeros((R, O), bool)
    for rs in _chunks(R, T * B, O, 1):
        delta = w.h[1:, :, rs, None] * e[rs]                     # [T, B, r, O]
        change = w.column_loss_change(w.z3, delta, 0, slice(None))
        grad[rs] = change.sum(axis=(0, 1)) / (2 * e[rs] * w.scale)
        if w.relu[2] and w.loss == "l2":
            z = w.z3[:, :, None, :]
            kink[rs] = relu_crossed(z + delta, z - delta, z).any(axis=(0, 1))
    return grad, kink


def _fd_state_path(w, name, workers):
    """Every array that enters through z2_in, U or h0: batched copies of the recurrence."""
    p, x = w.params, w.x
    T, B, I = x.shape
    H, R = p["W1"].shape[1], p["U"].shape[0]
    shape = shape_of(name, {"B": B, "I": I, "H": H, "R": R}, steps=T)
    flat_e = _steps(shape, _reach(w, name)).ravel()
    n = flat_e.size
    grad, kink = np.empty(n), np.zeros(n, bool)

    if name in ("x", "h0"):
        # one example per element; x[t] copies start at step t
        per_t = B * I if name == "x" else B * R
        starts = range(T) if name == "x" else [0]
        for t0 in starts:
            for idx in _chunks(per_t, 1, max(R, H, w.z3.shape[-1]), T - t0):
                flat = idx + t0 * per_t if name == "x" else idx
                e = flat_e[flat]
                sign = np.concatenate([e, -e])                   # [2M]
                d_start, z2_add = None, None
                if name == "x":
                    b, i = np.divmod(idx, I)
                    rows = np.concatenate([b, b])
                    dz1 = sign[:, None] * p["W1"][np.concatenate([i, i])]     # [2M, H]
                    aux = tuple(a[t0, rows] for a in w.f1_aux)
                    dz2_in = w.activation_change(0, dz1, aux) @ p["W2"]

                    def z2_add(t, dz2, t0=t0, dz2_in=dz2_in):
                        if t == t0:
                            dz2 += dz2_in
                    if w.relu[0]:
                        M = idx.size
                        z1_old = w.z1[t0, rows]                  # [2M, H]
                        z1_new = z1_old + dz1
                        kink[flat] |= relu_crossed(z1_new[:M], z1_new[M:], z1_old[:M]).any(-1)
                else:
                    b, r = np.divmod(idx, R)
                    rows = np.concatenate([b, b])
                    d_start = np.zeros((rows.size, R))
                    d_start[np.arange(rows.size), np.concatenate([r, r])] = sign
                change, k = w.copies_loss_change(t0, rows, d_start, z2_add)
                grad[flat] = change / (2 * e * w.scale)
                kink[flat] |= k
        return grad.reshape(shape), kink.reshape(shape)

    # parameters: every example, every step; chunks run on every core (NumPy releases
    # the GIL inside its kernels, and the chunks write disjoint elements)
    chunks = list(_chunks(n, B, max(R, H, w.z3.shape[-1]), T))
    for idx, g, k in workers.map(lambda idx: _param_chunk(w, name, idx, flat_e[idx]), chunks):
        grad[idx], kink[idx] = g, k
    return grad.reshape(shape), kink.reshape(shape)


def _param_chunk(w, name, idx, e):
    """Central differences for the parameter elements ``idx`` (steps ``e``), all examples.

    Returns (idx, grads [M], kinks [M])."""
    p, x = w.params, w.x
    T, B, _ = x.shape
    H, R = p["W1"].shape[1], p["U"].shape[0]
    M = idx.size
    sign = np.repeat(np.concatenate([e, -e]), B)                 # [2MB], copy-major
    rows = np.tile(np.arange(B), 2 * M)                          # example of each row
    elem = np.tile(np.repeat(idx, B), 2)                         # element of each row
    dU = None
    kink = np.zeros(M, bool)
    z2_add = None
    if name in ("W1", "b1"):
        i, j = np.divmod(elem, H) if name == "W1" else (None, elem)
        dz1 = sign * (x[:, rows, i] if name == "W1" else np.ones((T, 1)))    # [T, 2MB]
        da = w.activation_change(0, dz1, tuple(a[:, rows, j] for a in w.f1_aux))   # [T, 2MB]
        W2_rows = p["W2"][j]                                     # [2MB, R]

        def z2_add(t, z2):
            z2 += da[t][:, None] * W2_rows
        if w.relu[0]:
            z1_old = w.z1[:, rows, j]                            # [T, 2MB]
            k = relu_crossed(z1_old + dz1, z1_old - dz1, z1_old)[:, : M * B]
            kink |= k.reshape(T, M, B).any(axis=(0, 2))
    elif name in ("W2", "b2"):
        j, r = np.divmod(elem, R) if name == "W2" else (None, elem)
        dz = sign * (w.a[:, rows, j] if name == "W2" else np.ones((T, 1)))   # [T, 2MB]
        every = np.arange(rows.size)

        def z2_add(t, z2):
            z2[every, r] += dz[t]
    else:                                                        # U
        r, c = np.divmod(elem, R)
        dU = (r, c, sign)
    change, k = w.copies_loss_change(0, rows, None, z2_add, dU)
    kink |= k.reshape(M, B).any(axis=1)
    return idx, change.reshape(M, B).sum(axis=1) / (2 * e * w.scale), kink


def _known(caller, names):
    """A clear error for a name the engine has no finite differences for."""
    unknown = [name for name in names if name not in _PATHS]
    if unknown:
        raise ValueError(f"{caller}: no finite differences for {unknown}; "
                         f"expected names among {list(_PATHS)}")


def fd_window(params, x, y, h0, *, loss, activations, reduction, names=None):
    """Central differences of the window's loss with respect to each array in ``names``.

    Shapes: as in the reference contract (any float dtype; computed in float64).
    ``names``: any of the model's arrays (default: all of them, model.GRAD_NAMES).
    Returns FDResult(grads, kinks) keyed by name.
    """
    names = names or GRAD_NAMES
    _known("fd_window", names)
    w = WindowState(params, x, y, h0, loss=loss, activations=activations, reduction=reduction)
    grads, kinks = {}, {}
    with Workers() as workers:
        for name in names:
            grads[name], kinks[name] = _PATHS[name](w, name, workers)
    return FDResult(grads, kinks)


def fd_directional(params, x, y, h0, directions, *, loss, activations, reduction,
                   base_step=FD_STEP):
    """Central differences of the loss along given directions (``--mode projections``).

    directions[name]: [K, *shape of name], for any of the nine arrays. The step along
    a direction d is FD_STEP / max|d| / max(1, reach), so no element moves further
    than an element-wise check would move it, whatever the direction's length (a fixed
    step on a long direction is what makes truncation error swamp the tolerance).
    ``base_step`` replaces FD_STEP (gradcheck.trace draws the error against it).
    Returns {name: [K] directional derivatives}. Cost grows with K, not with the size:
    W3 and b3 reuse the unperturbed states; the perturbed copies of every other
    direction run the recurrence together, as rows of one batch (relu kinks are not
    tracked here).
    """
    _known("fd_directional", directions)
    w = WindowState(params, x, y, h0, loss=loss, activations=activations, reduction=reduction)
    p = w.params
    T, B, _ = w.x.shape
    every = np.arange(B)
    out = {}
    copies = []                        # (name, k, step, direction)
    u_copies = []                      # (k, step, direction)
    for name, dirs in directions.items():
        dirs = np.asarray(dirs, np.float64)
        out[name] = np.empty(len(dirs))
        reach = max(1.0, float(np.max(_reach(w, name))))
        for k, d in enumerate(dirs):
            step = base_step / max(float(np.max(np.abs(d))), 1e-300) / reach
            if name in ("W3", "b3"):                             # the output layer only
                dz3 = 2 * step * (w.h[1:] @ d if name == "W3" else np.broadcast_to(d, w.z3.shape))
                change = w.loss_change(w.z3 - 0.5 * dz3, dz3, slice(None), every).sum()
                out[name][k] = change / (2 * step * w.scale)
                continue
            if name == "U":
                u_copies.append((k, step, d))
                continue
            copies.append((name, k, step, d))

    R = p["U"].shape[0]
    zero_in, zero_h = np.zeros((T, B, R)), np.zeros((B, R))

    def perturbed(name, e, d):
        """(dz2_in [T, B, R], dh0 [B, R]): the changes when ``name`` moves by e * d."""
        if name in ("W1", "b1", "x"):
            dz1 = {"W1": lambda: w.x @ d, "b1": lambda: d, "x": lambda: d @ p["W1"]}[name]()
            # an identity f1 hands back dz1 itself: [H] for b1, so broadcast it
            dz2_in = w.activation_change(0, e * dz1, w.f1_aux) @ p["W2"]
            return np.broadcast_to(dz2_in, (T, B, R)), zero_h
        if name == "W2":
            return e * (w.a @ d), zero_h
        if name == "b2":
            return np.broadcast_to(e * d, (T, B, R)), zero_h
        return zero_in, e * d                                    # h0

    def run(group):                    # one batch: + copies then - copies, B rows each
        pairs = [[perturbed(name, sign * step, d) for (name, _, step, d) in group]
                 for sign in (1.0, -1.0)]
        dz2_in = np.concatenate([z for half in pairs for z, _ in half], axis=1)
        d_start = np.concatenate([h for half in pairs for _, h in half])

        def z2_add(t, dz2):
            dz2 += dz2_in[t]
        change, _ = w.copies_loss_change(0, np.tile(every, 2 * len(group)), d_start, z2_add)
        return change.reshape(len(group), B).sum(axis=1)

    cores = os.cpu_count() or 1
    groups = [copies[i::cores] for i in range(cores) if copies[i::cores]]
    with Workers() as workers:
        changed = workers.map(run, groups)
    for group, changes in zip(groups, changed):
        for (name, k, step, _), ch in zip(group, changes):
            out[name][k] = ch / (2 * step * w.scale)
    if u_copies:
        C = len(u_copies)
        D = np.stack([sign * step * d for sign in (1.0, -1.0) for (_, step, d) in u_copies])

        def z2_extra(h_prev):                                    # h_prev D_c for each copy
            return np.matmul(h_prev.reshape(2 * C, B, -1), D).reshape(2 * C * B, -1)

        change, _ = w.copies_loss_change(0, np.tile(every, 2 * C), z2_extra=z2_extra)
        for (k, step, _), ch in zip(u_copies, change.reshape(C, B).sum(axis=1)):
            out["U"][k] = ch / (2 * step * w.scale)
    return out


# Each array the engine differentiates, and how: W3 and b3 move one logit column
# (closed form); every other array enters the recurrence (batched copies).
_PATHS = {"W1": _fd_state_path, "b1": _fd_state_path, "W2": _fd_state_path,
          "U": _fd_state_path, "b2": _fd_state_path, "W3": fd_output_layer,
          "b3": fd_output_layer, "x": _fd_state_path, "h0": _fd_state_path}
