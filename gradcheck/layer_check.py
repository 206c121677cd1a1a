"""Check one layer by itself: its forward against a JAX model of the layer, and its
backward as a vector-Jacobian product (a random upstream gradient g; the layer's
backward(g) against JAX's g^T J and central finite differences of sum(g * layer),
every element), judged with the whole window's tolerances, into the same Report.

The layer contract (time first, model names; the reference's own layers have it):

    out, cache = forward(*inputs, **options)
    grads      = backward(dout, cache)        # one per input, in the inputs' order

    dense1    forward(x, W1, b1, activation=f1)        x [T,B,I]        -> a [T,B,H]
    rnn_step  forward(a_t, h_prev, W2, U, b2, activation=f2)            -> h_t [B,R]
    rnn       forward(a, h0, W2, U, b2, activation=f2) a [T,B,H]         -> h [T,B,R]
    dense2    forward(h, W3, b3, activation=f3)        h [T,B,R]        -> yhat [T,B,O]
    loss      forward(z3, y, loss=, activation=f3, reduction=)           -> a float
              (its backward returns (dz3,); y gets no gradient)

Code in another shape is reached through an adapter's entry for that layer
(gradcheck.adapters: ``layers`` and ``classes`` declarations).
"""
import time
from typing import NamedTuple

import numpy as np

from ._reference import reference
from .compare import compare
from .diagnose import diagnose_layer, float32_ratio, mismatch_kind
from .errors import UsageError
from .judge import result_of
from .kinds import Diagnosis
from .model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_LOSS, DEFAULT_REDUCTION,
                    DEFAULT_SIZES, DTYPES, LOSSES, REDUCTIONS, SIZES, shape_of)
from .report import Report, Result
from .tolerances import tolerance

__all__ = ["LAYER_SPECS", "check_layer"]


class LayerSpec(NamedTuple):
    """A layer's differentiable inputs (name, shape letters), output, activation index."""
    inputs: tuple
    output: tuple
    activation: int
    meaning: str


LAYER_SPECS = {
    "dense1": LayerSpec((("x", "TBI"), ("W1", "IH"), ("b1", "H")), ("a", "TBH"), 0,
                        "first dense layer: a = f1(x W1 + b1)"),
    "rnn_step": LayerSpec((("a_t", "BH"), ("h_prev", "BR"), ("W2", "HR"), ("U", "RR"),
                           ("b2", "R")), ("h_t", "BR"), 1,
                          "one RNN step: h_t = f2(a_t W2 + h_prev U + b2)"),
    "rnn": LayerSpec((("a", "TBH"), ("h0", "BR"), ("W2", "HR"), ("U", "RR"), ("b2", "R")),
                     ("h", "TBR"), 1, "the RNN over a window of T steps"),
    "dense2": LayerSpec((("h", "TBR"), ("W3", "RO"), ("b3", "O")), ("yhat", "TBO"), 2,
                        "output (temporal) affine layer: yhat = f3(h W3 + b3)"),
    "loss": LayerSpec((("z3", "TBO"),), ("loss", ""), 2, "the loss on z3 (f3 inside for l2)"),
}
_REFERENCE = {"dense1": "dense", "dense2": "dense", "rnn_step": "rnn_step", "rnn": "rnn",
              "loss": "loss"}


def _reference_layer(layer):
    L = reference.layers
    base = _REFERENCE[layer]
    return getattr(L, f"{base}_forward"), getattr(L, f"{base}_backward")


def _inputs(layer, sizes, T, loss, dtype, seed):
    """Random inputs: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.5^2), the rest ~ N(0, 1)
    (states ~ U(-1, 1)); y per loss; the upstream gradient g ~ N(0, 1)."""
    rng = np.random.default_rng([seed, list(LAYER_SPECS).index(layer)])
    dims = {s.letter: sizes[s.option] for s in SIZES}
    dims["T"] = T
    arrays = []
    for name, letters in LAYER_SPECS[layer].inputs:
        shape = tuple(dims[c] for c in letters)
        if name in ("h0", "h_prev"):
            v = rng.uniform(-1.0, 1.0, shape)
        elif len(letters) == 2 and name[0] in "WU":
            v = rng.normal(size=shape) / np.sqrt(shape[0])
        elif len(letters) == 1:
            v = 0.5 * rng.normal(size=shape)
        else:
            v = rng.normal(size=shape)
        arrays.append(v.astype(dtype))
    y = None
    if layer == "loss":
        spec = LOSSES[loss]
        shape = shape_of(f"{loss}:y", sizes, T)
        y = (rng.integers(0, sizes["output_size"], size=shape) if spec.target == "class_ids"
             else rng.uniform(0, 1, shape).astype(dtype) if spec.target == "probabilities"
             else rng.normal(size=shape).astype(dtype))
    out_shape = tuple(dims[c] for c in LAYER_SPECS[layer].output[1])
    g = rng.normal(size=out_shape)
    return arrays, y, (g if out_shape else np.float64(g)).astype(dtype)


def _result(name, oracle, comparison, tol, steps=None):
    """judge.result_of for a layer (one "window"), with the steps that disagree."""
    result = result_of(name, oracle, 1, comparison, tol)
    result.steps = steps
    return result


def _options(layer, activations, loss, reduction):
    f = activations[LAYER_SPECS[layer].activation]
    if layer == "loss":
        return {"loss": loss, "activation": f, "reduction": reduction}
    return {"activation": f}


def _call(forward, backward, layer, arrays, y, g, kw):
    """(out, grads) of the implementation; grads a tuple, one per input."""
    args = [np.array(a, copy=True) for a in arrays]
    if layer == "loss":
        out, cache = forward(args[0], np.array(y, copy=True), **kw)
    else:
        out, cache = forward(*args, **kw)
    grads = backward(np.array(g, copy=True), cache)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    return np.asarray(out, np.float64), tuple(np.asarray(x, np.float64) for x in grads)


def _rnn_steps(forward, backward, arrays, g, kw, per_step, states, tol):
    """1-based steps whose contributions to dW2, dU, db2 disagree, from suffix windows
    (steps t..T started from the true h_{t-1}); None where the code cannot run them."""
    a, h0, W2, U, b2 = arrays
    T = a.shape[0]
    sums = []
    for t in range(T):
        try:
            _, got = _call(forward, backward, "rnn",
                           [a[t:], states[t].astype(a.dtype), W2, U, b2], None, g[t:], kw)
        except Exception:
            return {}
        sums.append(got[2:])
    out = {}
    for i, name in enumerate(("W2", "U", "b2")):
        s = np.stack([x[i] for x in sums] + [np.zeros_like(sums[0][i])])
        contrib = s[:-1] - s[1:]
        scale = float(np.max(np.abs(per_step[name]), initial=0.0))
        out[name] = [t + 1 for t in range(T)
                     if not compare(contrib[t], per_step[name][t], tol, scale=scale).passed]
    return out


# dU candidates of the rnn layer, from JAX's states h [T+1, B, R] and d2 = dL/dz2 [T, B, R]:
# (flaw, sentence, whether the error is the first step's alone, diagnosis kind, dU it gives)
_DU_CANDIDATES = (
    ("dU_first_from_last_state",
     "dU's term of the window's first step is built from the LAST state h_T (h[t-1] at "
     "t = 0 wraps to index -1) instead of h0; the error is in step 1 alone",
     True, "dU_first_step", lambda dU, h, d2: dU - h[0].T @ d2[0] + h[-1].T @ d2[0]),
    ("dU_first_from_h1",
     "dU's term of the window's first step is built from h_1 (the step's output) instead "
     "of h0; the error is in step 1 alone", True, "dU_first_step",
     lambda dU, h, d2: dU - h[0].T @ d2[0] + h[1].T @ d2[0]),
    ("dU_skips_first_step",
     "dU's term of the window's first step is left out (h0 taken as zero); the error is in "
     "step 1 alone", True, "dU_first_step", lambda dU, h, d2: dU - h[0].T @ d2[0]),
    ("dU_from_h_t", "dU is built from h_t instead of h_{t-1} (dU += h_t^T d2_t)", False,
     "dU_from_h_t", lambda dU, h, d2: np.einsum("tbi,tbj->ij", h[1:], d2)),
    ("dU_transposed", "dU is transposed (d2^T h for h^T d2)", False, "transposed",
     lambda dU, h, d2: dU.T),
)


def _dU_candidate(got, dU, d2, states, tol):
    """(kind, sentence, first_step, flaw) of the one candidate whose dU matches ``got``,
    or None."""
    found = [(kind, what, first, flaw) for flaw, what, first, kind, fn in _DU_CANDIDATES
             if compare(got, fn(dU, states, d2), tol).passed]
    return found[0] if len(found) == 1 else None


def _rnn_candidate(layer, arrays, g, grads, activation, tol):
    """(kind, sentence, False, flaw) when the rnn layer's backward never adds the state
    derivative from the future, or the rnn step's sends dh_prev through U instead of
    U^T (candidates.py's flaws, written for one layer), every gradient reproduced."""
    from .candidates import CANDIDATES
    a, h0, W2, U, b2 = (np.asarray(v, np.float64) for v in arrays)
    g = np.asarray(g, np.float64)
    step = reference.layers.rnn_step_forward
    if layer == "rnn_step":
        _, (_, _, _, _, df2) = step(a, h0, W2, U, b2, activation)
        d2 = g * df2                                          # [B, R]
        flaw, want = "dh_next_U_untransposed", (d2 @ W2.T, d2 @ U, a.T @ d2, h0.T @ d2,
                                                d2.sum(axis=0))
    else:
        h_prev, d2 = [h0], []
        for t in range(a.shape[0]):
            h_t, (_, _, _, _, df2) = step(a[t], h_prev[-1], W2, U, b2, activation)
            h_prev.append(h_t)
            d2.append(g[t] * df2)                             # [B, R], no dh_next added
        d2, hp = np.stack(d2), np.stack(h_prev[:-1])          # [T, B, R] each
        flaw, want = "no_dh_next", (d2 @ W2.T, d2[0] @ U.T, np.einsum("tbh,tbr->hr", a, d2),
                                    np.einsum("tbi,tbj->ij", hp, d2), d2.sum(axis=(0, 1)))
    if len(grads) != 5 or not all(compare(got, w, tol).passed for got, w in zip(grads, want)):
        return None
    c = CANDIDATES[flaw]
    return c.kind, c.what, False, flaw


# What a dense layer's activation derivative is called, per layer (the model's f1, f3).
_DENSE_F = {"dense1": ("f1", "f1_derivative"), "dense2": ("f3", "output_derivative")}


def _dense_candidate(layer, arrays, g, grads, tol):
    """(kind, sentence, False, flaw) when the dense layer's backward is its VJP with
    f'(z) left out (dz = dout), every gradient reproduced; else None."""
    x, W, _ = arrays
    I, H = W.shape
    dz = np.asarray(g, np.float64).reshape(-1, H)
    without = (np.asarray(g, np.float64) @ W.T,
               np.asarray(x, np.float64).reshape(-1, I).T @ dz, dz.sum(axis=0))
    if len(grads) != 3 or not all(compare(got, want, tol).passed
                                  for got, want in zip(grads, without)):
        return None
    f, kind = _DENSE_F[layer]
    return (kind, f"the backward leaves out {f}'(z) (dz = dout instead of dout * {f}'(z))",
            False, f"{f}_grad_forgotten")


def check_layer(layer, forward=None, backward=None, *, interval=3, batch=8,
                input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
                state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
                loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
                dtype="float64", seed=0, adapter=None):
    """Check one layer (a key of LAYER_SPECS) against its JAX model and finite differences.

    ``forward``/``backward``: callables with the layer contract (module docstring);
    default: the reference's own layer. ``interval`` is T for the layers over time.
    With ``adapter`` (gradcheck.adapters), ``forward`` is the module of the code instead
    (``FILE.py``, ``MODULE`` or a module) and the declaration's entry for ``layer`` is used.
    Returns a Report (window 1 is the one call; ``config["layer"]`` names the layer)."""
    if layer not in LAYER_SPECS:
        raise UsageError("layer", layer, f"expected one of {', '.join(LAYER_SPECS)}")
    if dtype not in DTYPES:
        raise UsageError("dtype", dtype, f"expected one of {', '.join(DTYPES)}")
    activations = tuple(activations.split(",") if isinstance(activations, str) else activations)
    if len(activations) != 3 or any(a not in ACTIVATIONS for a in activations):
        raise UsageError("activations", activations,
                         f"expected three names among {', '.join(ACTIVATIONS)}")
    if loss not in LOSSES:
        raise UsageError("loss", loss, f"expected one of {', '.join(LOSSES)}")
    if reduction not in REDUCTIONS:
        raise UsageError("reduction", reduction, f"expected one of {', '.join(REDUCTIONS)}")
    sizes = {"batch": batch, "input_size": input_size, "hidden_size": hidden_size,
             "state_size": state_size, "output_size": output_size}
    for name, v in list(sizes.items()) + [("interval", interval)]:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UsageError(name, v, "expected an integer >= 1")
    if adapter is not None:
        from .adapters import layer_impl
        if forward is None or backward is not None:
            raise UsageError("adapter", adapter, "with an adapter, give the module as forward "
                                                 "and no backward")
        spec = LAYER_SPECS[layer]
        forward, backward = layer_impl(forward, adapter, layer, [n for n, _ in spec.inputs],
                                       "T" in spec.output[1])
    if (forward is None) != (backward is None):
        raise UsageError("forward", forward, "give both forward and backward, or neither")
    named = forward is not None
    if not named:
        forward, backward = _reference_layer(layer)
    from .layer_oracles import fd_vjp, jax_per_step, jax_vjp
    started = time.perf_counter()
    options = {"activations": activations, "loss": loss, "reduction": reduction}
    arrays, y, g = _inputs(layer, sizes, interval, loss, dtype, seed)
    kw = _options(layer, activations, loss, reduction)
    config = dict(sizes, interval=interval, seq_len=interval, loss=loss,
                  activations=list(activations), reduction=reduction, dtype=dtype, seed=seed,
                  layer=layer)
    impl_name = (getattr(forward, "label", None)      # an adapter's: the user's code
                 or f"{getattr(forward, '__module__', '?')}."
                    f"{getattr(forward, '__qualname__', repr(forward))}") if named else \
        f"reference.layers ({layer})"
    report = Report(config=config, impl=impl_name, mode="layer",
                    mode_reason=f"layer {layer}: its forward vs JAX; its backward of a random "
                                f"upstream gradient vs JAX's VJP and finite differences, "
                                f"every element", windows=[(0, interval)], results=[])
    try:
        out, grads = _call(forward, backward, layer, arrays, y, g, kw)
    except NotImplementedError as exc:
        report.unsupported = f"NotImplementedError: {exc}"
        report.finding = Diagnosis("not_supported", f"Not supported by this implementation: "
                                                    f"{report.unsupported}")
        return report
    except Exception as exc:        # the layer under test raised: a verdict, not a crash
        report.results.append(Result(name="exception", oracle="contract", window=1,
                                     passed=False,
                                     message=f"raised {type(exc).__name__}: {exc}"))
        report.finding = Diagnosis("exception", f"Layer {layer} raised {type(exc).__name__}: "
                                                f"{exc}.", {"windows": [1]})
        return report
    names = [n for n, _ in LAYER_SPECS[layer].inputs]
    want_out, want = jax_vjp(layer, options, arrays, g, y)
    fd = fd_vjp(layer, options, arrays, g, y)
    tol_jax, tol_fd = tolerance("jax", dtype), tolerance("fd", dtype)
    results, kinds = [], {}
    out_name = LAYER_SPECS[layer].output[0]
    if out.shape != want_out.shape:
        results.append(Result(name="shape", oracle="contract", window=1, passed=False,
                              message=f"{out_name} has shape {out.shape}; expected "
                                      f"{want_out.shape}"))
    else:
        c = compare(out, want_out, tol_jax)
        if not c.passed:
            kinds[out_name] = mismatch_kind(out_name, out, want_out, None, tol_jax)
        results.append(_result(out_name, "jax", c, tol_jax))
    if len(grads) != len(names):
        results.append(Result(name="return_value", oracle="contract", window=1, passed=False,
                              message=f"backward returned {len(grads)} arrays; expected "
                                      f"{len(names)} ({', '.join('d' + n for n in names)})"))
        grads = ()
    for name, got, w_jax, w_fd in zip(names, grads, want, fd):
        if got.shape != w_jax.shape:
            results.append(Result(name="shape", oracle="contract", window=1, passed=False,
                                  message=f"d{name} has shape {got.shape}; expected "
                                          f"{w_jax.shape}"))
            continue
        steps = None
        c = compare(got, w_jax, tol_jax)
        if not c.passed:
            kinds[name] = mismatch_kind(name, got, w_jax, None, tol_jax)
            if layer == "rnn" and name in ("a",):
                steps = [t + 1 for t in range(got.shape[0]) if not compare(
                    got[t], w_jax[t], tol_jax, scale=float(np.max(np.abs(w_jax)))).passed]
        results.append(_result(name, "jax", c, tol_jax, steps))
        results.append(_result(name, "fd", compare(got, w_fd, tol_fd), tol_fd, steps))
    failing = [r for r in results if not r.passed]
    candidate = None
    if layer == "rnn" and any(r.name in ("W2", "U", "b2") for r in failing):
        per_step, states = jax_per_step(options, arrays, g)
        steps = _rnn_steps(forward, backward, arrays, g, kw, per_step, states, tol_jax)
        if {r.name for r in failing} == {"U"}:
            candidate = _dU_candidate(grads[names.index("U")], want[names.index("U")],
                                      per_step["d2"], states, tol_jax)
            if candidate is not None and candidate[2]:
                steps["U"] = [1]
        for r in failing:
            if steps.get(r.name):
                r.steps = steps[r.name]
    report.results = results
    seen, unique = set(), []
    for r in failing:
        if r.name not in seen:
            seen.add(r.name)
            unique.append(r)
    if (layer in _DENSE_F and grads and candidate is None
            and {r.name for r in unique} == set(names)):
        candidate = _dense_candidate(layer, arrays, g, grads, tol_jax)
    if layer in ("rnn", "rnn_step") and grads and candidate is None and unique:
        candidate = _rnn_candidate(layer, arrays, g, grads, kw["activation"], tol_jax)
    f32 = None
    if dtype == "float64" and unique and all(r.oracle != "contract" for r in unique):
        values = dict(zip(names, zip(grads, want)), **{out_name: (out, want_out)})
        f32 = float32_ratio({r.name: values[r.name] for r in unique}, kinds)
    report.finding = diagnose_layer(layer, LAYER_SPECS[layer].meaning, out_name, unique,
                                    kinds, dtype, loss, f32, candidate)
    report.timings = {"total": round(time.perf_counter() - started, 6)}
    return report
