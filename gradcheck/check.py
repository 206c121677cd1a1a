"""One check, end to end: config -> data -> implementation and oracles -> comparison -> report."""
import time

import numpy as np

from ._reference import reference
from .attribution import disagreeing_steps
from .config import make_config
from .data import make_data
from .diagnose import diagnose, mismatch_kind
from .errors import UsageError
from .judge import judge_window, own_rounding
from .model import (DEFAULT_ACTIVATIONS, DEFAULT_DTYPE, DEFAULT_INTERVAL, DEFAULT_LOSS,
                    DEFAULT_REDUCTION, DEFAULT_SIZES, GRAD_NAMES)
from .oracles import ORACLES, PROJECTIONS, Window
from .report import Report
from .tolerances import tolerance
from .untrusted import call_impl

__all__ = ["check"]


# Up to this many elements per sequence, `full` mode checks every element by finite
# differences (the cost grows with the count; the benchmark prints it); beyond it,
# `projections` keeps the cost flat.
FULL_MODE_MAX_ELEMENTS = 50_000


def _choose_mode(config):
    if config.mode is not None:
        return config.mode, "chosen with --mode"
    n = config.n_elements
    if n <= FULL_MODE_MAX_ELEMENTS:
        return "full", f"{n} elements <= {FULL_MODE_MAX_ELEMENTS}: every one is checked"
    return "projections", (f"{n} elements > {FULL_MODE_MAX_ELEMENTS}: {PROJECTIONS} random "
                           f"directions per array by finite differences; every element vs JAX")


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
        expected, details = [], {}
        for oracle in ORACLES:
            t = time.perf_counter()
            exp, details[oracle.name] = oracle.expect(window)
            timings[oracle.name] += time.perf_counter() - t
            expected.extend(exp)
        ref = details["jax"]
        if impl is None and not out.problems:            # the reference: its output is at hand
            own = own_rounding((out.loss, out.grads, out.h_last), ref)
        else:
            own = own_rounding(reference.loss_and_grads(data.params, window.x, window.y, h0,
                                                        **options), ref)
        results.extend(judge_window(w, out, expected, own, config.dtype))
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
