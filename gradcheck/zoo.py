"""A zoo of deliberately wrong BPTT implementations, to prove that a checker catches them.

Every entry is a realistic mistake made when writing the article's backward pass
through time by hand in NumPy. They all share ONE article-style implementation,
``ArticleBPTT``: a forward loop over t = 1..T that keeps a per-step cache, and a
backward loop over t = T..1 with one ``dh_next`` accumulator that adds every
weight gradient step by step (``../design/bptt.md``). Each mistake is a switch in
``Flaws``, tested at the exact line where a person would make it (look for
``FLAW``). With no switch on, ``ArticleBPTT()`` is a correct implementation.

Every implementation has the contract of ``reference.loss_and_grads``::

    loss_and_grads(params, x, y, h0, *, loss="l2",
                   activations=("tanh", "tanh", "identity"), reduction="mean")
        -> (loss: float, grads: dict of W1, b1, W2, U, b2, W3, b3, x, h0, h_last [B, R])

and honours every loss, activation, reduction and dtype, except where its
mistake is about one of them.

Shapes: x [T, B, I]; y [T, B, O] floats (l2, bce) or [T, B] class ids (ce);
h0 [B, R]; W1 [I, H], b1 [H], W2 [H, R], U [R, R], b2 [R], W3 [R, O], b3 [O].

Usage::

    from gradcheck.zoo import BUGS, list_bugs
    bug = BUGS["no_dh_next"]
    impl = bug.make()          # a fresh callable (stateful bugs start clean)
    bug.breaks                 # what a checker must flag under bug.config
    bug.config                 # keyword overrides of the check that shows the bug

``gradcheck.zoo:<name>`` also names a fresh implementation (``--impl gradcheck.zoo:no_dh_next``).
"""
from dataclasses import dataclass, field, fields
from typing import Callable, NamedTuple

import numpy as np

from ._reference import reference
from .config import OPTIONS
from .model import (DEFAULT_ACTIVATIONS, DEFAULT_LOSS, DEFAULT_REDUCTION, GRAD_NAMES,
                    OUTPUT_NAMES, PARAM_NAMES, REDUCTIONS, UPSTREAM_OF_STATE)

__all__ = ["Flaws", "ArticleBPTT", "Bug", "BUGS", "list_bugs", "BREAK_NAMES", "CONFIG_KEYS",
           "LayerBug", "LAYER_BUGS"]

ACTIVATIONS, sigmoid = reference.activations.ACTIVATIONS, reference.activations.sigmoid

# What a bug can break: the nine gradients, the forward's outputs, and two non-gradient problems.
BREAK_NAMES = GRAD_NAMES + OUTPUT_NAMES + ("inputs_modified", "nan")
# The options a bug's demonstration config may set (every option of a check but seed and mode).
CONFIG_KEYS = tuple(o for o in OPTIONS if o not in ("seed", "mode"))

# The "safe" divisor of db3_off_by_1e6: one part in a million too large.
_DB3_DIVISOR_SLACK = 1e-6


@dataclass(frozen=True)
class Flaws:
    """Which mistakes ``ArticleBPTT`` makes; each field is the name of a bug in ``BUGS``."""
    no_dh_next: bool = False
    dh_next_overwrites: bool = False
    dU_skips_first_step: bool = False
    forward_U_transposed: bool = False
    dU_transposed: bool = False
    accumulator_not_reset: bool = False
    stale_h0: bool = False
    db3_off_by_1e6: bool = False
    relu_grad_from_output: bool = False
    tanh_grad_of_output: bool = False
    sigmoid_grad_from_input: bool = False
    bce_extra_sigmoid_grad: bool = False
    ce_grad_without_onehot: bool = False
    nan_backward_off_by_one: bool = False
    modifies_h0: bool = False
    dW3_uses_h_prev: bool = False
    dW2_not_accumulated: bool = False
    f1_grad_forgotten: bool = False
    dx_time_reversed: bool = False
    dh0_zeros: bool = False
    mean_over_time_and_batch: bool = False
    loss_not_reduced: bool = False
    h_last_from_backward_loop: bool = False
    dU_first_from_last_state: bool = False
    dU_first_from_h1: bool = False
    dU_from_h_t: bool = False
    dh_next_U_untransposed: bool = False
    dh_next_skips_f2_grad: bool = False
    dx_skips_f1_grad: bool = False


class _Step(NamedTuple):
    """What one forward step keeps for its backward step (the weights are not copied).

    Shapes: x_t [B, I]; z1_t, a_t [B, H]; h_prev, z2_t, h_t [B, R]; z3_t [B, O].
    """
    x_t: np.ndarray
    z1_t: np.ndarray
    a_t: np.ndarray
    h_prev: np.ndarray
    z2_t: np.ndarray
    h_t: np.ndarray
    z3_t: np.ndarray


# ------------------------------------------------------------ the pieces, with their flaws

def _df(name, z, fz, flaws):
    """f'(z) of the activation ``name``, given z and fz = f(z)."""
    if name == "relu" and flaws.relu_grad_from_output:
        return (fz >= 0).astype(z.dtype)                  # FLAW: relu(z) >= 0 always holds
    if name == "tanh" and flaws.tanh_grad_of_output:
        return 1.0 - np.tanh(fz) ** 2                     # FLAW: fz is tanh(z) already
    if name == "sigmoid" and flaws.sigmoid_grad_from_input:
        return z * (1.0 - z)                              # FLAW: s (1 - s) fed z instead of s
    return ACTIVATIONS[name][1](z, fz)


def _loss_value(loss, f3_name, z3_t, y_t):
    """The step's loss, summed over batch and outputs (before the reduction)."""
    if loss == "l2":
        err = ACTIVATIONS[f3_name][0](z3_t) - y_t         # [B, O]
        return 0.5 * float(np.sum(err * err))
    if loss == "ce":
        m = z3_t.max(axis=1, keepdims=True)               # [B, 1]
        lse = m[:, 0] + np.log(np.exp(z3_t - m).sum(axis=1))  # [B], logsumexp(z3_t)
        return float(np.sum(lse - z3_t[np.arange(len(y_t)), y_t]))
    if loss == "bce":
        return float(np.sum(np.logaddexp(0.0, z3_t) - y_t * z3_t))
    raise ValueError(f"loss={loss!r}; expected one of l2, ce, bce")


def _loss_grad(loss, f3_name, z3_t, y_t, flaws):
    """dL/dz3_t of the step, before the reduction's scale. Shapes: [B, O]."""
    if loss == "l2":
        f3 = ACTIVATIONS[f3_name][0]
        yhat_t = f3(z3_t)                                 # [B, O]
        return (yhat_t - y_t) * _df(f3_name, z3_t, yhat_t, flaws)  # dL/dyhat_t * f3'(z3_t)
    if loss == "ce":
        e = np.exp(z3_t - z3_t.max(axis=1, keepdims=True))
        d3_t = e / e.sum(axis=1, keepdims=True)           # softmax(z3_t), [B, O]
        if not flaws.ce_grad_without_onehot:              # FLAW when skipped: softmax alone
            d3_t[np.arange(len(y_t)), y_t] -= 1.0         # fused: softmax - onehot
        return d3_t
    if loss == "bce":
        s = sigmoid(z3_t)                                 # [B, O]
        if flaws.bce_extra_sigmoid_grad:
            return (s - y_t) * s * (1.0 - s)              # FLAW: fused, yet times sigmoid'
        return s - y_t                                    # fused: sigmoid(z3) - y
    raise ValueError(f"loss={loss!r}; expected one of l2, ce, bce")


# ------------------------------------------------------------------ the network

class ArticleBPTT:
    """One BPTT window written step by step like the article, making the mistakes in ``flaws``.

    Call it with the contract of ``reference.loss_and_grads``. Two flaws keep state
    between calls (``accumulator_not_reset``, ``stale_h0``): make a fresh instance
    per sequence (``Bug.make()``). ``ArticleBPTT()`` makes no mistake.
    """

    def __init__(self, flaws=Flaws(), name="article_bptt"):
        self.flaws = flaws
        self.__name__ = self.__qualname__ = name
        self._dh_next = None    # accumulator_not_reset: dh_next kept from the last window
        self._h0_first = None   # stale_h0: the state of the first call, kept for good

    def __repr__(self):
        on = [f.name for f in fields(self.flaws) if getattr(self.flaws, f.name)]
        return f"ArticleBPTT(flaws: {', '.join(on) or 'none'})"

    def __call__(self, params, x, y, h0, *, loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS,
                 reduction=DEFAULT_REDUCTION):
        """One window: (loss: float, grads: dict of the nine gradients, h_last [B, R])."""
        fl = self.flaws
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r}; expected one of {', '.join(REDUCTIONS)}")
        f1_name, f2_name, f3_name = activations
        f1, f2 = ACTIVATIONS[f1_name][0], ACTIVATIONS[f2_name][0]
        W1, b1, W2, U, b2, W3, b3 = (params[n] for n in PARAM_NAMES)
        dtype = W1.dtype                                  # compute in the params' dtype
        x = x.astype(dtype, copy=False)                   # [T, B, I]
        if loss != "ce":
            y = y.astype(dtype, copy=False)               # [T, B, O]
        T, B, _ = x.shape
        scale = B if reduction == "mean" else 1
        if reduction == "mean" and fl.mean_over_time_and_batch:
            scale = T * B                                 # FLAW: "mean" over time steps too

        h_prev = h0.astype(dtype)                         # [B, R], a copy
        if fl.stale_h0:
            if self._h0_first is None:                    # the state is initialised once ...
                self._h0_first = h_prev
            h_prev = self._h0_first                       # FLAW: ... later h0 ignored

        # ---- forward, t = 1..T: every step keeps its inputs and outputs
        steps = []
        total = 0.0
        for t in range(T):
            x_t = x[t]                                    # [B, I]
            z1_t = x_t @ W1 + b1                          # [B, H]
            a_t = f1(z1_t)                                # [B, H]
            if fl.forward_U_transposed:
                z2_t = a_t @ W2 + h_prev @ U.T + b2       # FLAW: U^T ("U h" habit)
            else:
                z2_t = a_t @ W2 + h_prev @ U + b2         # [B, R]
            h_t = f2(z2_t)                                # [B, R]
            z3_t = h_t @ W3 + b3                          # [B, O]
            total += _loss_value(loss, f3_name, z3_t, y[t])
            steps.append(_Step(x_t, z1_t, a_t, h_prev, z2_t, h_t, z3_t))
            h_prev = h_t
        h_last = h_prev                                   # [B, R]
        if fl.modifies_h0:
            h0[...] = h_last                              # FLAW: written into the caller's h0
            h_last = h0

        # ---- backward, t = T..1: one shared set of weight gradients, summed over steps
        dW1, db1, dW2, dU, db2, dW3, db3 = (np.zeros_like(p) for p in (W1, b1, W2, U, b2, W3, b3))
        dx = np.full_like(x, np.nan)                      # [T, B, I], every step fills its row
        dh_next = np.zeros_like(h_prev)                   # [B, R], from the future
        if fl.accumulator_not_reset and self._dh_next is not None:
            dh_next = self._dh_next                       # FLAW: last window's, not zeroed
        first = 1 if fl.nan_backward_off_by_one else 0    # FLAW when 1: stops before step 1
        for s, t in enumerate(range(T - 1, first - 1, -1)):
            x_t, z1_t, a_t, h_prev, z2_t, h_t, z3_t = steps[t]
            # last dense layer
            dz3_t = _loss_grad(loss, f3_name, z3_t, y[t], fl)  # [B, O], dL/dz3_t before the scale
            d3_t = dz3_t / scale                          # [B, O]
            if fl.dW3_uses_h_prev:
                dW3 += h_prev.T @ d3_t                    # FLAW: h_{t-1} instead of h_t
            else:
                dW3 += h_t.T @ d3_t                       # [R, O]
            if fl.db3_off_by_1e6:                         # FLAW: a "safe" divisor, 1e-6 too large
                db3 += dz3_t.sum(axis=0) / (scale * (1 + _DB3_DIVISOR_SLACK))
            else:
                db3 += d3_t.sum(axis=0)                   # [O]
            # the RNN: the state derivative from the future is ADDED
            if fl.no_dh_next:
                dh_t = d3_t @ W3.T                        # FLAW: dh_next forgotten
            elif fl.dh_next_overwrites:
                dh_t = dh_next if t < T - 1 else d3_t @ W3.T  # FLAW: replaces instead of adds
            else:
                dh_t = d3_t @ W3.T + dh_next              # [B, R]
            d2_t = dh_t * _df(f2_name, z2_t, h_t, fl)     # [B, R], through f2
            if fl.dW2_not_accumulated:
                dW2 = a_t.T @ d2_t                        # FLAW: = instead of += (step 1 wins)
            else:
                dW2 += a_t.T @ d2_t                       # [H, R]
            if fl.dU_transposed or fl.forward_U_transposed:
                dU += d2_t.T @ h_prev                     # FLAW: d2^T h, the gradient of h U^T
            elif fl.dU_skips_first_step and t == 0:
                pass                                      # FLAW: "h_0 is zero anyway"
            elif fl.dU_first_from_last_state and t == 0:
                dU += steps[-1].h_t.T @ d2_t              # FLAW: h[t-1] at t = 0 is h[-1], h_T
            elif fl.dU_first_from_h1 and t == 0:
                dU += h_t.T @ d2_t                        # FLAW: h[t] for h[t-1] at t = 0 only
            elif fl.dU_from_h_t:
                dU += h_t.T @ d2_t                        # FLAW: the step's output state
            else:
                dU += h_prev.T @ d2_t                     # [R, R]
            db2 += d2_t.sum(axis=0)                       # [R]
            if fl.forward_U_transposed or fl.dh_next_U_untransposed:
                dh_next = d2_t @ U                        # FLAW: through U, not U^T
            elif fl.dh_next_skips_f2_grad:
                dh_next = dh_t @ U.T                      # FLAW: before f2', not through it
            else:
                dh_next = d2_t @ U.T                      # [B, R], passed back to step t-1
            # first dense layer
            da_t = d2_t @ W2.T                            # [B, H]
            if fl.f1_grad_forgotten:
                d1_t = da_t                               # FLAW: f1'(z1_t) left out
            else:
                d1_t = da_t * _df(f1_name, z1_t, a_t, fl)  # [B, H], through f1
            dW1 += x_t.T @ d1_t                           # [I, H]
            db1 += d1_t.sum(axis=0)                       # [H]
            dx_t = (da_t if fl.dx_skips_f1_grad           # FLAW: f1' left out of dx alone
                    else d1_t) @ W1.T                     # [B, I]
            if fl.dx_time_reversed:
                dx[s] = dx_t                              # FLAW: indexed by the backward counter
            else:
                dx[t] = dx_t
        dh0 = dh_next                                     # [B, R], after step 1
        if fl.accumulator_not_reset:
            self._dh_next = dh_next.copy()                # FLAW: kept for the next window
        if fl.dh0_zeros:
            dh0 = np.zeros_like(dh_next)                  # FLAW: "h0 is a constant of the window"
        if fl.h_last_from_backward_loop:
            h_last = h_t                                  # FLAW: rebound by the backward loop

        grads = {"W1": dW1, "b1": db1, "W2": dW2, "U": dU, "b2": db2, "W3": dW3, "b3": db3,
                 "x": dx, "h0": dh0}
        value = total if fl.loss_not_reduced else total / scale  # FLAW when unscaled
        return value, grads, h_last


# ------------------------------------------------------------------ the registry

_STATEFUL = ("accumulator_not_reset", "stale_h0")
_UPSTREAM_OF_H = UPSTREAM_OF_STATE                          # everything d2_t reaches
_TWO_WINDOWS = {"interval": 3, "seq_len": 6}


@dataclass(frozen=True)
class Bug:
    """One wrong implementation and what a checker must find under its demo config.

    ``impl`` has the ``loss_and_grads`` contract; for a stateful bug it is one shared
    instance whose state persists, so prefer ``make()``, which returns a fresh callable
    (stateless bugs return ``impl`` itself). ``breaks``: the names among ``BREAK_NAMES``
    that differ from a correct implementation under ``config`` (keyword overrides of
    ``gradcheck.check``), in at least one window, with a random non-zero first h0.
    """
    name: str
    doc: str
    impl: Callable = field(compare=False, hash=False, repr=False)
    breaks: tuple
    config: dict = field(hash=False)
    flaws: Flaws = field(repr=False)
    stateful: bool = False

    def make(self):
        """A callable with the contract; fresh state for stateful bugs."""
        if self.stateful:
            return ArticleBPTT(self.flaws, name=self.name)
        return self.impl


def _bug(name, doc, breaks, config=None):
    flaws = Flaws(**{name: True})
    return Bug(name=name, doc=doc, impl=ArticleBPTT(flaws, name=name), breaks=tuple(breaks),
               config=dict(config or {}), flaws=flaws, stateful=name in _STATEFUL)


_BUG_LIST = [
    _bug("no_dh_next",
         "The state derivative from the future is never added: dh_t = d3_t W3^T only.",
         _UPSTREAM_OF_H),
    _bug("dh_next_overwrites",
         "dh_t = dh_next for t < T: the future's derivative replaces d3_t W3^T instead of adding.",
         _UPSTREAM_OF_H),
    _bug("dU_skips_first_step",
         "dU sums only from t = 2, as if h_0 were always zero.",
         ("U",)),
    _bug("forward_U_transposed",
         "The forward uses h_{t-1} U^T and the backward faithfully differentiates that.",
         OUTPUT_NAMES + GRAD_NAMES),
    _bug("dU_transposed",
         "dU += d2_t^T h_{t-1}: the transpose, which fits because U is square.",
         ("U",)),
    _bug("accumulator_not_reset",
         "dh_next is not zeroed after a window: the next window starts from the last dh_0.",
         _UPSTREAM_OF_H, _TWO_WINDOWS),
    _bug("stale_h0",
         "The state is initialised from the first call's h0 and later h0 are ignored.",
         OUTPUT_NAMES + GRAD_NAMES, _TWO_WINDOWS),
    _bug("db3_off_by_1e6",
         "db3 is divided by a 'safe' divisor scale * (1 + 1e-6): one part in a million off.",
         ("b3",)),
    _bug("relu_grad_from_output",
         "relu' is computed as relu(z) >= 0, which is always 1.",
         _UPSTREAM_OF_H, {"activations": ("tanh", "relu", "identity")}),
    _bug("tanh_grad_of_output",
         "tanh' is computed as 1 - tanh(h)^2 with h already tanh(z): tanh applied twice.",
         _UPSTREAM_OF_H),
    _bug("sigmoid_grad_from_input",
         "sigmoid' is computed as z (1 - z) from the pre-activation instead of s (1 - s).",
         ("W1", "b1", "x"), {"activations": ("sigmoid", "tanh", "identity")}),
    _bug("bce_extra_sigmoid_grad",
         "bce: the fused sigmoid(z3) - y is multiplied by sigmoid'(z3) once more.",
         GRAD_NAMES, {"loss": "bce"}),
    _bug("ce_grad_without_onehot",
         "ce: the gradient is softmax(z3) without subtracting the one-hot target.",
         GRAD_NAMES, {"loss": "ce"}),
    _bug("nan_backward_off_by_one",
         "The backward loop stops before step 1, leaving its row of a NaN-filled dx buffer.",
         GRAD_NAMES + ("nan",)),
    _bug("modifies_h0",
         "The state is carried by writing h_last into the caller's h0 array in place.",
         ("inputs_modified",)),
    _bug("dW3_uses_h_prev",
         "dW3 += h_{t-1}^T d3_t: the RNN's input state instead of its output h_t.",
         ("W3",)),
    _bug("dW2_not_accumulated",
         "dW2 = a_t^T d2_t instead of +=: only step 1's term survives the loop.",
         ("W2",)),
    _bug("f1_grad_forgotten",
         "The first layer's activation derivative is left out: d1_t = da_t.",
         ("W1", "b1", "x")),
    _bug("dx_time_reversed",
         "dx_t is stored at the backward loop's counter, so dx comes out in reversed time.",
         ("x",)),
    _bug("dh0_zeros",
         "dh0 is returned as zeros, as if the window's h0 had no gradient.",
         ("h0",)),
    _bug("mean_over_time_and_batch",
         "reduction 'mean' divides by T * B instead of B, in the loss and in the gradients.",
         ("loss",) + GRAD_NAMES),
    _bug("loss_not_reduced",
         "The returned loss is the sum, not divided by B, while the gradients are.",
         ("loss",)),
    _bug("dU_first_from_last_state",
         "dU's term of the window's first step uses h[t-1] with t = 0, the last state h_T.",
         ("U",)),
    _bug("dU_first_from_h1",
         "dU's term of the window's first step uses h_1 (h[t]) instead of h0.",
         ("U",)),
    _bug("dU_from_h_t",
         "dU += h_t^T d2_t: the step's output state instead of its input h_{t-1}.",
         ("U",)),
    _bug("dh_next_U_untransposed",
         "dh_next = d2_t U instead of d2_t U^T: a transposed U in the state's derivative.",
         _UPSTREAM_OF_H),
    _bug("dh_next_skips_f2_grad",
         "dh_next = dh_t U^T: the state's derivative is sent back before f2', not through it.",
         _UPSTREAM_OF_H),
    _bug("dx_skips_f1_grad",
         "dx_t = da_t W1^T: f1' is left out of dx while dW1 and db1 have it.",
         ("x",)),
    _bug("h_last_from_backward_loop",
         "h_last is read after the backward loop rebound h_t, so it is step 1's state.",
         ("h_last",)),
]

BUGS = {bug.name: bug for bug in _BUG_LIST}


def list_bugs():
    """Every bug of the zoo, sorted by name."""
    return sorted(BUGS.values(), key=lambda bug: bug.name)


def __getattr__(name):
    """``gradcheck.zoo.<bug name>``: a fresh implementation, for ``--impl gradcheck.zoo:NAME``."""
    if name in BUGS:
        return BUGS[name].make()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------ layer-level bugs

class LayerBug(NamedTuple):
    """A wrong layer (layer_check's contract: forward, backward) and what must be flagged:
    ``breaks`` the arrays that differ, ``diagnosis`` a regex the layer check's diagnosis
    must match; ``options``: keyword overrides of check_layer."""
    name: str
    layer: str
    doc: str
    forward: Callable
    backward: Callable
    breaks: tuple
    diagnosis: str
    options: dict = {}


def _rnn_forward_keeping_states(a, h0, W2, U, b2, activation="tanh"):
    """The rnn layer's forward, keeping h [T, B, R] for a hand-written backward below."""
    h, caches = reference.layers.rnn_forward(a, h0, W2, U, b2, activation)
    return h, (caches, h)


def _rnn_backward_flawed(flaw):
    def rnn_backward(dh, cache):
        caches, h = cache
        T = len(caches)
        a0, h0, W2, U, df2 = caches[0]
        da = np.empty((T,) + a0.shape)
        dW2, dU, db2 = np.zeros_like(W2), np.zeros_like(U), np.zeros(U.shape[0])
        dh_next = np.zeros_like(h0)
        for t in reversed(range(T)):
            a_t, h_prev, _, _, df2_t = caches[t]
            if flaw == "first_from_last_state":
                h_prev = h[t - 1] if t == 0 else h_prev       # FLAW: h[-1] is h_T at t = 0
            d_t = dh[t] if flaw == "no_dh_next" else dh[t] + dh_next
            d2 = d_t * df2_t
            da[t] = d2 @ W2.T
            dW2 += a_t.T @ d2
            dU += h_prev.T @ d2
            db2 += d2.sum(axis=0)
            dh_next = d2 @ U.T
        return da, dh_next, dW2, dU, db2
    return rnn_backward


def _rnn_step_backward_through_U(dh_t, cache):
    a_t, h_prev, W2, U, df2 = cache
    d2 = dh_t * df2
    return d2 @ W2.T, d2 @ U, a_t.T @ d2, h_prev.T @ d2, d2.sum(axis=0)   # FLAW: U, not U^T


def _dense_backward_without_f_prime(dout, cache):
    x, W, _ = cache
    I, H = W.shape
    dz = dout                                             # FLAW: f'(z) left out
    return dz @ W.T, x.reshape(-1, I).T @ dz.reshape(-1, H), dz.reshape(-1, H).sum(axis=0)


def _l2_forward_without_half(z3, y, loss="l2", activation="identity", reduction="mean"):
    value, d3 = reference.layers.loss_forward(z3, y, loss, activation, reduction)
    return 2.0 * value, 2.0 * d3                          # FLAW: sum of squares, no 0.5


LAYER_BUGS = {b.name: b for b in [
    LayerBug("rnn_dU_first_from_last_state", "rnn",
             "rnn_backward: the first step's dU term reads h[t-1] at t = 0, the last state.",
             _rnn_forward_keeping_states, _rnn_backward_flawed("first_from_last_state"),
             ("U",), r"Layer rnn .*only dU disagrees.*LAST state.*step 1 alone"),
    LayerBug("rnn_no_dh_next", "rnn",
             "rnn_backward: the state derivative from the future is never added.",
             _rnn_forward_keeping_states, _rnn_backward_flawed("no_dh_next"),
             ("a", "h0", "W2", "U", "b2"), r"Layer rnn .*da wrong at steps \[1, 2\].*dh_next, "
                                       r"is never added.*reproduces the numbers"),
    LayerBug("rnn_step_dh_prev_through_U", "rnn_step",
             "rnn_step_backward: dh_prev = d2 U instead of d2 U^T.",
             reference.layers.rnn_step_forward, _rnn_step_backward_through_U,
             ("h_prev",), r"Layer rnn_step .*only dh_prev disagrees.*through U instead of "
                         r"U\^T"),
    LayerBug("dense_backward_without_f_prime", "dense1",
             "dense_backward: f'(z) left out of dz.",
             reference.layers.dense_forward, _dense_backward_without_f_prime,
             ("x", "W1", "b1"), r"Layer dense1 .*dx wrong; dW1 wrong; db1 wrong: the backward "
                                 r"leaves out f1'\(z\).*reproduces the numbers"),
    LayerBug("l2_loss_without_half", "loss",
             "l2 loss written as the sum of squares, without the 0.5: loss and dz3 doubled.",
             _l2_forward_without_half, reference.layers.loss_backward,
             ("loss", "z3"), r"Layer loss .*the forward output loss off by a constant factor 2"
                             r"; dz3 off by a constant factor 2"),
]}
