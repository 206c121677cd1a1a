"""What the pictures draw, per time step, measured after a check's verdicts are made.

``trace_check`` (run by ``gradcheck.check(..., trace=True)``) returns plain data
(lists of floats, None where a value is not finite or not known), kept in
``report.trace`` and in the JSON document:

- ``errors``: per array and time step of the sequence, the error of that step's
  contribution against the tolerance (max over elements of |impl - JAX| / allowed;
  > 1 fails). Per-step contributions: for the implementation, from suffix windows
  (the window of steps t..T started from the true state h_{t-1} returns the sum of
  the contributions of steps t..T, so consecutive differences give step t's, see
  attribution.py); for JAX, from its per-step copies of the weights. x is per step
  already; the loss row is each step's loss; the ``dh`` row is the state's derivative
  entering step t (the suffix window's grads["h0"], against JAX's suffix window), and a
  cell with further states has a row for each (the LSTM's ``dc``, from grads["c0"]).
  The rows are the check's model's (``rows_of``): a cell's own arrays (Wx, Wh, b, ...).
- ``dh_norm``: ||dL/dh_{t-1}|| (Frobenius, over [B, R]) per step, the implementation's
  and JAX's: the accumulator ``dh_next`` as BPTT hands it back to step t-1.
- ``vcurve``: for the worst element the check compared with finite differences, the
  error of a central difference against JAX as the step varies: the engine's difference
  form (oracle_fd, the form the check uses; "base step" h, an element moving h /
  max(1, reach)) and, for contrast, the textbook form (L(v + h) - L(v - h)) / 2h on the
  float64 loss (JAX's forward), whose rounding error eps |L| / h makes the usual V.

The extra calls (T suffix windows of the implementation per window; JAX suffix windows;
two dozen finite differences) are made only when a picture is asked for.
"""
import numpy as np

from .attribution import step_contributions
from .compare import compare
from .model import LOSS_NAME, STATE_NAME, describe, side
from .tolerances import FD_STEP, Tolerance, tolerance

__all__ = ["trace_check", "ROWS", "DH_ROW", "VCURVE_STEPS", "rows_of", "state_row"]


def state_row(name):
    """The row of the derivative of incoming state ``name`` entering each step: h0 -> dh."""
    return "d" + name[:-1]


def rows_of(model):
    """The heatmap's rows for a model.Model: the loss, every gradient but the incoming
    states', then each state's derivative entering the step (dh, and dc for the LSTM)."""
    return ((LOSS_NAME,) + tuple(n for n in model.grad_names if n not in model.state_names)
            + tuple(state_row(n) for n in model.state_names))


DH_ROW = state_row(STATE_NAME)         # the state's derivative entering each step
ROWS = rows_of(describe())             # the RNN's rows
# Base steps of the V curve: wide enough to show truncation (large h) and rounding
# (small h) on both sides of the check's FD_STEP, and of float64's range.
VCURVE_STEPS = tuple(float(h) for h in np.logspace(-14, -1, 27))


def _finite(v):
    v = float(v)
    return v if np.isfinite(v) else None


def _ratio(got, want, rtol, atol_rel, floor, scale):
    """max |got - want| / allowed over the elements (compare's criterion at ``scale``);
    None where the implementation returned no value, or a non-finite one."""
    if got is None:                      # the implementation returned no such value
        return None
    return compare(got, want, Tolerance(rtol, atol_rel, floor), scale=scale).ratio


def _tol_of(results, window, name, dtype):
    """(rtol, atol_rel) the check used for ``name`` against JAX in ``window``."""
    base = tolerance("jax", dtype)
    for r in results:
        if r.window == window and r.name == name and r.oracle == "jax" and r.rtol is not None:
            return r.rtol, r.atol_rel, base.floor
    return base.rtol, base.atol_rel, base.floor


def _extra(ref, t):
    """The cell's further states entering step t of JAX's window ({} for the RNN)."""
    return {n: s[t] for n, s in getattr(ref, "extra_states", {}).items()}


def _jax(config, params, x, y, h0, states, options):
    """JAX's window of the check's cell from these states (float64)."""
    return side(config.cell, "jax").jax_window(params, x, y, h0, *states.values(), **options,
                                                **config.model.options)


def _suffixes(runner, params, x, y, ref, out, options, config):
    """The implementation's outcome on each suffix window t..T (t = 0 is the window itself),
    each from JAX's states entering step t; and JAX's own suffix grads of every incoming
    state. Lists of length T. ``runner.call(params, x, y, h0, options, what, states)`` runs
    the implementation (check's)."""
    T = x.shape[0]
    names = config.model.state_names
    impl, oracle = [out], [{n: ref.grads[n] for n in names}]
    for t in range(1, T):
        h_start, extra = ref.states[t], _extra(ref, t)          # [B, R], float64
        impl.append(runner.call(params, x[t:], y[t:], h_start.astype(config.dtype), options,
                                f"the pictures' call {t + 1} of {T}",
                                {n: s.astype(config.dtype) for n, s in extra.items()}))
        grads = _jax(config, params, x[t:], y[t:], h_start, extra, options).grads
        oracle.append({n: grads[n] for n in names})
    return impl, oracle


def _per_step(outcomes, name):
    """[T, *shape] per-step contributions of ``name`` from suffix outcomes, or None."""
    if any(not o.grads or name not in o.grads for o in outcomes):
        return None
    return step_contributions([o.grads[name] for o in outcomes])


def _window_rows(fn, params, seen_w, w, results, config, options):
    x, y, ref, out = seen_w
    T = x.shape[0]
    impl, oracle_states = _suffixes(fn, params, x, y, ref, out, options, config)
    rows = {}
    of_state = {state_row(n): n for n in config.model.state_names}
    for name in rows_of(config.model):
        if name == LOSS_NAME:
            ok = all(o.loss is not None for o in impl)
            got = step_contributions([o.loss for o in impl]) if ok else None
            want = ref.step_losses
        elif name in of_state:
            state = of_state[name]
            ok = all(o.grads and state in o.grads for o in impl)
            got = np.stack([o.grads[state] for o in impl]) if ok else None
            want = np.stack([g[state] for g in oracle_states])
        elif name == "x":
            got = out.grads["x"] if out.grads and "x" in out.grads else None
            want = ref.grads["x"]
        else:
            got, want = _per_step(impl, name), ref.per_step[name]
        rtol, atol_rel, floor = _tol_of(results, w, of_state.get(name, name), config.dtype)
        scale = float(np.max(np.abs(want), initial=0.0))
        rows[name] = [_ratio(None if got is None else got[t], want[t], rtol, atol_rel, floor,
                             scale) for t in range(T)]
    dh_impl = [_finite(np.linalg.norm(o.grads[STATE_NAME])) if o.grads and STATE_NAME in o.grads
               else None for o in impl]
    dh_oracle = [_finite(np.linalg.norm(g[STATE_NAME])) for g in oracle_states]
    return rows, dh_impl, dh_oracle


def _worst(results, grad_names):
    """The Result whose worst element the V curve follows: the largest error ratio against
    finite differences element by element; against JAX when no such result (projections)."""
    for oracle in ("fd", "jax"):
        judged = [r for r in results if r.oracle == oracle and r.name in grad_names
                  and r.worst_index is not None and r.ratio is not None]
        if judged:
            return max(judged, key=lambda r: r.ratio)
    return None


def _vcurve(params, seen, results, config, options):
    model = config.model
    fd_directional = side(config.cell, "fd").fd_directional
    r = _worst(results, model.grad_names)
    if r is None:
        return None
    x, y, ref, out = seen[r.window - 1]
    h0, extra = ref.states[0], _extra(ref, 0)
    arrays = {**{n: np.asarray(params[n], np.float64) for n in model.param_names},
              "x": np.asarray(x, np.float64), STATE_NAME: h0, **extra}
    idx = tuple(r.worst_index)
    onehot = np.zeros_like(arrays[r.name])
    onehot[idx] = 1.0
    want = float(ref.grads[r.name][idx])
    fd_tol = tolerance("fd", config.dtype)
    scale = float(np.max(np.abs(ref.grads[r.name])))
    engine, plain = [], []
    for h in VCURVE_STEPS:
        got = fd_directional(params, x, y, h0, *extra.values(), {r.name: onehot[None]},
                             **options, **model.options, base_step=h)[r.name][0]
        engine.append(_finite(abs(got - want)))
        losses = []
        for sign in (1.0, -1.0):
            moved = dict(arrays)
            moved[r.name] = arrays[r.name] + sign * h * onehot
            losses.append(_jax(config, {n: moved[n] for n in model.param_names}, moved["x"], y,
                               moved[STATE_NAME], {n: moved[n] for n in extra},
                               options).loss)
        plain.append(_finite(abs((losses[0] - losses[1]) / (2 * h) - want)))
    impl_value = None
    if out.grads and r.name in out.grads:
        impl_value = float(out.grads[r.name][idx])
    return {
        "name": r.name, "window": r.window, "index": list(idx), "oracle_value": want,
        "impl_error": None if impl_value is None else _finite(abs(impl_value - want)),
        "allowed": fd_tol.atol_rel * scale + fd_tol.rtol * abs(want) + fd_tol.floor,
        "steps": list(VCURVE_STEPS), "check_step": FD_STEP,
        "engine": engine, "plain": plain,
    }


def trace_check(fn, params, seen, results, config):
    """The per-step data of the pictures for a finished check (see the module's doc).
    ``fn``: how check() runs the implementation (an object with ``call``).

    ``seen``: per window checked, (x, y, JaxResult, Outcome) as check() keeps them."""
    options = config.model_options
    rows = rows_of(config.model)
    errors = {name: [] for name in rows}
    dh_impl, dh_oracle, steps = [], [], []
    for w, seen_w in enumerate(seen, start=1):
        start = config.windows[w - 1][0]
        window_rows, di, do = _window_rows(fn, params, seen_w, w, results, config, options)
        for name in rows:
            errors[name] += window_rows[name]
        dh_impl += di
        dh_oracle += do
        steps += [start + t + 1 for t in range(len(di))]
    return {
        "steps": steps,
        "windows": [[a + 1, b] for a, b in config.windows[:len(seen)]],
        "rows": list(rows),
        "state_rows": [state_row(n) for n in config.model.state_names],
        "errors": errors,
        "dh_norm": {"impl": dh_impl, "oracle": dh_oracle},
        "vcurve": _vcurve(params, seen, results, config, options),
    }
