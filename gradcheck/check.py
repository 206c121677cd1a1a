"""One check, end to end: config -> data -> implementation and oracles -> comparison -> report."""
import time

import numpy as np

import reference

from .compare import compare
from .config import make_config
from .data import make_data
from .errors import UsageError
from .oracle_fd import fd_window
from .oracle_jax import jax_window
from .report import Report, Result
from .tolerances import tolerance
from .untrusted import GRAD_NAMES, call_impl

__all__ = ["check"]


def _result(name, oracle, window, comparison, tol):
    c = comparison
    if c.passed:
        message = ""
    elif c.nonfinite:
        message = (f"{c.nonfinite} non-finite value{'s' if c.nonfinite > 1 else ''}, "
                   f"first at {list(c.worst)}")
    else:
        message = (f"worst element {list(c.worst)}: impl {c.impl_value:.10g}, {oracle} "
                   f"{c.oracle_value:.10g}, error {c.max_abs_err:.3g} is {c.ratio:.3g}x "
                   f"the allowed (rtol {tol.rtol:g}, atol {tol.atol_rel:g} of max |{oracle}|)")
    return Result(name=name, oracle=oracle, window=window, passed=c.passed, message=message,
                  checked=c.checked, excluded=c.excluded, max_abs_err=c.max_abs_err,
                  max_rel_err=c.max_rel_err, ratio=c.ratio, rtol=tol.rtol,
                  atol_rel=tol.atol_rel,
                  worst_index=None if c.worst is None else list(c.worst),
                  impl_value=c.impl_value, oracle_value=c.oracle_value, nonfinite=c.nonfinite)


def _choose_mode(config):
    if config.mode is not None:
        return config.mode, "chosen with --mode"
    return "full", f"{config.n_elements} elements: every one is checked"


def _impl_name(impl):
    if impl is None:
        return "reference"
    return f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', repr(impl))}"


def check(impl=None, *, interval=3, seq_len=None, batch=128, input_size=10, hidden_size=20,
          state_size=5, output_size=100, loss="l2", activations=("tanh", "tanh", "identity"),
          reduction="mean", dtype="float64", seed=0, mode=None):
    """Check an implementation of the loss_and_grads contract against JAX and finite differences.

    ``impl`` defaults to the project's reference. Every window of the sequence is
    checked, each with the state the implementation itself carried in; the first
    window's incoming state is random and non-zero. Returns a Report; raises
    UsageError (a ValueError) naming a bad option.
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
    options = dict(loss=config.loss, activations=config.activations,
                   reduction=config.reduction)
    timings = {"impl": 0.0, "jax": 0.0, "fd": 0.0}
    results = []
    h0 = data.h0
    started = time.perf_counter()
    for w, (start, stop) in enumerate(config.windows, start=1):
        x, y = data.x[start:stop], data.y[start:stop]
        t = time.perf_counter()
        out = call_impl(fn, data.params, x, y, h0, options)
        timings["impl"] += time.perf_counter() - t
        for p in out.problems:
            results.append(Result(name=p.name, oracle="contract", window=w, passed=False,
                                  message=p.message))
        t = time.perf_counter()
        ref = jax_window(data.params, x, y, h0, **options)
        timings["jax"] += time.perf_counter() - t
        t = time.perf_counter()
        fd = fd_window(data.params, x, y, h0, **options)
        timings["fd"] += time.perf_counter() - t
        tol_jax = tolerance("jax", config.dtype)
        tol_fd = tolerance("fd", config.dtype)
        if out.loss is not None:
            results.append(_result("loss", "jax", w, compare(out.loss, ref.loss, tol_jax),
                                   tol_jax))
        if out.h_last is not None:
            results.append(_result("h_last", "jax", w,
                                   compare(out.h_last, ref.h_last, tol_jax), tol_jax))
        for name in GRAD_NAMES:
            if out.grads is None or name not in out.grads:
                continue
            g = out.grads[name]
            results.append(_result(name, "jax", w, compare(g, ref.grads[name], tol_jax),
                                   tol_jax))
            results.append(_result(name, "fd", w,
                                   compare(g, fd.grads[name], tol_fd, fd.kinks[name]), tol_fd))
        if out.h_last is None or not np.all(np.isfinite(out.h_last)):
            break            # no state to carry: later windows cannot be checked
        h0 = out.h_last.astype(config.dtype)
    timings["total"] = time.perf_counter() - started
    return Report(config=config.to_dict(), impl=_impl_name(impl), mode=mode,
                  mode_reason=reason, windows=config.windows, results=results,
                  timings={k: round(v, 6) for k, v in timings.items()})
