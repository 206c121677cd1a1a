"""One check, end to end: config -> data -> implementation and oracles -> comparison -> report."""
import contextlib
import os
import time

import numpy as np

from ._reference import reference
from .calibration import rounding_of_dtype
from .config import make_config
from .data import make_data
from .diagnose import explain
from .errors import UsageError
from .judge import judge_window
from .kinds import Diagnosis
from .model import (DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_DTYPE, DEFAULT_INTERVAL,
                    DEFAULT_LOSS,
                    DEFAULT_REDUCTION, DEFAULT_SIZES, GRAD_NAMES)
from .oracles import ORACLES, PROJECTIONS, Window
from .report import Report
from .untrusted import call_impl, fill_skipped

__all__ = ["check"]


# Up to this many elements per sequence, `full` mode checks every element by finite
# differences (the cost grows with the count; the benchmark prints it); beyond it,
# `projections` keeps the cost flat.
FULL_MODE_MAX_ELEMENTS = 50_000


def choose_mode(config):
    """(mode, why): the one asked for, else full up to FULL_MODE_MAX_ELEMENTS, else projections."""
    if config.mode is not None:
        return config.mode, "chosen with --mode"
    n = config.n_elements
    if n <= FULL_MODE_MAX_ELEMENTS:
        return "full", f"{n} elements <= {FULL_MODE_MAX_ELEMENTS}: every one is checked"
    return "projections", (f"{n} elements > {FULL_MODE_MAX_ELEMENTS}: {PROJECTIONS} random "
                           f"directions per array by finite differences; every element vs JAX")


def cell_reference(model):
    """The reference's loss_and_grads for the model's cell (reference/ has a module per cell)."""
    if model is None or model.cell.name == DEFAULT_CELL:
        return reference.loss_and_grads
    from ._reference import cell_module
    return cell_module(model.cell.sides["reference"]).loss_and_grads


def _impl_name(impl):
    if impl is None:
        return "reference"
    if isinstance(impl, str):
        return impl
    if isinstance(impl, dict):
        return str(impl.get("spec"))
    return f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', repr(impl))}"


class _InProcess:
    """The implementation called in this process (trusted modes): no limits apply."""
    isolated = False

    def __init__(self, fn, model=None):
        self.fn, self.model = fn, model

    def call(self, params, x, y, h0, options, what="", states=None):
        return call_impl(self.fn, params, x, y, h0, options, states, self.model)

    def submit(self, *args):
        self._args = args

    def result(self):
        return self.call(*self._args)

    def close(self):
        pass

    def output(self):
        return {}


def _number(option, value, allowed="expected a number of seconds > 0"):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(option, value, allowed) from None
    if not (v > 0 and np.isfinite(v)):
        raise UsageError(option, value, allowed)
    return v


def cell_request(model):
    """The worker request's keys that give it ``model``'s contract ({} for the RNN)."""
    if model is None or model.cell.name == DEFAULT_CELL:
        return {}
    return {"cell": model.cell.name,
            "cell_options": sorted(n for n, on in model.options.items() if on)}


def _runner(impl, in_process, timeout, memory_limit, time_budget, model=None,
            require_isolation=False):
    """How the implementation is run: in this process (the reference, a callable, or
    ``in_process``), else in a worker process (isolation.Worker). ``model``: the
    check's model.Model (None: the RNN)."""
    if impl is None:
        return _InProcess(cell_reference(model), model)
    if callable(impl) and not isinstance(impl, (str, dict)):
        return _InProcess(impl, model)
    if not isinstance(impl, (str, dict)):
        raise UsageError("impl", impl, "expected a callable with the loss_and_grads contract, "
                                       "or 'FILE.py:FUNC' / 'MODULE:FUNC'")
    request = {"spec": impl} if isinstance(impl, str) else dict(impl)
    request.update(cell_request(model))
    if request.get("adapter") is None:           # an adapter names a module, not a function
        from .untrusted import check_spec
        check_spec(request.get("spec"))
    if in_process:
        from .untrusted import build
        return _InProcess(build(request), model)
    from .isolation import DEFAULT_MEMORY, Worker, parse_size
    timeout = _number("timeout", timeout)
    budget = None if time_budget is None else _number("time_budget", time_budget)
    memory = DEFAULT_MEMORY if memory_limit is None else (
        memory_limit if isinstance(memory_limit, int) and not isinstance(memory_limit, bool)
        else parse_size(memory_limit))
    return Worker(request, timeout=timeout, memory_limit=memory, budget=budget,
                  require_isolation=require_isolation)


def _with_path(impl, path):
    """The request for ``impl`` with the package root ``path`` (UsageError unless it is a
    folder and ``impl`` is named by a string: a callable is already loaded)."""
    if not isinstance(path, str) or not os.path.isdir(path):
        raise UsageError("path", path, "expected a folder: the root of the code's own package")
    if not isinstance(impl, (str, dict)):
        raise UsageError("path", path, "applies to an implementation named by a string "
                                       "(FILE.py[:FUNC], MODULE:FUNC or a module's file)")
    return dict({"spec": impl} if isinstance(impl, str) else impl, path=os.path.abspath(path))


class _Default:
    """An option left at its default: the model's, or what an adapter's code computes."""
    def __repr__(self):
        return "<default>"


_DEFAULT = _Default()


def check(impl=None, *, interval=DEFAULT_INTERVAL, seq_len=None, batch=DEFAULT_SIZES["batch"],
          input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
          state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
          loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
          dtype=DEFAULT_DTYPE, seed=0, mode=None, progress=None, trace=False,
          in_process=False, timeout=None, memory_limit=None, time_budget=None, adapter=None,
          skip=(), adapter_defaults=True, require_isolation=False, cell=DEFAULT_CELL,
          path=None, **cell_options):
    """Check an implementation of the loss_and_grads contract against JAX and finite differences.

    ``impl`` defaults to the project's reference. A callable runs in this process
    (trusted: it can do anything this process can). ``"FILE.py:FUNC"`` or
    ``"MODULE:FUNC"`` (or a request dict ``{"spec": ..., ...}`` for untrusted.build)
    runs in a worker process of its own (gradcheck.isolation) with ``timeout``
    seconds per call (default isolation.DEFAULT_TIMEOUT), ``time_budget`` seconds in
    all (default 3x timeout) and ``memory_limit`` (bytes, or "512M", "4G"; default
    isolation.DEFAULT_MEMORY); ``in_process=True`` loads and calls it here instead.
    ``require_isolation=True``: UsageError, before its code is loaded, where the worker
    would run as this user without namespaces (gradcheck.sandbox; see README, Isolation).
    Every window of the sequence is checked, each with the state the implementation
    itself carried in; the first window's incoming state is random and non-zero.
    Returns a Report; raises UsageError (a ValueError) naming a bad option.
    ``progress``, if given, is called as ``progress(windows_done, windows_total)``
    after each window. ``trace=True`` also records, for the pictures (gradcheck.trace),
    each step's error and state derivative, at the cost of extra calls to the
    implementation after every verdict is made (``report.trace``).

    ``adapter`` (a style name or a declaration, see gradcheck.adapters) checks code
    written in another shape: ``impl`` is then its module (``FILE.py`` or ``MODULE``,
    isolated like a spec; or a module object, in this process).
    ``skip``: gradient names the code does not compute (reported as skipped, never compared).
    With an adapter, options left at the model's defaults take the adapter's values
    (``adapter_defaults=False``: every option as given).
    ``cell``: the middle layer, "rnn" (default) or a cell of model.cell_names(), with
    its own options as keywords (``reset_after=True`` for the GRU).
    ``path``: a package's root folder, first on the path of ``impl`` (named by a string)
    while it loads: code that imports its own package (``from common.layers import ...``);
    a worker gets a private copy of its ``.py`` files. This process's path is unchanged.
    """
    decl = None
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
        decl = adapters.declaration(adapter, cell)
        # what the declared code computes turns on the cell's options (a reset after)
        cell_options = adapters.declared_options(decl, cell_options)
        if impl is None:
            raise UsageError("impl", impl, "an adapter needs the module of the code to check")
        # a module named by a string runs in a worker, which builds the adapted code there
        impl = ({"spec": impl, "adapter": decl} if isinstance(impl, str)
                else adapters.build(impl, decl))
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
    config = make_config(interval=interval, seq_len=seq_len, batch=batch,
                         input_size=input_size, hidden_size=hidden_size,
                         state_size=state_size, output_size=output_size, loss=loss,
                         activations=activations, reduction=reduction, dtype=dtype,
                         seed=seed, mode=mode, cell=cell,
                         cell_options=_cell_options(cell_options))
    skip = _skip_names(skip, config.model.grad_names, config.model.extra_states)
    if path is not None:
        impl = _with_path(impl, path)
    from .isolation import DEFAULT_TIMEOUT
    if skip and impl is not None:             # the skipped gradients it may leave out
        impl = (dict({"spec": impl} if isinstance(impl, str) else impl, skip=list(skip))
                if isinstance(impl, (str, dict)) else fill_skipped(impl, skip, config.model))
    lifetime = contextlib.nullcontext()
    if isinstance(impl, (str, dict)) and not in_process:
        from .isolation import fork_server
        lifetime = fork_server()         # one this check starts ends with it
    with lifetime:
        runner = _runner(impl, in_process, DEFAULT_TIMEOUT if timeout is None else timeout,
                         memory_limit, time_budget, config.model, require_isolation)
        try:
            return _check(runner, impl, config, progress, trace, decl, skip)
        finally:
            runner.close()


def _check(runner, impl, config, progress, trace=False, decl=None, skip=()):
    mode, reason = choose_mode(config)
    data = make_data(config)
    model = config.model
    if decl is not None:
        from . import adapters
        params, x = adapters.prepare_data(decl, data.params, data.x)
        data = data._replace(params=params, x=x)
        if decl.get("h0") == "zeros":    # code that starts every window from a zero state
            data = data._replace(h0=np.zeros_like(data.h0))
        if adapters.resets_states(decl):   # ... or a zero cell state (an LSTM's c0)
            data = data._replace(states={n: np.zeros_like(s) for n, s in data.states.items()})
    unsupported = None
    options = config.model_options
    timings = dict.fromkeys(["impl"] + [o.name for o in ORACLES], 0.0)
    results = []
    seen = []                        # per window: what attribution needs afterwards
    h0, states = data.h0, data.states
    started = time.perf_counter()
    for w, (start, stop) in enumerate(config.windows, start=1):
        window = Window(w, data.params, data.x[start:stop], data.y[start:stop], h0, options,
                        mode, config.seed, model, states)
        # sent first: an isolated worker runs it while the oracles run here
        runner.submit(data.params, window.x, window.y, h0, options, f"window {w}", states)
        expected, details = [], {}
        for oracle in ORACLES:
            t = time.perf_counter()
            exp, details[oracle.name] = oracle.expect(window)
            timings[oracle.name] += time.perf_counter() - t
            expected.extend(exp)
        ref = details["jax"]
        t = time.perf_counter()
        out = runner.result()        # (in-process: the call happens here)
        timings["impl"] += time.perf_counter() - t
        declined = [p for p in out.problems if p.name == "exception"
                    and p.message.startswith(f"raised {NotImplementedError.__name__}")]
        if declined:                 # the code declines these options: not a verdict on it
            unsupported = declined[0].message[len("raised "):]
            break
        mine = ((out.loss, out.grads, out.h_last, *out.extra.values())
                if impl is None and not out.problems else None)   # the reference's, at hand
        own = rounding_of_dtype(config.dtype, data.params, window.x, window.y, h0, options,
                                mine, states, cell_reference(model), model.state_out_names)
        results.extend(judge_window(w, out, expected, own, config.dtype, skip))
        seen.append((window.x, window.y, ref, out))
        if progress is not None:
            progress(w, len(config.windows))
        carried = [out.h_last] + [out.extra.get(o) for _, o in model.extra_states]
        if any(s is None or not np.all(np.isfinite(s)) for s in carried):
            break            # no state to carry: later windows cannot be checked
        h0 = out.h_last.astype(config.dtype)
        # a further state the code does not return (skipped) is carried from the oracle's
        states = {i: (ref.outputs[o] if o in skip else out.extra[o]).astype(config.dtype)
                  for i, o in model.extra_states}
        if decl is not None and decl.get("h0") == "zeros":
            h0 = data.h0
        if decl is not None and adapters.resets_states(decl):
            states = data.states
    skipped_calls = []
    finding = (explain(runner, data.params, seen, results, config, options, skipped_calls,
                       skip, decl) if seen else None)
    if unsupported is not None:
        finding = Diagnosis("not_supported",
                            f"Not supported by this implementation: {unsupported}")
    timings["total"] = time.perf_counter() - started
    report = Report(config=config.to_dict(), impl=_impl_name(impl), mode=mode,
                    mode_reason=reason, windows=config.windows, results=results,
                    finding=finding, timings={k: round(v, 6) for k, v in timings.items()},
                    skipped=list(skip), unsupported=unsupported, skipped_calls=skipped_calls)
    if trace and seen:                   # after every verdict: its calls cannot change one
        from .trace import trace_check
        report.trace = trace_check(runner, data.params, seen, results, config)
    runner.close()                   # its output is complete once it has ended
    report.isolation, report.output = _isolation(runner), runner.output()
    return report


def _isolation(runner):
    """What the JSON says about how the implementation ran."""
    if not runner.isolated:
        return {"isolated": False}
    from .isolation import format_size
    from .sandbox import describe
    return {"isolated": True, "timeout": runner.timeout, "time_budget": runner.budget,
            "memory_limit": format_size(runner.memory_limit), "calls": runner.calls,
            "seconds_in_impl": round(runner.spent, 6),
            **describe(runner.mechanism, runner.pid_namespace)}


def _skip_names(skip, grad_names=GRAD_NAMES, extra_states=()):
    """``skip`` as a tuple of gradient names in the model's order, then the further
    states' outgoing names (c_last: code that does not return it); UsageError otherwise."""
    if isinstance(skip, str):
        skip = [s.strip() for s in skip.split(",") if s.strip()]
    names = tuple(grad_names) + tuple(o for _, o in extra_states)
    bad = [s for s in skip if s not in names]
    if bad:
        raise UsageError("skip", ",".join(map(str, bad)),
                         f"expected gradient names among {', '.join(names)}")
    return tuple(n for n in names if n in set(skip))


def _cell_options(given):
    """The names of the cell options given as True; UsageError for a value not a bool,
    TypeError (as for any unexpected keyword) for a name no cell declares."""
    from .model import cell, cell_names
    declared = {o.name for n in cell_names() for o in cell(n).options}
    for name, value in given.items():
        if name not in declared:
            raise TypeError(f"check() got an unexpected keyword argument {name!r}")
        if not isinstance(value, bool):
            raise UsageError(name, value, "expected True or False")
    return tuple(n for n, v in given.items() if v)
