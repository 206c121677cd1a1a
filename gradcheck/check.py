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
    return f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', repr(impl))}"


def check(impl=None, *, interval=DEFAULT_INTERVAL, seq_len=None, batch=DEFAULT_SIZES["batch"],
          input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
          state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
          loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
          dtype=DEFAULT_DTYPE, seed=0, mode=None, progress=None):
    """Check an implementation of the loss_and_grads contract against JAX and finite differences.

    ``impl`` defaults to the project's reference. Every window of the sequence is
    checked, each with the state the implementation itself carried in; the first
    window's incoming state is random and non-zero. Returns a Report; raises
    UsageError (a ValueError) naming a bad option. ``progress``, if given, is called
    as ``progress(windows_done, windows_total)`` after each window.
    """
    if impl is not None and not callable(impl):
        raise UsageError("impl", impl, "expected a callable with the loss_and_grads contract")
    config = make_config(interval=interval, seq_len=seq_len, batch=batch,
                         input_size=input_size, hidden_size=hidden_size,
                         state_size=state_size, output_size=output_size, loss=loss,
                         activations=activations, reduction=reduction, dtype=dtype,
                         seed=seed, mode=mode)
    fn = reference.loss_and_grads if impl is None else impl
    mode, reason = _choose_mode(config)
    data = make_data(config)
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
            if got.get(e.name) is None:
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
    diagnosis = _explain(fn, data.params, seen, results, config, options)
    timings["total"] = time.perf_counter() - started
    return Report(config=config.to_dict(), impl=_impl_name(impl), mode=mode,
                  mode_reason=reason, windows=config.windows, results=results,
                  diagnosis=diagnosis, timings={k: round(v, 6) for k, v in timings.items()})


def _explain(fn, params, seen, results, config, options):
    """Attribute each failing array to time steps, then diagnose the whole pattern.

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
    if any(r.name == "loss" and not r.passed for r in results):
        x, y, ref, out = seen[0]
        consistent = self_consistent(fn, params, x, y, ref.states[0].astype(config.dtype),
                                     out, options, config)
    return diagnose(results, config.windows, config.to_dict(), kinds, consistent)


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
