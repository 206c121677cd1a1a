"""The finite-difference engine's window: the unperturbed window in float64, and the exact
change of its loss when copies of it are perturbed (NumPy, difference form).

Written from bptt.md, independent of the reference and of the JAX oracle:

    z1 = x W1 + b1,  a = f1(z1)                                    [T, B, H]
    z2_t = z2_in_t + h_{t-1} U,  z2_in = a W2 + b2,  h_t = f2(z2_t)   [T, B, R]
    z3 = h W3 + b3                                                 [T, B, O]

A perturbed copy never carries its own state, only its difference from the unperturbed
one (``d = h_copy - h``); activation changes come from addition formulas
(``WindowState.activation_change``) and loss changes from the change of the logits with
log1p/expm1 forms. Nothing is formed as a difference of two O(1) values, so rounding
stays relative to the perturbation and ``oracle_fd`` can take tiny steps.

    w = WindowState(params, x, y, h0, loss="l2", activations=("tanh", "tanh", "identity"),
               reduction="mean")
    w.z3                                   # [T, B, O], the unperturbed logits
    w.copies_loss_change(0, rows, d_start=...)   # loss change of +/- copy pairs

Dimension letters: T (steps of the window), B, I, H, R, O (gradcheck/model.py).
"""
import math
import threading
from typing import NamedTuple

import numpy as np

__all__ = ["WindowState", "CopiesChange", "Scratch", "activation_aux", "activation_change",
           "relu_crossed", "tanh_aux_scaled", "tanh_change_into", "ACTIVATIONS"]


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


# The activations the engine evaluates (the values; their changes: WindowState.activation_change).
ACTIVATIONS = {"tanh": np.tanh, "sigmoid": _sigmoid, "relu": lambda z: np.maximum(z, 0.0),
               "identity": lambda z: z}


def relu_crossed(z_plus, z_minus, z_base):
    """True where z_plus or z_minus lies on the other side of zero than z_base
    (element-wise, broadcasting): a relu kink between the perturbed copies."""
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
# path of activation_change: tanh(x) = x (1 - x^2/3) there to 2 x^4/15 = 1.3e-17
# relative, below float64's 1.1e-16 (with FD_STEP = 1e-8 perturbations are ~1e-8).
# Larger ones, which only exploding states produce, are differenced directly
# (rounding ~eps/|dz| <= 1e-12 relative there).
_SERIES_MAX = 1e-4


# dz^2 below this: the series' factor 1 - s^2 dz^2 / 3 (s <= 1) is 1 in float64 (the term
# is below 2^-53 / 3, under half the spacing of the floats just below 1, 2^-54), so u = dz
# exactly, and the three passes that form the factor are skipped.
_SERIES_EXACT = 2.0 ** -53


def _tanh_series(x):
    """tanh(x) = x (1 - x^2/3) for |x| <= _SERIES_MAX (in 4 passes, cheaper than
    np.tanh here); garbage beyond, which activation_change replaces."""
    out = x * x
    out *= -1.0 / 3.0
    out += 1.0
    out *= x
    return out


def tanh_aux_scaled(aux, s):
    """What tanh_change_into needs to give s (tanh(z + s dz) - tanh(z)): (-s^2/3, s tanh(z),
    s^2 sech^2(z)), broadcasting like z, from ``aux = activation_aux("tanh", z, tanh(z))``;
    ``s`` broadcasts against z (1 for tanh itself, 1/2 for a sigmoid written as a tanh:
    s(v) = (1 + tanh(v / 2)) / 2, z = v / 2)."""
    _, fz, sech2 = aux
    s = np.asarray(s, np.float64)
    return np.broadcast_to(-s * s / 3.0, fz.shape), s * fz, s * s * sech2


def tanh_change_into(dz, aux, out, work):
    """s (tanh(z + s dz) - tanh(z)) written into ``out`` (``work``: a scratch array shaped
    like dz), from ``aux = tanh_aux_scaled(..., s)``; the scale folded into the series and
    the addition formula (u = dz (1 - s^2 dz^2 / 3) = tanh(s dz) / s to 1.3e-17 relative;
    s (tanh(z + s dz) - tanh(z)) = u s^2 sech^2 / (1 + s tanh(z) u)), without the
    temporaries activation_change makes. Returns False, out unset, when some
    |dz| > _SERIES_MAX (only exploding states): the caller takes activation_change."""
    series, sfz, s2sech2 = aux
    np.multiply(dz, dz, out=work)
    largest = work.max(initial=0.0)
    if largest > _SERIES_MAX * _SERIES_MAX:                  # |s dz| <= |dz|: s <= 1
        return False
    if largest < _SERIES_EXACT:                              # 1 - s^2 dz^2 / 3 rounds to 1
        u = dz
    else:
        work *= series
        work += 1.0
        work *= dz
        u = work
    np.multiply(sfz, u, out=out)
    out += 1.0
    np.divide(s2sech2, out, out=out)
    out *= u
    return True


class Scratch:
    """Arrays a thread reuses across the steps and chunks of one finite-difference call.

    A step's temporaries are hundreds of KB to a few MB: each one made afresh is, by
    glibc's default, mapped and faulted in (or trimmed back and faulted in again), which
    costs more than the arithmetic on it; a library leaves the process's malloc settings as
    they are (oracle_fd.keep_freed_memory), so the engine keeps its own. ``get(key,
    shape)``: the thread's array ``key`` (contents undefined), grown when too small."""

    def __init__(self):
        self._local = threading.local()

    def get(self, key, shape):
        buffers = self._local.__dict__.setdefault("buffers", {})
        size = math.prod(shape)
        flat = buffers.get(key)
        if flat is None or flat.size < size:
            flat = buffers[key] = np.empty(size)
        return flat[:size].reshape(shape)


def activation_aux(name, z, fz):
    """What WindowState.activation_change needs of an unperturbed pre-activation z of
    activation ``name`` (and fz = f(z)): a tuple of arrays shaped like z (empty for identity)."""
    if name == "relu":
        return (z,)
    if name == "tanh":
        u = np.exp(-2.0 * np.abs(z))                             # sech^2 = 4u / (1 + u)^2
        return z, fz, 4.0 * u / (1.0 + u) ** 2
    if name == "sigmoid":
        q = _sigmoid(-z)
        return z, fz, q, fz * q
    return ()


def activation_change(name, dz, aux):
    """f(z + dz) - f(z) for activation ``name``, element-wise, from ``aux =
    activation_aux(name, z, f(z))`` of the unperturbed z (broadcasting against dz), in
    difference form (see WindowState.activation_change); also the cells' gates'."""
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


class CopiesChange(NamedTuple):
    """What WindowState.copies_loss_change returns, per pair of +/- copies [N/2]."""
    change: np.ndarray     # loss(+ copy) - loss(- copy), summed over steps and outputs
    kink: np.ndarray       # bool: a relu pre-activation (f2, or f3 with l2) crossed zero


class WindowState:
    """One window of the model, unperturbed, in float64, and the loss change of perturbed copies.

    Shapes: params as in the implementation contract; x [T, B, I]; y [T, B, O] floats
    (l2, bce) or [T, B] class ids (ce); h0 [B, R]. Any float dtype; stored as float64.

    Attributes (read them, do not write them):
        params      {name: float64 array}, the seven parameters
        x           [T, B, I]
        y           [T, B, O] (l2, bce) or None;  class_ids  [T, B] int64 (ce) or None
        loss        "l2", "ce" or "bce";  activations  (f1, f2, f3) names
        relu        (f1, f2, f3): True where that activation is relu (kinks to track)
        scale       B for reduction "mean", 1 for "sum": the loss is divided by it
        z1, a       [T, B, H]       z1 = x W1 + b1, a = f1(z1)
        z2_in       [T, B, R]       a W2 + b2, the RNN's input
        h           [T + 1, B, R]   h[0] = h0, h[t + 1] = f2(z2[t])
        z2          [T, B, R]       z2_in + h[:-1] U
        z3          [T, B, O]       h[1:] W3 + b3, the logits
        growth      max(1, max |z2|, max |z3|): how far pre-activations grow beyond O(1)
        f1_aux      activation_aux of z1 (arrays [T, B, H])
        f2_aux      activation_aux of z2 (arrays [T, B, R])

    Methods: activation_change (f(z + dz) - f(z)), loss_change (rows of logits moved),
    column_loss_change (one logit column moved in closed form), copies_loss_change (the
    recurrence run for a batch of perturbed copies).
    """

    def __init__(self, params, x, y, h0, *, loss, activations, reduction):
        self.params = p = {n: np.asarray(v, np.float64) for n, v in params.items()}
        self.x = np.asarray(x, np.float64)                       # [T, B, I]
        self.loss, self.activations = loss, tuple(activations)
        self._f = tuple(ACTIVATIONS[a] for a in self.activations)
        self.relu = tuple(a == "relu" for a in self.activations)
        T, B, _ = self.x.shape
        self.scale = float(B) if reduction == "mean" else 1.0
        self.y = self.class_ids = None
        if loss == "ce":
            self.class_ids = np.asarray(y, np.int64)             # [T, B]
        else:
            self.y = np.asarray(y, np.float64)                   # [T, B, O]
        self.z1 = self.x @ p["W1"] + p["b1"]                     # [T, B, H]
        self.a = self._f[0](self.z1)                             # [T, B, H]
        self.h = self.run_cell(np.asarray(h0, np.float64))      # [T + 1, B, R], h[0] = h0
        self.z3 = self.h[1:] @ p["W3"] + p["b3"]                 # [T, B, O]
        self._l2_identity = loss == "l2" and self.activations[2] == "identity"
        if self._l2_identity:
            self._half_gram = 0.5 * (p["W3"] @ p["W3"].T)        # [R, R], G / 2
            c_l2 = (p["b3"] - self.y) @ p["W3"].T                # [T, B, R]
            self._hG_c = self.h[1:] @ (2.0 * self._half_gram) + c_l2   # [T, B, R]
        self.growth = max(1.0, self.cell_growth(), float(np.max(np.abs(self.z3), initial=0.0)))
        self.f1_aux = activation_aux(self.activations[0], self.z1, self.a)
        self.scratch = Scratch()                  # the copies' reused arrays (cells' engines)

    # ---- the cell: the vanilla RNN here; a subclass overrides these two for another

    def run_cell(self, h0):
        """The unperturbed recurrence from h0 [B, R]: returns h [T + 1, B, R] (h[0] = h0)
        and keeps what the copies need (z2_in, z2, f2_aux)."""
        p = self.params
        T, B, _ = self.x.shape
        self.z2_in = self.a @ p["W2"] + p["b2"]                  # [T, B, R]
        h = np.empty((T + 1, B, p["U"].shape[0]))                # [T + 1, B, R]
        h[0] = h0
        self.z2 = np.empty_like(self.z2_in)                      # [T, B, R]
        for t in range(T):
            self.z2[t] = self.z2_in[t] + h[t] @ p["U"]
            h[t + 1] = self._f[1](self.z2[t])
        self.f2_aux = activation_aux(self.activations[1], self.z2, h[1:])
        return h

    def cell_growth(self):
        """The largest pre-activation of the cell (growth, for the step sizes)."""
        return float(np.max(np.abs(self.z2), initial=0.0))

    # ---- loss changes, l(z_minus + dz) - l(z_minus), summed over outputs

    def loss_change(self, z_minus, dz, steps, rows):
        """l(z_minus + dz) - l(z_minus) per step and row, summed over outputs.

        Shapes: z_minus, dz [S, N, O] logits and their change; ``steps`` a slice of the
        window's S steps, ``rows`` [N] the example of each row (for the targets).
        Returns [S, N]."""
        if self.loss == "ce":
            ids = self.class_ids[steps][:, rows]                 # [S, N]
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
        if self.activations[2] == "identity":
            df, f_sum = dz, 2.0 * z_minus + dz
        else:
            f_minus = self._f[2](z_minus)
            df = self.activation_change(2, dz, activation_aux(self.activations[2], z_minus,
                                                              f_minus))
            f_sum = 2.0 * f_minus + df
        return 0.5 * np.sum(df * (f_sum - 2.0 * y), axis=-1)

    def column_loss_change(self, z, delta, t0, col):
        """The loss change when only logit column(s) ``col`` move from z - delta to z + delta.

        Shapes: z [S, B, O], the unperturbed logits of steps t0..t0+S-1; delta
        broadcastable to [S, B, M, O] (M moves side by side) with ``col`` (a slice)
        selecting among O. Returns [S, B, M, O_selected], per output column."""
        zc = z[..., None, col]                                   # [S, B, 1, Oc]
        if self.loss == "ce":
            p = _softmax(z)[..., None, col]
            # log(1 + p expm1(+-delta)); a logit moved by > 1 only comes from exploding
            # states, where p expm1(-delta) -> -1 for p ~ 1 would make this inf
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                change = np.log1p(p * np.expm1(delta)) - np.log1p(p * np.expm1(-delta))
            ids = self.class_ids[t0:]
            cols = np.arange(z.shape[-1])[col]
            hit = ids[..., None, None] == cols                    # [S, B, 1, Oc]
            return change - np.where(hit, 2.0 * delta, 0.0)
        y = self.y[t0:][..., None, col]
        zm = zc - delta
        if self.loss == "bce":
            return _softplus_change(zm, 2.0 * delta) - y * 2.0 * delta
        f_minus = self._f[2](zm)
        df = self.activation_change(2, 2.0 * delta, activation_aux(self.activations[2], zm,
                                                                   f_minus))
        return 0.5 * df * (2.0 * f_minus + df - 2.0 * y)

    # ---- f(z + dz) - f(z), never as the difference of two O(1) values

    def activation_change(self, layer, dz, aux):
        """f(z + dz) - f(z) for activation ``layer`` (0: f1, 1: f2, 2: f3), element-wise,
        from ``aux = activation_aux(name, z, f(z))`` of the unperturbed z (broadcasting
        against dz).

        Never formed as f(z + dz) - f(z), which loses ~eps |f| / |dz| of the change
        (z + dz rounds dz, and the subtraction cancels); with fz = tanh(z),
        tanh(z + dz) - tanh(z) = tanh(dz) sech^2(z) / (1 + fz tanh(dz)), and with
        q = s(-z), m = expm1(-dz), s(z + dz) - s(z) = -s(z) q m / (1 + q m) for the
        sigmoid s: rounding stays relative to dz."""
        return activation_change(self.activations[layer], dz, aux)

    # ---- the recurrence for a batch of perturbed copies

    def copies_loss_change(self, t0, rows, d_start=None, z2_add=None, dU=None, z2_extra=None):
        """Run steps t0..T-1 for N copy rows; return CopiesChange(change, kink) per pair.

        Rows come in two halves, + copies then - copies, of the same examples (rows [N]:
        the example of each row). Each copy carries only its difference from the
        unperturbed state, d = h_copy - h [N, R] (d_start entering step t0; zeros if
        None), so rounding stays relative to the perturbation rather than to the state.
        z2_add(t, dz2) adds the perturbation of the RNN input at step t to dz2 [N, R]
        in place; dU (r [N], c [N], delta [N]): U + delta E_rc for each row;
        z2_extra(h_prev) -> [N, R], added to dz2 (U moved along a direction).
        Works step by step, so memory is [N, R], not [T, N, R].
        """
        N, half = rows.size, rows.size // 2
        T, B, R = self.z2.shape
        U = self.params["U"]
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
            d3 = self.activation_change(1, dz2, tuple(base(a, t) for a in self.f2_aux))
            if self.relu[1]:
                z = base(self.z2, t)
                pos = (z if tiled else z[:Gh]) > 0
                zn = z + dz2
                k = ((zn[:Gh] > 0) != pos) | ((zn[Gh:] > 0) != pos)
                kink |= k.any(axis=-1).reshape(half)
            d = d3.reshape(N, R)
            step_change, step_kink = self.pair_loss_change(t, d, rows, tiled)
            change += step_change
            if step_kink is not None:
                kink |= step_kink
        return CopiesChange(change, kink)

    def pair_loss_change(self, t, d, rows, tiled):
        """loss(+ copy) - loss(- copy) at step t, for each pair of copies, from their state
        differences d [N, R] (the + copies' rows, then the - copies'; rows [N]: the example
        of each; ``tiled``: the rows are every example in order, repeated). Returns
        (change [N/2], kink [N/2] or None: an l2 relu f3's pre-activation crossed zero)."""
        N, R = d.shape
        half, B = N // 2, self.z3.shape[1]
        G, Bt = (N // B, B) if tiled else (N, 1)

        def base(arr):                   # arr[t] for the + copies' rows, [G/2, Bt, K]
            return arr[t] if tiled else arr[t, rows[:half]][:, None]

        dh = d[:half] - d[half:]                                 # the difference first
        if self._l2_identity:
            # 0.5|z+ - y|^2 - 0.5|z- - y|^2 = dh W3 . (h_mid W3 + b3 - y)
            #                                = dh . (h_mid G + c), G = W3 W3^T [R, R],
            # c = (b3 - y) W3^T [T, B, R]: the same sum, in R dimensions, not O;
            # h_mid G = h G + (d+ + d-) G / 2, with h G + c kept for every step.
            inner = ((d[:half] + d[half:]) @ self._half_gram).reshape(G // 2, Bt, R)
            inner += base(self._hG_c)
            return np.einsum("nr,nr->n", dh, inner.reshape(half, R)), None
        W3 = self.params["W3"]
        z_minus = (d[half:] @ W3).reshape(G // 2, Bt, -1) + base(self.z3)
        z_minus = z_minus.reshape(1, half, -1)                   # [1, N/2, O]
        dz = (dh @ W3)[None]
        kink = None
        if self.relu[2] and self.loss == "l2":
            ref = self.z3[t, rows[:half]]
            kink = relu_crossed(z_minus[0] + dz[0], z_minus[0], ref).any(axis=-1)
        return self.loss_change(z_minus, dz, slice(t, t + 1), rows[:half])[0], kink
