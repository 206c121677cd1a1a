"""Each test's data and oracle expectations, computed once and shared by every submission.

``check`` starts each window from the state the implementation itself carried out of
the previous one, so its oracles depend on the implementation. For grading, every
window starts from the ORACLE's trajectory instead: window 1 from the random non-zero
h0 (and a cell's further states: an LSTM's c0), window w > 1 from the JAX model's h_last
(and c_last) of window w - 1 (cast to the test's dtype).
So the inputs of every window, the JAX and finite-difference expectations and the
reference's own rounding in the dtype are the same for all submissions, and a
submission costs only its own calls and the comparisons. A submission is still one
instance called on the windows in order, so state it wrongly keeps between windows
(an accumulator not reset, a stale h0) still shows.
"""
import time
from typing import NamedTuple

from .._reference import reference
from ..calibration import rounding_of_dtype
from ..check import cell_reference, choose_mode
from ..config import make_config
from ..data import make_data
from ..oracles import ORACLES, Window

__all__ = ["Prepared", "PreparedWindow", "prepare", "reference_seconds"]

_TIMED_RUNS = 3             # the reference's time per window: the least of this many runs


class PreparedWindow(NamedTuple):
    """One window: its inputs (the test's dtype; h0 from the oracle's trajectory), the
    oracles' Expected values, the JAX result (states, per-step gradients) and the
    rounding of the dtype per array (calibration.rounding_of_dtype: {} in float64)."""
    window: Window
    expected: list
    ref: object
    own: dict


class Prepared(NamedTuple):
    test: object            # battery.Test
    config: object          # config.Config
    mode: str
    params: dict
    windows: list           # [PreparedWindow]
    reference_seconds: float = 0.0  # the reference's CPU time for its slowest window, here


def reference_seconds(params, window):
    """The CPU time (this process's) the project's reference takes for ``window`` on this
    machine: the least of a few runs, so the load of the moment counts as little as it
    can."""
    best = float("inf")
    for _ in range(_TIMED_RUNS):
        start = time.process_time()
        reference.loss_and_grads(params, window.x, window.y, window.h0, **window.options)
        best = min(best, time.process_time() - start)
    return best


def prepare(test, seed):
    """The Prepared test; ``seed`` is used unless the test fixes its own."""
    config = make_config(**dict(test.options, seed=test.options.get("seed", seed)))
    data = make_data(config)
    mode, _ = choose_mode(config)
    options, model = config.model_options, config.model
    h0, states, windows, slowest = data.h0, data.states, [], 0.0
    for w, (start, stop) in enumerate(config.windows, start=1):
        window = Window(w, data.params, data.x[start:stop], data.y[start:stop], h0, options,
                        mode, config.seed, model, states)
        expected, details = [], {}
        for oracle in ORACLES:
            exp, details[oracle.name] = oracle.expect(window)
            expected.extend(exp)
        ref = details["jax"]
        own = rounding_of_dtype(config.dtype, data.params, window.x, window.y, h0, options,
                                None, states, cell_reference(model), model.state_out_names)
        windows.append(PreparedWindow(window, expected, ref, own))
        if getattr(config, "cell", "rnn") == "rnn":     # (a cell's tests: the floor alone)
            slowest = max(slowest, reference_seconds(data.params, window))
        h0 = ref.h_last.astype(config.dtype)          # the oracle's trajectory
        states = {i: getattr(ref, o).astype(config.dtype) for i, o in model.extra_states}
    return Prepared(test, config, mode, data.params, windows, slowest)
