"""Central finite differences of the window's loss, every element, in batches (NumPy, float64).

A third evaluation of the model, written from bptt.md and independent of both
the reference and the JAX oracle. It never runs one Python-level forward per
element; it exploits the model's structure instead:

* W3, b3 change only the output layer: one logit column per element, evaluated
  for all elements at once in closed form from the unperturbed logits;
* every other array enters through the RNN input ``z2_in = f1(x W1 + b1) W2 + b2``,
  the recurrent weight U or the incoming state h0: perturbed copies of the
  affected examples run the recurrence together, as rows of one large batch,
  from the first step they change (x[t] copies start at step t);
* every copy carries only its difference from the unperturbed model (``d = h_copy
  - h``), activation changes come from addition formulas (``f_change``) and the
  loss change from the change in the logits (``dz3 = dh W3``) with log1p/expm1
  forms: nothing is ever formed as a difference of two O(1) values, so rounding
  stays relative to the perturbation, the step can be tiny (FD_STEP = 1e-8) and
  what is left is the central difference's truncation, ~1e-16 of each array
  (measured against JAX: 1e-16 to 1e-13, the latter for states grown to ~100).

ReLU kinks: an element whose +/- perturbation changes the activation pattern of
a relu layer (a pre-activation crosses zero) is flagged; the loss is not
differentiable there and the comparison excludes it.
"""
import concurrent.futures
import ctypes
import os
from typing import NamedTuple

import numpy as np
import threadpoolctl

from .tolerances import FD_STEP

__all__ = ["FDResult", "fd_window"]

def _keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks up to 32 MB for reuse.

    The engine makes and drops temporaries of a few MB in every step of every
    chunk; by default glibc serves blocks that size with mmap (or trims them back
    to the system) and every new one page-faults afresh: measured 3.3 ms instead
    of 0.2 ms for two chained element-wise ops on 2 MB, and the mid config's
    check 4.1 s -> 2.9 s. Only the process's retained memory changes (by at most
    a few chunks). Not glibc (macOS, musl): nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)                               # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)                              # M_TRIM_THRESHOLD
    except (OSError, AttributeError):                            # pragma: no cover
        pass


_keep_freed_memory()

# Rows x steps x width of one batch of perturbed copies (float64 elements); bounds
# the engine's memory to a few hundred MB whatever the model size.
_CHUNK_ELEMENTS = 1 << 21


class FDResult(NamedTuple):
    """grads[name]: central differences, shape of the array; kinks[name]: bool, same shape."""
    grads: dict
    kinks: dict


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


_F = {"tanh": np.tanh, "sigmoid": _sigmoid, "relu": lambda z: np.maximum(z, 0.0),
      "identity": lambda z: z}


def _crossed(z_plus, z_minus, z_base, axis):
    """True where the relu pattern differs between the three, reduced over ``axis``."""
    pos = z_base > 0
    return ((z_plus > 0) != pos) | ((z_minus > 0) != pos)


def _lse(z):
    """log-sum-exp over the last axis."""
    m = z.max(axis=-1)
    return m + np.log(np.exp(z - m[..., None]).sum(axis=-1))


def _softmax(z):
    """softmax over the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softplus_change(z, dz):
    """softplus(z + dz) - softplus(z) = log1p(s(z) expm1(dz)); directly for |dz| > 1."""
    out = np.log1p(_sigmoid(z) * np.expm1(np.clip(dz, -1.0, 1.0)))
    big = np.abs(dz) > 1.0                                       # exploding states only
    if big.any():
        big = np.broadcast_to(big, out.shape)
        zb, db = (np.broadcast_to(v, out.shape)[big] for v in (z, dz))
        out[big] = np.logaddexp(0.0, zb + db) - np.logaddexp(0.0, zb)
    return out


# Perturbations of pre-activations up to this size take the series/addition-formula
# path of f_change: tanh(x) = x (1 - x^2/3) there to 2 x^4/15 = 1.3e-17 relative,
# below float64's 1.1e-16 (with FD_STEP = 1e-8 perturbations are ~1e-8). Larger
# ones, which only exploding states produce, are differenced directly (rounding
# ~eps/|dz| <= 1e-12 relative there).
_SERIES_MAX = 1e-4


def _tanh_series(x):
    """tanh(x) = x (1 - x^2/3) for |x| <= _SERIES_MAX (in 4 passes, ~5x cheaper
    than np.tanh here); garbage beyond, which f_change replaces."""
    out = x * x
    out *= -1.0 / 3.0
    out += 1.0
    out *= x
    return out


def _aux(name, z, fz):
    """What f_change needs of an unperturbed pre-activation z (and fz = f(z))."""
    if name == "relu":
        return (z,)
    if name == "tanh":
        u = np.exp(-2.0 * np.abs(z))                             # sech^2 = 4u / (1 + u)^2
        return z, fz, 4.0 * u / (1.0 + u) ** 2
    if name == "sigmoid":
        q = _sigmoid(-z)
        return z, fz, q, fz * q
    return ()


class _Window:
    """The unperturbed window in float64 and the loss-change formulas."""

    def __init__(self, params, x, y, h0, loss, activations, reduction):
        self.p = {n: np.asarray(v, np.float64) for n, v in params.items()}
        self.x = np.asarray(x, np.float64)                       # [T, B, I]
        self.loss, self.acts = loss, tuple(activations)
        self.f1, self.f2, self.f3 = (_F[a] for a in activations)
        self.relu = tuple(a == "relu" for a in activations)
        T, B, _ = self.x.shape
        self.scale = float(B) if reduction == "mean" else 1.0
        if loss == "ce":
            self.ids = np.asarray(y, np.int64)                   # [T, B]
        else:
            self.y = np.asarray(y, np.float64)                   # [T, B, O]
        p = self.p
        self.z1 = self.x @ p["W1"] + p["b1"]                     # [T, B, H]
        self.a = self.f1(self.z1)
        self.z2_in = self.a @ p["W2"] + p["b2"]                  # [T, B, R]
        self.h = np.empty((T + 1, B, p["U"].shape[0]))           # h[0] = h0
        self.h[0] = np.asarray(h0, np.float64)
        self.z2 = np.empty_like(self.z2_in)
        for t in range(T):
            self.z2[t] = self.z2_in[t] + self.h[t] @ p["U"]
            self.h[t + 1] = self.f2(self.z2[t])
        self.z3 = self.h[1:] @ p["W3"] + p["b3"]                 # [T, B, O]
        if loss == "l2" and activations[2] == "identity":
            self.half_gram = 0.5 * (p["W3"] @ p["W3"].T)         # [R, R], G / 2
            self.c_l2 = (p["b3"] - self.y) @ p["W3"].T           # [T, B, R]
            self.hG_c = self.h[1:] @ (2.0 * self.half_gram) + self.c_l2   # [T, B, R]
        # how far the window's pre-activations grow beyond O(1) (_reach)
        self.growth = max(1.0, float(np.max(np.abs(self.z2), initial=0.0)),
                          float(np.max(np.abs(self.z3), initial=0.0)))
        # what f_change needs of the unperturbed pre-activations ([T, B, H], [T, B, R])
        self.aux1 = _aux(self.acts[0], self.z1, self.a)
        self.aux2 = _aux(self.acts[1], self.z2, self.h[1:])

    # ---- loss changes, l(z_minus + dz) - l(z_minus), summed over outputs

    def _row_change(self, z_minus, dz, steps, rows):
        """Per row and step. Shapes: z_minus, dz [S, N, O]; steps a slice of S time
        steps; rows [N] example indices."""
        if self.loss == "ce":
            ids = self.ids[steps][:, rows]                       # [S, N]
            p = _softmax(z_minus)
            d_y = np.take_along_axis(dz, ids[..., None], axis=-1)[..., 0]
            out = np.log1p(np.sum(p * np.expm1(np.clip(dz, -1.0, 1.0)), axis=-1))
            big = np.abs(dz).max(axis=-1) > 1.0                  # exploding states only
            if big.any():
                out[big] = _lse(z_minus[big] + dz[big]) - _lse(z_minus[big])
            return out - d_y
        y = self.y[steps][:, rows]                               # [S, N, O]
        if self.loss == "bce":
            return np.sum(_softplus_change(z_minus, dz) - y * dz, axis=-1)
        if self.acts[2] == "identity":
            df, f_sum = dz, 2.0 * z_minus + dz
        else:
            f_minus = self.f3(z_minus)
            df = self.f_change(2, dz, _aux(self.acts[2], z_minus, f_minus))
            f_sum = 2.0 * f_minus + df
        return 0.5 * np.sum(df * (f_sum - 2.0 * y), axis=-1)

    def _column_change(self, z, delta, t0, col):
        """Change when only logit column ``col`` moves from z_col - delta to z_col + delta.

        Shapes: z [S, B, O] (unperturbed); delta broadcastable to [S, B, M, O]
        with ``col`` selecting O (a slice); returns [S, B, M, O_sel]."""
        zc = z[..., None, col]                                   # [S, B, 1, Oc]
        if self.loss == "ce":
            p = _softmax(z)[..., None, col]
            # log(1 + p expm1(+-delta)); a logit moved by > 1 only comes from exploding
            # states, where p expm1(-delta) -> -1 for p ~ 1 would make this inf
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                change = np.log1p(p * np.expm1(delta)) - np.log1p(p * np.expm1(-delta))
            ids = self.ids[t0:]
            cols = np.arange(z.shape[-1])[col]
            hit = ids[..., None, None] == cols                    # [S, B, 1, Oc]
            return change - np.where(hit, 2.0 * delta, 0.0)
        y = self.y[t0:][..., None, col]
        zm = zc - delta
        if self.loss == "bce":
            return _softplus_change(zm, 2.0 * delta) - y * 2.0 * delta
        f_minus = self.f3(zm)
        df = self.f_change(2, 2.0 * delta, _aux(self.acts[2], zm, f_minus))
        return 0.5 * df * (2.0 * f_minus + df - 2.0 * y)

    # ---- f(z + dz) - f(z), never as the difference of two O(1) values

    def f_change(self, layer, dz, aux):
        """f(z + dz) - f(z) for activation ``layer`` (0: f1, 1: f2, 2: f3), element-wise,
        from ``aux = _aux(name, z, f(z))`` of the unperturbed z.

        Never formed as f(z + dz) - f(z), which loses ~eps |f| / |dz| of the change
        (z + dz rounds dz, and the subtraction cancels); with fz = tanh(z),
        tanh(z + dz) - tanh(z) = tanh(dz) sech^2(z) / (1 + fz tanh(dz)), and with
        q = s(-z), m = expm1(-dz), s(z + dz) - s(z) = -s(z) q m / (1 + q m) for the
        sigmoid s: rounding stays relative to dz."""
        name = self.acts[layer]
        if name == "identity":
            return dz
        if name == "relu":
            (z,) = aux
            zn = z + dz
            return np.where((z > 0) & (zn > 0), dz, np.maximum(zn, 0.0) - np.maximum(z, 0.0))
        if name == "tanh":
            z, fz, sech2 = aux
            t = _tanh_series(dz)
            out = fz * t
            out += 1.0
            np.divide(sech2, out, out=out)
            out *= t
        else:
            z, fz, q, sq = aux
            with np.errstate(over="ignore"):                     # replaced below
                m = np.expm1(-dz)
            out = q * m
            out += 1.0
            np.divide(sq, out, out=out)
            out *= m
            np.negative(out, out=out)
        if dz.max(initial=0.0) > _SERIES_MAX or dz.min(initial=0.0) < -_SERIES_MAX:
            big = np.broadcast_to(np.abs(dz) > _SERIES_MAX, out.shape)  # exploding states
            zb, fb, db = (np.broadcast_to(v, out.shape)[big] for v in (z, fz, dz))
            out[big] = (np.tanh if name == "tanh" else _sigmoid)(zb + db) - fb
        return out

    # ---- the recurrence for a batch of perturbed copies

    def _tail(self, t0, rows, d_start=None, z2_add=None, dU=None, z2_extra=None):
        """Run steps t0..T-1 for N copy rows; return (loss change per row-pair, kink per pair).

        Rows come in two halves, + copies then - copies, of the same examples (rows [N]).
        Each copy carries only its difference from the unperturbed state,
        d = h_copy - h [N, R] (d_start entering step t0; zeros if None), so rounding
        stays relative to the perturbation rather than to the state.
        z2_add(t, dz2) adds the perturbation of the RNN input at step t to dz2 [N, R]
        in place; dU (r [N], c [N], delta [N]): U + delta E_rc for each row;
        z2_extra(h_prev) -> [N, R], added to dz2 (U moved along a direction).
        Works step by step, so memory is [N, R], not [T, N, R].
        """
        N, half = rows.size, rows.size // 2
        T, B, R = self.z2.shape
        U, W3 = self.p["U"], self.p["W3"]
        # Copies of every example in order (a parameter's copies) use the unperturbed
        # [B, R] arrays by broadcasting over [G, B, R]; others gather their rows.
        tiled = N % (2 * B) == 0 and np.array_equal(
            rows.reshape(-1, B), np.broadcast_to(np.arange(B), (N // B, B)))
        G, Bt = (N // B, B) if tiled else (N, 1)
        Gh = G // 2

        def base(arr, t, first_half=False):
            """arr[t] for every copy row, broadcastable against [G or G/2, Bt, K]."""
            if tiled:
                return arr[t]
            return arr[t, rows[:half] if first_half else rows][:, None]

        kink = np.zeros(half, bool)
        change = np.zeros(half)
        d = np.zeros((N, R)) if d_start is None else d_start
        l2_identity = self.loss == "l2" and self.acts[2] == "identity"
        for t in range(t0, T):
            dz2 = d @ U                                          # [N, R]
            if z2_add is not None:
                z2_add(t, dz2)
            if dU is not None or z2_extra is not None:
                h_prev = (base(self.h, t) + d.reshape(G, Bt, R)).reshape(N, R)
                if dU is not None:
                    r, c, delta = dU
                    dz2[np.arange(N), c] += delta * h_prev[np.arange(N), r]
                if z2_extra is not None:
                    dz2 += z2_extra(h_prev)
            dz2 = dz2.reshape(G, Bt, R)
            d3 = self.f_change(1, dz2, tuple(base(a, t) for a in self.aux2))
            if self.relu[1]:
                z = base(self.z2, t)
                pos = (z if tiled else z[:Gh]) > 0
                zn = z + dz2
                k = ((zn[:Gh] > 0) != pos) | ((zn[Gh:] > 0) != pos)
                kink |= k.any(axis=-1).reshape(half)
            d = d3.reshape(N, R)
            dh = d[:half] - d[half:]                             # the difference first
            if l2_identity:
                # 0.5|z+ - y|^2 - 0.5|z- - y|^2 = dh W3 . (h_mid W3 + b3 - y)
                #                                = dh . (h_mid G + c), G = W3 W3^T [R, R],
                # c = (b3 - y) W3^T [T, B, R]: the same sum, in R dimensions, not O;
                # h_mid G = h G + (d+ + d-) G / 2, with h G + c kept for every step.
                inner = ((d[:half] + d[half:]) @ self.half_gram).reshape(Gh, Bt, R)
                inner += base(self.hG_c, t, first_half=True)
                change += np.einsum("nr,nr->n", dh, inner.reshape(half, R))
                continue
            z_minus = (d[half:] @ W3).reshape(Gh, Bt, -1) + base(self.z3, t, first_half=True)
            z_minus = z_minus.reshape(1, half, -1)               # [1, N/2, O]
            dz = (dh @ W3)[None]
            if self.relu[2] and self.loss == "l2":
                ref = self.z3[t, rows[:half]]
                kink |= _crossed(z_minus[0] + dz[0], z_minus[0], ref, -1).any(axis=-1)
            change += self._row_change(z_minus, dz, slice(t, t + 1), rows[:half])[0]
        return change, kink


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
    """What each element of ``name`` multiplies, at its largest, shaped to broadcast:
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
    p = w.p
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


def _fd_output_layer(w, name):
    """W3 [R, O] or b3 [O]: one logit column per element, closed form."""
    T, B, O = w.z3.shape
    R = w.h.shape[-1]
    if name == "b3":
        e = _steps((O,))                                         # [O]
        delta = np.broadcast_to(e, (T, B, 1, O))
        change = w._column_change(w.z3, delta, 0, slice(None)).sum(axis=(0, 1))[0]
        kink = np.zeros(O, bool)
        if w.relu[2] and w.loss == "l2":
            kink = _crossed(w.z3 + e, w.z3 - e, w.z3, None).any(axis=(0, 1))
        return change / (2 * e * w.scale), kink
    e = _steps((R, O), _reach(w, "W3"))                          # [R, O]
    grad, kink = np.empty((R, O)), np.zeros((R, O), bool)
    for rs in _chunks(R, T * B, O, 1):
        delta = w.h[1:, :, rs, None] * e[rs]                     # [T, B, r, O]
        change = w._column_change(w.z3, delta, 0, slice(None))
        grad[rs] = change.sum(axis=(0, 1)) / (2 * e[rs] * w.scale)
        if w.relu[2] and w.loss == "l2":
            z = w.z3[:, :, None, :]
            kink[rs] = _crossed(z + delta, z - delta, z, None).any(axis=(0, 1))
    return grad, kink


def _fd_state_path(w, name):
    """Every array that enters through z2_in, U or h0: batched copies of the recurrence."""
    p, x = w.p, w.x
    T, B, I = x.shape
    H, R = p["W1"].shape[1], p["U"].shape[0]
    shape = {"W1": (I, H), "b1": (H,), "W2": (H, R), "U": (R, R), "b2": (R,),
             "x": (T, B, I), "h0": (B, R)}[name]
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
                    aux = tuple(a[t0, rows] for a in w.aux1)
                    dz2_in = w.f_change(0, dz1, aux) @ p["W2"]

                    def z2_add(t, dz2, t0=t0, dz2_in=dz2_in):
                        if t == t0:
                            dz2 += dz2_in
                    if w.relu[0]:
                        M = idx.size
                        z1_old = w.z1[t0, rows]                  # [2M, H]
                        z1_new = z1_old + dz1
                        kink[flat] |= _crossed(z1_new[:M], z1_new[M:], z1_old[:M], -1).any(-1)
                else:
                    b, r = np.divmod(idx, R)
                    rows = np.concatenate([b, b])
                    d_start = np.zeros((rows.size, R))
                    d_start[np.arange(rows.size), np.concatenate([r, r])] = sign
                change, k = w._tail(t0, rows, d_start, z2_add)
                grad[flat] = change / (2 * e * w.scale)
                kink[flat] |= k
        return grad.reshape(shape), kink.reshape(shape)

    # parameters: every example, every step; chunks run on every core (NumPy releases
    # the GIL inside its kernels, and the chunks write disjoint elements)
    chunks = list(_chunks(n, B, max(R, H, w.z3.shape[-1]), T))
    for idx, g, k in _map(lambda idx: _param_chunk(w, name, idx, flat_e[idx]), chunks):
        grad[idx], kink[idx] = g, k
    return grad.reshape(shape), kink.reshape(shape)


_POOL = None


def _map(fn, jobs):
    """fn over jobs on a thread per core (in order); inline when there is one job."""
    global _POOL
    if len(jobs) < 2:
        return [fn(job) for job in jobs]
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    # one BLAS thread per worker: BLAS's own threads on top of ours oversubscribe the
    # cores (measured: 6.2 s with both, 3.1 s with this, 5.0 s with BLAS threads alone)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return list(_POOL.map(fn, jobs))


def _param_chunk(w, name, idx, e):
    """Central differences for the parameter elements ``idx`` (steps ``e``), all examples.

    Returns (idx, grads [M], kinks [M])."""
    p, x = w.p, w.x
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
        da = w.f_change(0, dz1, tuple(a[:, rows, j] for a in w.aux1))     # [T, 2MB]
        W2_rows = p["W2"][j]                                     # [2MB, R]

        def z2_add(t, z2):
            z2 += da[t][:, None] * W2_rows
        if w.relu[0]:
            z1_old = w.z1[:, rows, j]                            # [T, 2MB]
            k = _crossed(z1_old + dz1, z1_old - dz1, z1_old, None)[:, : M * B]
            kink |= k.reshape(T, M, B).any(axis=(0, 2))
    elif name in ("W2", "b2"):
        j, r = np.divmod(elem, R) if name == "W2" else (None, elem)
        dz = sign * (w.a[:, rows, j] if name == "W2" else np.ones((T, 1)))   # [T, 2MB]
        every = np.arange(rows.size)

        def z2_add(t, z2):
            z2[every, r] += dz[t]
    else:  # U
        r, c = np.divmod(elem, R)
        dU = (r, c, sign)
    change, k = w._tail(0, rows, None, z2_add, dU)
    kink |= k.reshape(M, B).any(axis=1)
    return idx, change.reshape(M, B).sum(axis=1) / (2 * e * w.scale), kink


def fd_window(params, x, y, h0, *, loss, activations, reduction, names=None):
    """Central differences of the window's loss with respect to each array in ``names``.

    Shapes: as in the reference contract (any float dtype; computed in float64).
    Returns FDResult(grads, kinks) keyed by name.
    """
    w = _Window(params, x, y, h0, loss, activations, reduction)
    names = names or ("W1", "b1", "W2", "U", "b2", "W3", "b3", "x", "h0")
    grads, kinks = {}, {}
    for name in names:
        fn = _fd_output_layer if name in ("W3", "b3") else _fd_state_path
        grads[name], kinks[name] = fn(w, name)
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
    w = _Window(params, x, y, h0, loss, activations, reduction)
    p = w.p
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
                change = w._row_change(w.z3 - 0.5 * dz3, dz3, slice(None), every).sum()
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
            return w.f_change(0, e * dz1, w.aux1) @ p["W2"], zero_h
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
        change, _ = w._tail(0, np.tile(every, 2 * len(group)), d_start, z2_add)
        return change.reshape(len(group), B).sum(axis=1)

    cores = os.cpu_count() or 1
    groups = [copies[i::cores] for i in range(cores) if copies[i::cores]]
    for group, changes in zip(groups, _map(run, groups)):
        for (name, k, step, _), ch in zip(group, changes):
            out[name][k] = ch / (2 * step * w.scale)
    if u_copies:
        C = len(u_copies)
        D = np.stack([sign * step * d for sign in (1.0, -1.0) for (_, step, d) in u_copies])

        def z2_extra(h_prev):                                    # h_prev D_c for each copy
            return np.matmul(h_prev.reshape(2 * C, B, -1), D).reshape(2 * C * B, -1)

        change, _ = w._tail(0, np.tile(every, 2 * C), z2_extra=z2_extra)
        for (k, step, _), ch in zip(u_copies, change.reshape(C, B).sum(axis=1)):
            out["U"][k] = ch / (2 * step * w.scale)
    return out
