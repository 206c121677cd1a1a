"""Check one layer by itself: its forward against a JAX model of the layer, and its
backward as a vector-Jacobian product (a random upstream gradient g; the layer's
backward(g) against JAX's g^T J and central finite differences of sum(g * layer),
every element), judged with the whole window's tolerances, into the same Report.

The layer contract (time first, model names; the reference's own layers have it):

    *outputs, cache = forward(*inputs, **options)
    grads           = backward(*douts, cache)   # one dout per output; one grad per input,
                                                # in the inputs' order

    dense1    forward(x, W1, b1, activation=f1)        x [T,B,I]        -> a [T,B,H]
    rnn_step  forward(a_t, h_prev, W2, U, b2, activation=f2)            -> h_t [B,R]
    rnn       forward(a, h0, W2, U, b2, activation=f2) a [T,B,H]         -> h [T,B,R]
    dense2    forward(h, W3, b3, activation=f3)        h [T,B,R]        -> yhat [T,B,O]
    loss      forward(z3, y, loss=, activation=f3, reduction=)           -> a float
              (its backward returns (dz3,); y gets no gradient)
    lstm_step forward(a_t, h_prev, c_prev, Wx, Wh, b)  Wx [H,4R] (i,f,g,o) -> h_t, c_t [B,R]
    lstm      forward(a, h0, c0, Wx, Wh, b)            a [T,B,H]         -> h [T,B,R]
    gru_step  forward(a_t, h_prev, Wx, Wh, b[, bh])    Wx [H,3R] (r,z,n) -> h_t [B,R]
    gru       forward(a, h0, Wx, Wh, b[, bh])          a [T,B,H]         -> h [T,B,R]
              (bh, last, with reset_after=True: the reset gate after the product)

The cells' layers are declared by the cells (model.LayerSpec in each cell's module, read
from the registry); their reference layers are the cell's reference module's
``NAME_forward``/``NAME_backward``, their JAX functions the cell's "layer_jax" side.

Code in another shape is reached through an adapter's entry for that layer
(gradcheck.adapters: ``layers``, ``classes`` and ``cells`` declarations; the same stages
as the whole window, so the same keys).
"""
import time

import numpy as np

from ._reference import cell_module, reference
from .attribution import unattributable
from .compare import compare
from .diagnose import diagnose_layer, float32_ratio, mismatch_kind
from .errors import DeclarationError, UsageError
from .judge import result_of
from .kinds import Diagnosis
from .model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_LOSS,
                    DEFAULT_REDUCTION, DEFAULT_SIZES, DTYPES, LOSSES, REDUCTIONS, SIZES, Array,
                    LayerSpec, array, cell, cell_layers, layer_spec, shape_of, side)
from .report import Report, Result
from .tolerances import tolerance
from .untrusted import exception_message

__all__ = ["LAYER_SPECS", "LayerSpec", "check_layer", "spec_of"]

_DENSE1 = LayerSpec("dense1", tuple(map(array, ("x", "W1", "b1"))), (Array("a", "TBH", "input"),),
                    0, "first dense layer: a = f1(x W1 + b1)")
_DENSE2 = LayerSpec("dense2", (Array("h", "TBR", "input"), array("W3"), array("b3")),
                    (Array("yhat", "TBO", "input"),), 2,
                    "output (temporal) affine layer: yhat = f3(h W3 + b3)")
_LOSS = LayerSpec("loss", (Array("z3", "TBO", "input"),), (Array("loss", "", "input"),), 2,
                  "the loss on z3 (f3 inside for l2)")
# The network's layers in its order for the default cell, then the other cells' layers
# (a layer's random draws are seeded by its place here: added layers go last).
LAYER_SPECS = {s.name: s for s in (_DENSE1, *cell(DEFAULT_CELL).layers, _DENSE2, _LOSS)}
LAYER_SPECS.update({n: s for n, s in cell_layers().items() if n not in LAYER_SPECS})
_REFERENCE = {"dense1": "dense", "dense2": "dense", "loss": "loss"}


def spec_of(layer):
    """The LayerSpec called ``layer``; UsageError for a name that is none."""
    if layer not in LAYER_SPECS:
        raise UsageError("layer", layer, f"expected one of {', '.join(LAYER_SPECS)}")
    return LAYER_SPECS[layer]


def _reference_layer(spec):
    if spec.cell is None:
        L, base = reference.layers, _REFERENCE[spec.name]
    else:
        L, base = cell_module(cell(spec.cell).sides["layer_reference"]), spec.name
    return getattr(L, f"{base}_forward"), getattr(L, f"{base}_backward")


def _inputs(spec, sizes, T, loss, dtype, seed):
    """Random inputs: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.5^2), states ~ U(-1, 1),
    the rest ~ N(0, 1); y per loss; one upstream gradient g ~ N(0, 1) per output."""
    rng = np.random.default_rng([seed, list(LAYER_SPECS).index(spec.name)])
    dims = {s.letter: sizes[s.option] for s in SIZES}
    dims["T"] = T

    def shape(a):
        s = [dims[c] for c in a.letters]
        if s:
            s[-1] *= a.blocks
        return tuple(s)

    arrays = []
    for a in spec.inputs:
        if a.role == "state":
            v = rng.uniform(-1.0, 1.0, shape(a))
        elif a.fan_in is not None:
            v = rng.normal(size=shape(a)) / np.sqrt(shape(a)[0])
        elif len(a.letters) == 1:
            v = 0.5 * rng.normal(size=shape(a))
        else:
            v = rng.normal(size=shape(a))
        arrays.append(v.astype(dtype))
    y = None
    if spec.name == "loss":
        target = LOSSES[loss]
        y_shape = shape_of(f"{loss}:y", sizes, T)
        y = (rng.integers(0, sizes["output_size"], size=y_shape)
             if target.target == "class_ids"
             else rng.uniform(0, 1, y_shape).astype(dtype) if target.target == "probabilities"
             else rng.normal(size=y_shape).astype(dtype))
    gs = []
    for out in spec.outputs:
        g = rng.normal(size=shape(out))
        gs.append((g if shape(out) else np.float64(g)).astype(dtype))
    return arrays, y, tuple(gs)


def _result(name, oracle, comparison, tol, steps=None):
    """judge.result_of for a layer (one "window"), with the steps that disagree."""
    result = result_of(name, oracle, 1, comparison, tol)
    result.steps = steps
    return result


def _options(spec, activations, loss, reduction):
    if spec.name == "loss":
        return {"loss": loss, "activation": activations[spec.activation], "reduction": reduction}
    return {} if spec.activation is None else {"activation": activations[spec.activation]}


class _Broken(Exception):
    """The layer under test broke the layer contract (its sentence is the message)."""


def _signature(spec):
    return f"({', '.join([o.name for o in spec.outputs] + ['cache'])})"


def _call(forward, backward, spec, arrays, y, gs, kw, skip=()):
    """(outputs, grads) of the implementation, float64: outputs a tuple, one per output;
    grads a tuple, one per input (zeros for an input in ``skip``, whose gradient the code
    does not give: never compared). _Broken when what it returns breaks the contract."""
    args = [np.array(a, copy=True) for a in arrays]
    if spec.name == "loss":
        got = forward(args[0], np.array(y, copy=True), **kw)
    else:
        got = forward(*args, **kw)
    n = len(spec.outputs) + 1
    if not isinstance(got, (tuple, list)) or len(got) != n:
        what = (f"returned {len(got)} values" if isinstance(got, (tuple, list))
                else f"returned one {type(got).__name__}")
        raise _Broken(f"forward {what}; layer {spec.name} expects {_signature(spec)}")
    *outs, cache = got
    grads = backward(*(np.array(g, copy=True) for g in gs), cache)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    grads = [np.zeros(np.shape(arrays[i])) if i < len(spec.inputs) and spec.inputs[i].name in skip
             else g for i, g in enumerate(grads)]
    return (tuple(_float64(o, "forward", a.name) for o, a in zip(outs, spec.outputs)),
            tuple(_float64(g, "backward", "d" + a.name) for g, a in zip(grads, spec.inputs)))


def _float64(value, who, name):
    """``value``, what ``who`` (forward or backward) returned as ``name``, as a float64
    array; _Broken when it is missing (None: NumPy would make it a NaN) or not numbers."""
    if value is None:
        raise _Broken(f"{who} returned no {name} (None)")
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError) as exc:
        raise _Broken(f"{who}'s {name} is not an array of numbers ({type(value).__name__}: "
                      f"{exc})") from None


def _window_steps(forward, backward, spec, arrays, gs, kw, per_step, states, tol, skip=()):
    """{param: 1-based steps whose contributions to its gradient disagree}, from suffix
    windows (steps t..T started from JAX's states entering step t); {} where the code
    cannot run them."""
    T = arrays[[a.role for a in spec.inputs].index("input")].shape[0]
    sums = []
    for t in range(T):
        suffix = [v[t:] if a.role == "input" else states[a.name][t].astype(v.dtype)
                  if a.role == "state" else v for v, a in zip(arrays, spec.inputs)]
        try:
            _, got = _call(forward, backward, spec, suffix, None, (gs[0][t:],), kw, skip)
        except Exception:
            return {}
        sums.append(got)
    out = {}
    for i, a in enumerate(spec.inputs):
        if a.role != "param" or any(len(g) <= i for g in sums):
            continue
        s = np.stack([g[i] for g in sums] + [np.zeros_like(sums[0][i])])
        contrib = s[:-1] - s[1:]
        want = per_step[a.name]
        scale = float(np.max(np.abs(want), initial=0.0))
        out[a.name] = [t + 1 for t in range(T)
                       if not compare(contrib[t], want[t], tol, scale=scale).passed]
    return out


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


def _declaration(adapter, spec, forward, backward):
    """The declaration of ``adapter`` for ``spec``'s layer: with the module of the code as
    ``forward`` (no ``backward``), a style's or a full declaration; with the layer's own
    two functions, the cell's conventions alone. UsageError otherwise."""
    from . import adapters
    if forward is not None and backward is not None:
        decl = adapters.conventions_only(adapter, spec.cell)
        if decl is None:
            keys = cell(spec.cell).conventions if spec.cell else {}
            raise UsageError("adapter", adapter, f"with the layer's two functions, an "
                             f"adapter holds only its cell's conventions (keys: "
                             f"{', '.join(keys) or 'none'}); for code in another shape, "
                             f"give its module as forward and no backward")
        return decl
    if forward is None or backward is not None:
        raise UsageError("adapter", adapter, "with an adapter, give the module as forward "
                                             "and no backward")
    return adapters.declaration(adapter, spec.cell)


def _cell_options(spec, given):
    """The LayerSpec with its cell's options ``given`` (keywords of check_layer that are
    not its own); UsageError for one its cell has not, or a value not True/False."""
    known = [o.name for o in cell(spec.cell).options] if spec.cell else []
    for name, value in given.items():
        if name not in known:
            raise UsageError(name, value, f"not an option of check_layer, nor of layer "
                             f"{spec.name} (its cell's options: {', '.join(known) or 'none'})")
        if not isinstance(value, bool):
            raise UsageError(name, value, "expected True or False")
    return layer_spec(spec, **given)


def _unique(failing):
    seen, unique = set(), []
    for r in failing:
        if r.name not in seen:
            seen.add(r.name)
            unique.append(r)
    return unique


def check_layer(layer, forward=None, backward=None, *, interval=3, batch=8,
                input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
                state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
                loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
                dtype="float64", seed=0, adapter=None, **cell_options):
    """Check one layer (a key of LAYER_SPECS) against its JAX model and finite differences.

    ``forward``/``backward``: callables with the layer contract (module docstring);
    default: the reference's own layer. ``interval`` is T for the layers over time.
    ``cell_options``: the options of the layer's cell (``reset_after=True`` for gru_step
    and gru: the reset gate after the product, with bh as the last input).
    With ``adapter`` (gradcheck.adapters), ``forward`` is the module of the code instead
    (``FILE.py``, ``MODULE`` or a module) and the declaration's entry for ``layer`` is used;
    or, with ``forward`` and ``backward`` given, ``adapter`` holds the cell's conventions
    alone (``{"gate_order": "ifog"}``): the layer's own functions follow those. What the
    declared code cannot take is given as zeros and what it cannot give is skipped
    (adapters.layer_skips), as in the whole window.
    Returns a Report (window 1 is the one call; ``config["layer"]`` names the layer)."""
    spec = spec_of(layer)
    decl = None
    if adapter is not None:
        from . import adapters
        decl = _declaration(adapter, spec, forward, backward)
        cell_options = adapters.declared_options(decl, cell_options)
    spec = _cell_options(spec, cell_options)
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
    names = list(spec.input_names)
    zeros = skip = ()
    if decl is not None:
        zeros, skip = adapters.layer_skips(decl, names)
        forward, backward = (
            adapters.convention_pair(forward, backward, decl, names) if backward is not None
            else adapters.layer_impl(forward, decl, layer, names, "T" in spec.output[1],
                                     spec.cell))
    if (forward is None) != (backward is None):
        raise UsageError("forward", forward, "give both forward and backward, or neither")
    named = forward is not None
    if not named:
        forward, backward = _reference_layer(spec)
    from .layer_oracles import fd_vjp, jax_vjp, jax_window_per_step
    started = time.perf_counter()
    options = {"activations": activations, "loss": loss, "reduction": reduction}
    arrays, y, gs = _inputs(spec, sizes, interval, loss, dtype, seed)
    arrays = [np.zeros_like(v) if a.name in zeros else v for v, a in zip(arrays, spec.inputs)]
    kw = _options(spec, activations, loss, reduction)
    config = dict(sizes, interval=interval, seq_len=interval, loss=loss,
                  activations=list(activations), reduction=reduction, dtype=dtype, seed=seed,
                  layer=layer, **{n: v for n, v in cell_options.items() if v})
    impl_name = (getattr(forward, "label", None)      # an adapter's: the user's code
                 or f"{getattr(forward, '__module__', '?')}."
                    f"{getattr(forward, '__qualname__', repr(forward))}") if named else \
        f"reference layer {layer}"
    report = Report(config=config, impl=impl_name, mode="layer",
                    mode_reason=f"layer {layer}: its forward vs JAX; its backward of a random "
                                f"upstream gradient vs JAX's VJP and finite differences, "
                                f"every element", windows=[(0, interval)], results=[],
                    skipped=list(skip))
    try:
        outs, grads = _call(forward, backward, spec, arrays, y, gs, kw, skip)
    except NotImplementedError as exc:
        report.unsupported = f"NotImplementedError: {exc}"
        report.finding = Diagnosis("not_supported", f"Not supported by this implementation: "
                                                    f"{report.unsupported}")
        return report
    except _Broken as exc:          # what it returned breaks the contract: one line
        report.results.append(Result(name="return_value", oracle="contract", window=1,
                                     passed=False, message=str(exc)))
        report.finding = diagnose_layer(layer, spec.meaning, spec.output[0],
                                        report.results, {}, dtype, loss)
        return report
    except Exception as exc:        # the layer under test raised: a verdict, not a crash
        message = exception_message(exc)          # where in the user's code, never ours
        declared = isinstance(exc, DeclarationError)
        name = "declaration" if declared else "exception"
        report.results.append(Result(name=name, oracle="contract", window=1,
                                     passed=False, message=message))
        lead = (f"Layer {layer}: the adapter declaration does not match the code" if declared
                else f"Layer {layer} raised an exception")
        report.finding = Diagnosis(name, f"{lead}: {message}.", {"windows": [1]})
        return report
    want_outs, want = jax_vjp(layer, options, arrays, gs, y)
    fd = fd_vjp(layer, options, arrays, gs, y)
    tol_jax, tol_fd = tolerance("jax", dtype), tolerance("fd", dtype)
    results, kinds = [], {}
    for a, out, want_out in zip(spec.outputs, outs, want_outs):
        if out.shape != want_out.shape:
            results.append(Result(name="shape", oracle="contract", window=1, passed=False,
                                  message=f"{a.name} has shape {out.shape}; expected "
                                          f"{want_out.shape}"))
            continue
        c = compare(out, want_out, tol_jax)
        if not c.passed:
            kinds[a.name] = mismatch_kind(a.name, out, want_out, None, tol_jax)
        results.append(_result(a.name, "jax", c, tol_jax))
    if len(grads) != len(names):
        results.append(Result(name="return_value", oracle="contract", window=1, passed=False,
                              message=f"backward returned {len(grads)} arrays; expected "
                                      f"{len(names)} ({', '.join('d' + n for n in names)})"))
        grads = ()
    over_time = spec.step is not None
    for a, got, w_jax, w_fd in zip(spec.inputs, grads, want, fd):
        name = a.name
        if name in skip:
            continue
        if got.shape != w_jax.shape:
            results.append(Result(name="shape", oracle="contract", window=1, passed=False,
                                  message=f"d{name} has shape {got.shape}; expected "
                                          f"{w_jax.shape}"))
            continue
        steps = None
        c = compare(got, w_jax, tol_jax)
        if not c.passed:
            kinds[name] = mismatch_kind(name, got, w_jax, None, tol_jax)
            if over_time and a.role == "input" and a.letters.startswith("T"):
                steps = [t + 1 for t in range(got.shape[0]) if not compare(
                    got[t], w_jax[t], tol_jax, scale=float(np.max(np.abs(w_jax)))).passed]
        results.append(_result(name, "jax", c, tol_jax, steps))
        results.append(_result(name, "fd", compare(got, w_fd, tol_fd), tol_fd, steps))
    failing = [r for r in results if not r.passed]
    report.results = results
    report.timings = {"total": round(time.perf_counter() - started, 6)}
    if spec.cell is not None and all(r.oracle != "contract" for r in failing) and \
            {r.name for r in failing} & {a.name for a in spec.outputs}:
        report.finding = _convention(spec, decl, [n for n, v in cell_options.items() if v],
                                     arrays, outs, gs, options, tol_jax, _unique(failing))
        if report.finding is not None:      # the forward follows another convention
            return report
    params = {a.name for a in spec.inputs if a.role == "param"}
    bad = [n for n in spec.input_names if n in params & {r.name for r in failing}]
    zeroed = [a.name for a in spec.inputs if a.role == "state" and a.name in zeros]
    if over_time and grads and bad and zeroed:
        report.skipped_calls.append(unattributable(bad, zeroed))
    elif over_time and grads and bad:
        per_step, states = jax_window_per_step(spec, options, arrays, gs[0])
        steps = _window_steps(forward, backward, spec, arrays, gs, kw, per_step, states,
                              tol_jax, skip)
        for r in failing:
            if steps.get(r.name):
                r.steps = steps[r.name]
    unique = _unique(failing)
    judged = grads and unique and all(r.oracle != "contract" for r in unique)
    candidate = None
    if judged and spec.name in _DENSE_F \
            and {r.name for r in unique} == set(names):
        candidate = _dense_candidate(layer, arrays, gs[0], grads, tol_jax)
    if judged and spec.cell is not None and {r.name for r in unique} & set(names):
        # the cell's own mistakes of its layers (mistakes of the backward: some gradient)
        candidate = side(spec.cell, "layer_zoo").layer_candidate(
            spec, arrays, gs, [None if n in skip else g for n, g in zip(names, grads)], want,
            {r.name for r in unique}, options, tol_jax)
        if over_time and candidate is not None and candidate[2]:   # in step 1 alone
            for r in failing:
                if r.name in params:
                    r.steps = [1]
    f32 = None
    if dtype == "float64" and unique and all(r.oracle != "contract" for r in unique):
        values = dict(zip(names, zip(grads, want)),
                      **{a.name: pair for a, pair in zip(spec.outputs, zip(outs, want_outs))})
        f32 = float32_ratio({r.name: values[r.name] for r in unique}, kinds)
    report.finding = diagnose_layer(layer, spec.meaning, spec.output[0], unique, kinds, dtype,
                                    loss, f32, candidate, _unclear(spec, unique, interval))
    report.timings = {"total": round(time.perf_counter() - started, 6)}
    return report


def _convention(spec, decl, on, arrays, outs, gs, options, tol, failing):
    """The Diagnosis when the layer's forward outputs are the JAX layer's under other
    conventions of its cell than the ones checked (``decl``'s, or the contract's, with the
    cell options named in ``on``), tried fewest changes first as in the whole window
    (cells/convention_arrays.py); else None."""
    from .cells.convention_arrays import declared, first_followed, sentence
    from .layer_oracles import jax_vjp
    if not cell(spec.cell).conventions:
        return None
    checked = declared(decl, spec.cell, on)
    plain = spec_of(spec.name).input_names       # an option's arrays (bh) come after

    def run(computed, _after):
        inputs = [computed[n] for n in plain] + [v for n, v in computed.items()
                                                 if n not in plain]
        return jax_vjp(spec.name, options, inputs, gs)[0]
    found = first_followed(run, outs, dict(zip(spec.input_names, arrays)), checked, spec.cell,
                           tol, names=spec.input_names)
    if not found:
        return None
    kind, text = sentence(found, checked, spec.cell, decl is not None, layer=True)
    return Diagnosis(kind, f"Layer {spec.name} ({spec.meaning}): {text[0].lower()}{text[1:]}",
                     {"windows": [1], "arrays": [r.name for r in failing],
                      "convention": found, "checked": checked})


def _unclear(spec, failing, T):
    """The cell's own words for params that disagree at every step but the last (the
    derivative of its states from the future), or None."""
    if spec.step is None or T < 2:
        return None
    params = [r for r in failing if r.oracle == "jax" and r.steps is not None
              and r.name in {a.name for a in spec.inputs if a.role == "param"}]
    if not params or any(r.steps != list(range(1, T)) for r in params):
        return None
    carried = [f"d{a.name[0]}_next" for a in spec.inputs if a.role == "state"]
    return ("state_derivative_unclear",
            f"they disagree at every step but the last: the derivative of the state from "
            f"the future ({' or '.join(carried)}) is wrong on its way back, but no "
            f"{cell(spec.cell).label} zoo mistake "
            f"reproduces the numbers")
