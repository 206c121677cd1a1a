"""One check, end to end: config -> data -> implementation and oracles -> comparison -> report."""
import time

import numpy as np

from ._reference import reference
from .attribution import disagreeing_steps
from .compare import compare
from .config import make_config
from .data import make_data
from .diagnose import diagnose, mismatch_kind
from .errors import UsageError
from .model import (DEFAULT_ACTIVATIONS, DEFAULT_DTYPE, DEFAULT_INTERVAL, DEFAULT_LOSS,
                    DEFAULT_REDUCTION, DEFAULT_SIZES, GRAD_NAMES, OUTPUT_NAMES)
from .oracles import ORACLES, PROJECTIONS, Window
from .report import Report, Result
from .tolerances import calibrated, tolerance
from .untrusted import call_impl

__all__ = ["check"]


def _result(name, oracle, window, comparison, tol, base=None, own=None):
    """A Result from a Comparison; ``own`` (the reference's own error) is recorded
    when ``tol`` was raised above ``base`` for it."""
    c = comparison
    if c.passed:
        message = ""
    elif c.nonfinite:
        message = (f"{c.nonfinite} non-finite value{'s' if c.nonfinite > 1 else ''}, "
                   f"first at {list(c.worst)}")
    elif c.oracle_value is None or c.ratio is None:
        message = (f"the {oracle} oracle is not finite at {list(c.worst)} (the model "
                   f"overflows at these values), so this array cannot be judged")
    else:
        message = (f"worst element {list(c.worst)}: impl {c.impl_value:.10g}, {oracle} "
                   f"{c.oracle_value:.10g}, error {c.max_abs_err:.3g} is {c.ratio:.3g}x "
                   f"the allowed (rtol {tol.rtol:g}, atol {tol.atol_rel:g} of max |{oracle}|)")
    return Result(name=name, oracle=oracle, window=window, passed=c.passed, message=message,
                  checked=c.checked, excluded=c.excluded, max_abs_err=c.max_abs_err,
                  max_rel_err=c.max_rel_err, ratio=c.ratio, rtol=tol.rtol,
                  atol_rel=tol.atol_rel,
                  worst_index=None if c.worst is None else list(c.worst),
                  impl_value=c.impl_value, oracle_value=c.oracle_value, nonfinite=c.nonfinite,
                  rounding=own if base is not None and tol.atol_rel > base.atol_rel else None)


# Up to this many elements per sequence, `full` mode checks every element by finite
# differences (the cost grows with the count; the benchmark prints it); beyond it,
# `projections` keeps the cost flat.
FULL_MODE_MAX_ELEMENTS = 50_000
# Results are listed per window in the model's order of outputs, each array's oracles together.
_ORDER = {n: i for i, n in enumerate(OUTPUT_NAMES + GRAD_NAMES)}


def _choose_mode(config):
    if config.mode is not None:
        return config.mode, "chosen with --mode"
    n = config.n_elements
    if n <= FULL_MODE_MAX_ELEMENTS:
        return "full", f"{n} elements <= {FULL_MODE_MAX_ELEMENTS}: every one is checked"
    return "projections", (f"{n} elements > {FULL_MODE_MAX_ELEMENTS}: {PROJECTIONS} random "
                           f"directions per array by finite differences; every element vs JAX")


def _judge(name, oracle, window, got, want, base, own, exclude=None):
    """Compare ``got`` with ``want`` at ``base`` calibrated to the reference's own error
    ``own`` in this dtype (tolerances.calibrated); the Result records which it used."""
    tol = calibrated(base, own)
    return _result(name, oracle, window, compare(got, want, tol, exclude), tol, base, own)


def _own_rounding(computed, ref):
    """The reference's own error, per array, computing in the implementation's dtype on
    the same inputs: max |reference - JAX| / max |JAX| (None where JAX's is all zero).
    ``computed``: the reference's (loss, grads, h_last) on this window."""
    value, grads, h_last = computed
    got = dict(grads, loss=value, h_last=h_last)
    want = dict(ref.grads, loss=ref.loss, h_last=ref.h_last)
    own = {}
    for name, arr in got.items():
        scale = float(np.max(np.abs(want[name])))
        err = float(np.max(np.abs(np.asarray(arr, np.float64) - want[name])))
        own[name] = err / scale if scale > 0 else None
    return own


def _impl_name(impl):
    if impl is None:
        return "reference"
    if isinstance(impl, str):
        return impl
    return f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', repr(impl))}"


class _Default:
    """An option left at its default: the model's, or what an adapter's code computes."""
    def __repr__(self):
        return "<default>"


_DEFAULT = _Default()


def check(impl=None, *, interval=DEFAULT_INTERVAL, seq_len=None, batch=DEFAULT_SIZES["batch"],
          input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
          state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
          loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
          dtype=DEFAULT_DTYPE, seed=0, mode=None, progress=None, trace=False, adapter=None,
          skip=(), adapter_defaults=True):
    """Check an implementation of the loss_and_grads contract against JAX and finite differences.

    ``impl`` defaults to the project's reference. Every window of the sequence is
    checked, each with the state the implementation itself carried in; the first
    window's incoming state is random and non-zero. Returns a Report; raises
    UsageError (a ValueError) naming a bad option. ``progress``, if given, is called
    as ``progress(windows_done, windows_total)`` after each window. ``impl`` may also be
    a spec string ``FILE.py:FUNC`` or ``MODULE:FUNC``. ``trace=True`` also records, for
    the pictures (gradcheck.trace), each step's error and state derivative, at the cost
    of extra calls to the implementation after every verdict is made (``report.trace``).

    ``adapter`` (a style name or a declaration, see gradcheck.adapters) checks code
    written in another shape: ``impl`` is then its module (``FILE.py``, ``MODULE`` or a
    module object).
    ``skip``: gradient names the code does not compute (reported as skipped, never compared).
    With an adapter, options left at the model's defaults take the adapter's values
    (``adapter_defaults=False``: every option as given).
    """
    decl = None
    spec = impl if isinstance(impl, str) else None
    # With an adapter, an option left at the model's default takes what the code computes.
    adapter_defaults = adapter is not None and adapter_defaults
    loss = _DEFAULT if adapter_defaults and loss == DEFAULT_LOSS else loss
    activations = (_DEFAULT if adapter_defaults and tuple(activations) == DEFAULT_ACTIVATIONS
                   else activations) if isinstance(activations, (tuple, list)) else activations
    reduction = _DEFAULT if adapter_defaults and reduction == DEFAULT_REDUCTION else reduction
    batch = _DEFAULT if adapter_defaults and batch == DEFAULT_SIZES["batch"] else batch
    hidden_size = (_DEFAULT if adapter_defaults and hidden_size == DEFAULT_SIZES["hidden_size"]
                   else hidden_size)
    if adapter is not None:
        from . import adapters
        decl = adapters.declaration(adapter)
        if impl is None:
            raise UsageError("impl", impl, "an adapter needs the module of the code to check")
        impl = adapters.build(impl, decl)
        d_loss, d_acts, d_red = adapters.supported(decl)
        loss = d_loss if loss is _DEFAULT else loss
        activations = d_acts if activations is _DEFAULT else activations
        reduction = d_red if reduction is _DEFAULT else reduction
        fixed = adapters.sizes(decl, {
            "batch": None if batch is _DEFAULT else batch, "input_size": input_size,
            "hidden_size": None if hidden_size is _DEFAULT else hidden_size})
        batch = _DEFAULT if fixed["batch"] is None else fixed["batch"]
        hidden_size = _DEFAULT if fixed["hidden_size"] is None else fixed["hidden_size"]
        skip = tuple(skip) + adapters.skipped(decl)
    loss = DEFAULT_LOSS if loss is _DEFAULT else loss
    activations = DEFAULT_ACTIVATIONS if activations is _DEFAULT else activations
    reduction = DEFAULT_REDUCTION if reduction is _DEFAULT else reduction
    batch = DEFAULT_SIZES["batch"] if batch is _DEFAULT else batch
    hidden_size = DEFAULT_SIZES["hidden_size"] if hidden_size is _DEFAULT else hidden_size
    skip = _skip_names(skip)
    if spec is not None and decl is None:
        from .untrusted import load_impl
        impl = load_impl(spec)
    if impl is not None and not callable(impl):
        raise UsageError("impl", impl, "expected a callable with the loss_and_grads contract")
    config = make_config(interval=interval, seq_len=seq_len, batch=batch,
                         input_size=input_size, hidden_size=hidden_size,
                         state_size=state_size, output_size=output_size, loss=loss,
                         activations=activations, reduction=reduction, dtype=dtype,
                         seed=seed, mode=mode)
    fn = reference.loss_and_grads if impl is None else impl
    if skip:
        fn = _filling(fn, skip)
    mode, reason = _choose_mode(config)
    data = make_data(config)
    if decl is not None:
        from .adapters import prepare_data
        params, x = prepare_data(decl, data.params, data.x)
        data = data._replace(params=params, x=x)
        if decl.get("h0") == "zeros":    # code that starts every window from a zero state
            data = data._replace(h0=np.zeros_like(data.h0))
    unsupported = None
    options = config.model_options
    timings = dict.fromkeys(["impl"] + [o.name for o in ORACLES], 0.0)
    results = []
    seen = []                        # per window: what attribution needs afterwards
    h0 = data.h0
    started = time.perf_counter()
    for w, (start, stop) in enumerate(config.windows, start=1):
        window = Window(w, data.params, data.x[start:stop], data.y[start:stop], h0, options,
                        mode, config.seed)
        t = time.perf_counter()
        out = call_impl(fn, data.params, window.x, window.y, h0, options)
        timings["impl"] += time.perf_counter() - t
        declined = [p for p in out.problems if p.name == "exception"
                    and p.message.startswith(f"raised {NotImplementedError.__name__}")]
        if declined:                 # the code declines these options: not a verdict on it
            unsupported = declined[0].message[len("raised "):]
            break
        for p in out.problems:
            results.append(Result(name=p.name, oracle="contract", window=w, passed=False,
                                  message=p.message))
        expected, details = [], {}
        for oracle in ORACLES:
            t = time.perf_counter()
            exp, details[oracle.name] = oracle.expect(window)
            timings[oracle.name] += time.perf_counter() - t
            expected.extend(exp)
        ref = details["jax"]
        if impl is None and not out.problems:            # the reference: its output is at hand
            own = _own_rounding((out.loss, out.grads, out.h_last), ref)
        else:
            own = _own_rounding(reference.loss_and_grads(data.params, window.x, window.y, h0,
                                                         **options), ref)
        got = dict(out.grads or {}, loss=out.loss, h_last=out.h_last)
        for e in sorted(expected, key=lambda e: _ORDER[e.name]):     # stable: oracle order
            if got.get(e.name) is None or e.name in skip:
                continue
            value = got[e.name] if e.project is None else e.project(got[e.name])
            results.append(_judge(e.name, e.oracle, w, value, e.want,
                                  tolerance(e.table, config.dtype), own[e.name], e.exclude))
        seen.append((window.x, window.y, ref, out))
        if progress is not None:
            progress(w, len(config.windows))
        if out.h_last is None or not np.all(np.isfinite(out.h_last)):
            break            # no state to carry: later windows cannot be checked
        h0 = out.h_last.astype(config.dtype)
        if decl is not None and decl.get("h0") == "zeros":
            h0 = data.h0
    diagnosis = _explain(fn, data.params, seen, results, config, options, skip) if seen \
        else None
    if unsupported is not None:
        diagnosis = f"Not supported by this implementation: {unsupported}"
    timings["total"] = time.perf_counter() - started
    report = Report(config=config.to_dict(), impl=_impl_name(spec or impl), mode=mode,
                    mode_reason=reason, windows=config.windows, results=results,
                    diagnosis=diagnosis, timings={k: round(v, 6) for k, v in timings.items()},
                    skipped=list(skip), unsupported=unsupported)
    if trace and seen:                   # after every verdict: its calls cannot change one
        from .trace import trace_check
        report.trace = trace_check(fn, data.params, seen, results, config)
    return report


def _skip_names(skip):
    """``skip`` as a tuple of gradient names in the model's order; UsageError otherwise."""
    if isinstance(skip, str):
        skip = [s.strip() for s in skip.split(",") if s.strip()]
    bad = [s for s in skip if s not in GRAD_NAMES]
    if bad:
        raise UsageError("skip", ",".join(map(str, bad)),
                         f"expected gradient names among {', '.join(GRAD_NAMES)}")
    return tuple(n for n in GRAD_NAMES if n in set(skip))


def _filling(fn, skip):
    """``fn`` with the gradients in ``skip`` that it does not return filled in with zeros
    (they are never compared): the contract's other checks still see a full dict."""
    def filled(params, x, y, h0, **options):
        out = fn(params, x, y, h0, **options)
        if isinstance(out, tuple) and len(out) == 3 and isinstance(out[1], dict):
            arrays = dict(params, x=x, h0=h0)
            grads = dict(out[1])
            for n in skip:
                grads.setdefault(n, np.zeros(np.shape(arrays[n])))
            out = (out[0], grads, out[2])
        return out
    filled.__name__ = filled.__qualname__ = getattr(fn, "__qualname__", "impl")
    filled.__module__ = getattr(fn, "__module__", "?")
    return filled


def _explain(fn, params, seen, results, config, options, skip=()):
    """Attribute each failing array to time steps, test candidate causes against the
    numbers, then diagnose the whole pattern.

    Runs after every window has been judged, so the extra calls it makes to the
    implementation (suffix windows) cannot change any verdict."""
    tol = tolerance("jax", config.dtype)
    kinds = {}
    for w, (x, y, ref, out) in enumerate(seen, start=1):
        failing = [r for r in results if r.window == w and not r.passed]
        if not failing or any(r.oracle == "contract" for r in failing):
            continue
        names = sorted({r.name for r in failing if r.name != "h_last"})
        steps = disagreeing_steps(fn, params, x, y, ref, out.grads, names, options,
                                  config.dtype, tol)
        start = config.windows[w - 1][0]
        for r in failing:
            if steps.get(r.name) is not None:
                r.steps = [start + t for t in steps[r.name]]
            if r.name in ref.grads:
                kinds[(w, r.name)] = mismatch_kind(r.name, out.grads[r.name], ref.grads[r.name],
                                                   ref.per_step.get(r.name), tol)
    consistent = None
    if any(r.name == "loss" and not r.passed for r in results) and not skip:
        x, y, ref, out = seen[0]
        consistent = self_consistent(fn, params, x, y, ref.states[0].astype(config.dtype),
                                     out, options, config)
    evidence = _evidence(params, seen, results, config, options, tol, skip)
    return diagnose(results, config.windows, config.to_dict(), kinds, consistent,
                    evidence=evidence)


def _evidence(params, seen, results, config, options, tol, skip=()):
    """What candidates.py finds in the first window that disagrees: float32 rounding in a
    float64 check, clipping, buffers that keep the last window's sums, and which candidate
    mistakes reproduce the gradients. A first-step candidate moves the arrays' steps to
    each window's first step (attribution by suffix windows cannot see it)."""
    from .candidates import CANDIDATES, clipped_at, float32_level, reproducing
    judged = [r for r in results if not r.passed and r.oracle != "contract"]
    if not judged:
        return {}
    w = min(r.window for r in judged)
    x, y, ref, out = seen[w - 1]
    if out.grads is None or len(out.grads) < len(ref.grads):
        return {}
    evidence = {}
    computed = {n: g for n, g in out.grads.items() if n not in skip}    # skipped: zeros
    got = dict(computed, loss=np.float64(out.loss), h_last=out.h_last)
    want = dict(ref.grads, loss=np.float64(ref.loss), h_last=ref.h_last)
    if config.dtype == "float64" and float32_level(
            {n: got[n] for n in want if got.get(n) is not None}, want,
            tolerance("jax", "float32")):
        evidence["float32"] = max(r.max_rel_err or 0.0 for r in judged)
        return evidence
    bad = sorted({r.name for r in judged if r.window == w and r.name in ref.grads})
    clipped = {n: clipped_at(out.grads[n], ref.grads[n], tol) for n in bad}
    if bad and all(c is not None for c in clipped.values()):
        evidence["clipped"] = clipped
        return evidence
    if w > 1:
        _, _, ref_before, out_before = seen[w - 2]
        if out_before.grads is not None:
            evidence["carried_sums"] = all(
                compare(out.grads[n], ref.grads[n] + out_before.grads[n], tol).passed
                for n in bad)
        return evidence
    if not bad:
        return evidence
    found = reproducing(params, x, y, ref.states[0], computed, options, tol)
    evidence["candidates"] = found
    if len(found) == 1 and CANDIDATES[found[0]][1]:
        evidence["first_step"] = config.windows[w - 1][0] + 1
        for r in judged:
            if r.name in bad and r.steps:
                start = config.windows[r.window - 1][0]
                r.steps = [start + 1]
    return evidence


# Directional finite difference of the implementation's own loss (diagnosis only, never
# a verdict): step 1e-6 in float64 keeps truncation ~1e-12 and rounding ~1e-10 of the
# loss; float32 needs 1e-2 (rounding ~1e-7 / 1e-2 ~ 1e-5), truncation ~1e-4 relative.
_SELF_STEP = {"float64": 1e-6, "float32": 1e-2}
# Agreement this close means the gradient is the derivative of the impl's own loss.
_SELF_RTOL = {"float64": 1e-5, "float32": 1e-2}


def self_consistent(fn, params, x, y, h0, out, options, config):
    """True when the gradients match the implementation's own loss along a random
    direction of every array at once (2 extra calls); None when it cannot tell."""
    if out.grads is None or len(out.grads) < len(GRAD_NAMES):
        return None
    rng = np.random.default_rng(config.seed + 1)
    arrays = dict(params, x=x, h0=h0)
    d = {n: rng.standard_normal(np.shape(arrays[n])) for n in GRAD_NAMES}
    e = _SELF_STEP[config.dtype]
    values = []
    for sign in (1.0, -1.0):
        moved = {n: (arrays[n] + sign * e * d[n]).astype(config.dtype) for n in GRAD_NAMES}
        got = call_impl(fn, {n: moved[n] for n in params}, moved["x"], y, moved["h0"], options)
        if got.loss is None or got.problems:
            return None
        values.append(got.loss)
    fd = (values[0] - values[1]) / (2 * e)
    inner = sum(float(np.sum(out.grads[n] * d[n])) for n in GRAD_NAMES)
    return abs(fd - inner) <= _SELF_RTOL[config.dtype] * max(abs(inner), abs(fd), 1e-300)
