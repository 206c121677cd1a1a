"""The article's dense -> vanilla RNN -> dense network and its BPTT, in NumPy.

Forward, for t = 1..T (bptt.md):

    z1_t = x_t W1 + b1            a_t = f1(z1_t)           [B, H]
    z2_t = a_t W2 + h_{t-1} U + b2;  h_t = f2(z2_t)        [B, R]
    z3_t = h_t W3 + b3            yhat_t = f3(z3_t)        [B, O]

Backward walks t = T..1 with ONE state-derivative accumulator ``dh_next``:

    dh_t    = d3_t W3^T + dh_next      (the derivative from the future is ADDED)
    d2_t    = dh_t * f2'(z2_t)
    dh_next = d2_t U^T                 (the only state derivative kept)

One shared set of weights; the per-step weight gradients are summed. In the
forward, the layers that do not depend on the state (the first dense layer, the
input half of the RNN, the last dense layer) run for all steps at once as one
matrix product each, and so do the derivatives the backward will need of them
(f1'(z1_t), f2'(z2_t), d3_t), kept in the cache in place of z1_t, z2_t, z3_t; the
backward walks the steps one by one, as the article does.
"""
from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS
from .losses import LOSSES, loss_and_delta

__all__ = [
    "PARAM_NAMES", "GRAD_NAMES", "REDUCTIONS", "ReferenceInputError", "Cache",
    "forward", "backward", "loss_and_grads", "run_sequence", "WindowResult",
]

PARAM_NAMES = ("W1", "b1", "W2", "U", "b2", "W3", "b3")
GRAD_NAMES = PARAM_NAMES + ("x", "h0")
REDUCTIONS = ("mean", "sum")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class ReferenceInputError(ValueError):
    """An input to the reference has the wrong type, shape, dtype or value."""


class Cache(NamedTuple):
    """What the backward pass needs from the forward, kept for every step.

    Shapes: x [T, B, I]; a [T, B, H]; h [T+1, B, R] with h[0] = h0 (so h[t-1] and
    h[t] are both at hand). The backward needs the pre-activations only through
    f'(z), so the forward keeps those in their place, formed for all steps at once
    (the same bytes per step as z1_t, z2_t, z3_t): df1 = f1'(z1) [T, B, H],
    df2 = f2'(z2) [T, B, R], and d3 = dL/dz3 [T, B, O], already scaled by the
    reduction (the output layer does not depend on the state's derivative).
    The weights are not copied: one set serves every step.
    """
    x: np.ndarray
    df1: np.ndarray
    a: np.ndarray
    df2: np.ndarray
    h: np.ndarray
    d3: np.ndarray

    @property
    def nbytes(self):
        return sum(arr.nbytes for arr in self)


# ----------------------------------------------------------------- validation

def _shape_error(name, got, letters, expected, source):
    hint = " Transposed?" if len(got) == 2 and got[::-1] == expected and got != expected else ""
    return ReferenceInputError(
        f"{name} has shape {got}; expected ({', '.join(letters)}) = {expected} "
        f"from {source}.{hint}")


def _validate(params, x, y, h0, loss, activations, reduction):
    """Check every input; return (dtype, (T, B, I, H, R, O))."""
    if loss not in LOSSES:
        raise ReferenceInputError(f"loss={loss!r}; expected one of {', '.join(LOSSES)}")
    if reduction not in REDUCTIONS:
        raise ReferenceInputError(
            f"reduction={reduction!r}; expected one of {', '.join(REDUCTIONS)}")
    if (not isinstance(activations, (tuple, list)) or len(activations) != 3
            or any(a not in ACTIVATIONS for a in activations)):
        raise ReferenceInputError(
            f"activations={activations!r}; expected three of {', '.join(ACTIVATIONS)}")
    if loss in ("ce", "bce") and activations[2] != "identity":
        raise ReferenceInputError(
            f"loss={loss!r} works on logits and needs f3 = 'identity'; "
            f"got activations={tuple(activations)!r}")
    if not isinstance(params, dict):
        raise ReferenceInputError(f"params is a {type(params).__name__}; expected a dict")
    missing = [n for n in PARAM_NAMES if n not in params]
    if missing:
        raise ReferenceInputError(f"params is missing {', '.join(missing)}")
    for name in PARAM_NAMES:
        if not isinstance(params[name], np.ndarray):
            raise ReferenceInputError(
                f"params[{name!r}] is a {type(params[name]).__name__}; expected a numpy array")
    dtype = params["W1"].dtype
    for name in PARAM_NAMES:
        if params[name].dtype != dtype or dtype not in _FLOATS:
            raise ReferenceInputError(
                f"params[{name!r}] has dtype {params[name].dtype}; expected every "
                f"parameter in float32 or float64, all the same (W1 is {dtype})")
    for name, arr in (("x", x), ("h0", h0), ("y", y)):
        if not isinstance(arr, np.ndarray):
            raise ReferenceInputError(
                f"{name} is a {type(arr).__name__}; expected a numpy array")
    if x.ndim != 3 or 0 in x.shape:
        raise ReferenceInputError(f"x has shape {x.shape}; expected (T, B, I), none of them 0")
    if x.dtype.kind != "f":
        raise ReferenceInputError(f"x has dtype {x.dtype}; expected a float dtype")
    T, B, I = x.shape
    W1, W2, W3 = params["W1"], params["W2"], params["W3"]

    def width(bias, weight):   # a layer's width: from its bias, else its weight's columns
        return bias.shape[0] if bias.ndim == 1 else weight.shape[-1]

    H, R, O = (width(params[b], w) for b, w in (("b1", W1), ("b2", W2), ("b3", W3)))
    if W1.shape != (I, H):
        raise _shape_error("W1", W1.shape, "IH", (I, H), "x and b1")
    if W2.shape != (H, R):
        raise _shape_error("W2", W2.shape, "HR", (H, R), "W1 and b2")
    if W3.shape != (R, O):
        raise _shape_error("W3", W3.shape, "RO", (R, O), "W2 and b3")
    expected = {"b1": ((H,), "H", "W1"), "U": ((R, R), "RR", "W2"),
                "b2": ((R,), "R", "W2"), "b3": ((O,), "O", "W3")}
    for name, (shape, letters, source) in expected.items():
        if params[name].shape != shape:
            raise _shape_error(name, params[name].shape, letters, shape, source)
    if h0.shape != (B, R):
        raise _shape_error("h0", h0.shape, "BR", (B, R), "x and W2")
    if h0.dtype.kind != "f":
        raise ReferenceInputError(f"h0 has dtype {h0.dtype}; expected a float dtype")
    if loss == "ce":
        if y.shape != (T, B):
            raise _shape_error("y", y.shape, "TB", (T, B), "x (loss='ce' takes class ids)")
        if y.dtype.kind not in "iu":
            raise ReferenceInputError(
                f"y has dtype {y.dtype}; loss='ce' expects integer class ids")
        if y.size and (y.min() < 0 or y.max() >= O):
            raise ReferenceInputError(
                f"y holds class ids from {y.min()} to {y.max()}; expected 0 to {O - 1} (O = {O})")
    else:
        if y.shape != (T, B, O):
            raise _shape_error("y", y.shape, "TBO", (T, B, O), "x and W3")
        if y.dtype.kind != "f":
            raise ReferenceInputError(f"y has dtype {y.dtype}; loss={loss!r} expects floats")
        if loss == "bce" and y.size and (y.min() < 0 or y.max() > 1):
            raise ReferenceInputError(
                f"y holds values from {y.min()} to {y.max()}; loss='bce' expects [0, 1]")
    return dtype, (T, B, I, H, R, O)


# ------------------------------------------------------------------- forward

def forward(params, x, y, h0, *, loss="l2", activations=("tanh", "tanh", "identity"),
            reduction="mean"):
    """Run one window forward; return (loss, cache). Inputs are validated and not modified.

    Shapes: x [T, B, I]; y [T, B, O] (or [T, B] ids for ce); h0 [B, R].
    """
    dtype, (T, B, I, H, R, O) = _validate(params, x, y, h0, loss, activations, reduction)
    W1, b1, W2, U, b2, W3, b3 = (params[n] for n in PARAM_NAMES)
    f1, df1_of = ACTIVATIONS[activations[0]]
    f2, df2_of = ACTIVATIONS[activations[1]]
    x = x.astype(dtype)                                   # a copy, in the params' dtype
    if y.dtype.kind == "f":
        y = y.astype(dtype, copy=False)                   # (class ids stay integers)

    # First dense layer and the input half of the RNN do not depend on the state:
    # all T steps at once.
    z1 = x @ W1 + b1                                      # [T, B, H]
    a = f1(z1)                                            # [T, B, H]
    z2 = a @ W2 + b2                                      # [T, B, R], + h_{t-1} U below
    h = np.empty((T + 1, B, R), dtype=dtype)              # h[0] = h0, h[t] = h_t
    h[0] = h0
    for t in range(T):                                    # the recurrence, step by step
        z2[t] += h[t] @ U
        h[t + 1] = f2(z2[t])
    z3 = h[1:] @ W3                                       # [T, B, O]
    z3 += b3                                              # (in place: [T, B, O] is the big one)

    # What the backward needs of z1_t, z2_t, z3_t, for all steps at once.
    scale = B if reduction == "mean" else 1
    value, d3 = loss_and_delta(loss, activations[2], z3, y, scale)   # d3 [T, B, O]; uses up z3
    cache = Cache(x, df1_of(z1, a), a, df2_of(z2, h[1:]), h, d3)
    return value, cache


# ------------------------------------------------------------------ backward

def backward(params, cache):
    """Backpropagate through the window's T steps; return the nine gradients.

    Walks t = T..1 exactly as the article does, one step at a time: every
    temporary is one step's size ([B, .]), and the state derivative is ONE
    [B, R] accumulator, ``dh_next``; after step 1 it is dh0. The shared weights'
    gradients are summed over the steps (+=); dW3, which needs no state
    derivative, over all steps at once. Shapes as in ``Cache`` (whose d3 already
    holds the loss and the reduction).
    """
    W1, b1, W2, U, b2, W3, b3 = (params[n] for n in PARAM_NAMES)
    x, df1, a, df2, h, d3 = cache
    T, B, _ = x.shape
    R, O = W3.shape
    grads = {n: np.zeros(p.shape, p.dtype) for n, p in params.items()}
    dW1, db1, dW2, dU, db2, dW3, db3 = (grads[n] for n in PARAM_NAMES)
    dx = np.empty_like(x)                                 # [T, B, I]
    # Sums over the batch are written ones @ d (= d.sum(axis=0)): one BLAS call,
    # several times faster than NumPy's reduction for a few hundred elements.
    ones = np.ones(B, x.dtype)                            # [B]
    # dW3 = sum over t of h_t^T d3_t: all steps at once (it needs no state derivative)
    dW3 += h[1:].reshape(T * B, R).T @ d3.reshape(T * B, O)
    dh_next = np.zeros_like(h[0])                         # [B, R], the only state derivative
    for t in reversed(range(T)):                          # h[t] is h_{t-1}, h[t+1] is h_t
        db3 += ones @ d3[t]                               # sum over the batch
        dh = d3[t] @ W3.T + dh_next                       # the future's derivative is ADDED
        d2 = dh * df2[t]                                  # [B, R], through f2
        dW2 += a[t].T @ d2
        dU += h[t].T @ d2
        db2 += ones @ d2                                  # sum over the batch
        dh_next = d2 @ U.T                                # passed back to step t-1
        d1 = (d2 @ W2.T) * df1[t]                         # [B, H], da_t * f1'(z1_t)
        dW1 += x[t].T @ d1
        db1 += ones @ d1
        dx[t] = d1 @ W1.T                                 # [B, I]
    grads["x"] = dx
    grads["h0"] = dh_next                                 # dh_0
    return grads


def loss_and_grads(params, x, y, h0, *, loss="l2",
                   activations=("tanh", "tanh", "identity"), reduction="mean"):
    """One BPTT window: the loss, the nine gradients and the last state.

    Shapes: params W1 [I,H], b1 [H], W2 [H,R], U [R,R], b2 [R], W3 [R,O], b3 [O];
    x [T,B,I]; y [T,B,O] floats (l2, bce) or [T,B] int ids (ce); h0 [B,R].
    Returns (loss: float, grads: dict of the seven params plus x and h0, h_last [B,R]).
    Computes in the dtype of params; never modifies its inputs.
    Raises ReferenceInputError (a ValueError) on a bad shape, dtype or name.
    """
    activations = tuple(activations)
    value, cache = forward(params, x, y, h0, loss=loss, activations=activations,
                           reduction=reduction)
    grads = backward(params, cache)
    return value, grads, cache.h[-1].copy()


# ------------------------------------------------------- truncated BPTT driver

class WindowResult(NamedTuple):
    """One window of a sequence: where it starts, the state it received, its outputs."""
    start: int
    h0: np.ndarray
    loss: float
    grads: dict
    h_last: np.ndarray


def run_sequence(params, x, y, h0=None, *, interval, impl=loss_and_grads, **options):
    """Run a [T, B, I] sequence as windows of ``interval`` steps (the last may be shorter).

    The state's VALUE is carried from each window into the next; its DERIVATIVE
    is not: each window's gradient treats its h0 as a constant. ``h0`` defaults to
    zeros, as at the start of a sequence. Returns a list of WindowResult.
    """
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ReferenceInputError(f"interval={interval!r}; expected an integer >= 1")
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ReferenceInputError("x must be a numpy array of shape (T, B, I)")
    if h0 is None:
        h0 = np.zeros((x.shape[1], params["W2"].shape[1]), dtype=params["W2"].dtype)
    results = []
    for start in range(0, x.shape[0], interval):
        stop = start + interval
        value, grads, h_last = impl(params, x[start:stop], y[start:stop], h0, **options)
        results.append(WindowResult(start, h0, value, grads, h_last))
        h0 = np.array(h_last, copy=True)                  # the value flows on, not the derivative
    return results
