"""The oracles a check runs, as a list: each turns one window into expected values.

An oracle is an object with a ``name`` (its timing key) and ``expect(window)``, which
returns ``(expectations, detail)``: the values it expects of the implementation, and
whatever else it computed (the JAX model's states and per-step gradients serve the
calibration and the attribution of failures to time steps). ``check`` runs every oracle
in ``ORACLES`` and judges every expectation the same way; adding an oracle is adding an
object to the list, not a branch to ``check``.
"""
from typing import Callable, NamedTuple, Optional

import numpy as np

from .model import DEFAULT_CELL, GRAD_NAMES, OUTPUT_NAMES, side

__all__ = ["Window", "Expected", "JaxOracle", "FiniteDifferences", "ORACLES", "PROJECTIONS"]

# Random directions per array in `projections` mode. Two already fail a 1e-6 relative
# error in any one array (tests/test_modes.py); each more adds its cost to every window.
PROJECTIONS = 2


class Window(NamedTuple):
    """One window of a check: its 1-based index, inputs (the implementation's dtype) and
    options. Shapes: params as in model.ARRAYS; x [T, B, I]; y per loss; h0 [B, R]."""
    index: int
    params: dict
    x: np.ndarray
    y: np.ndarray
    h0: np.ndarray
    options: dict          # loss, activations, reduction
    mode: str              # "full" or "projections"
    seed: int
    model: object = None   # the check's model.Model (None: the RNN)
    states: dict = {}      # the cell's further incoming states by name (an LSTM's c0 [B, R])

    @property
    def cell(self):
        """The name of the window's cell; its oracles are that cell's modules."""
        return DEFAULT_CELL if self.model is None else self.model.cell.name

    def cell_args(self):
        """(positional, keyword) arguments of a cell's oracle after (params, x, y, h0):
        the further states, then the options and the cell's own options."""
        return tuple(self.states.values()), dict(self.options, **self.model.options)


class Expected(NamedTuple):
    """What an oracle expects of one output: ``name`` (loss, h_last or a gradient),
    ``oracle`` (the label results carry), ``table`` (the tolerance table it is judged
    with), ``want``, a mask of elements to leave out (``exclude``) and ``project``, a
    function of the implementation's array giving what is compared with ``want``."""
    name: str
    oracle: str
    table: str
    want: object
    exclude: Optional[np.ndarray] = None
    project: Optional[Callable] = None


class JaxOracle:
    """JAX autodiff of a model written from the equations: the forward and every gradient."""
    name = "jax"

    def expect(self, w):
        if w.cell != DEFAULT_CELL:
            states, options = w.cell_args()
            ref = side(w.cell, "jax").jax_window(w.params, w.x, w.y, w.h0, *states, **options)
            want = dict(ref.grads, **ref.outputs)
            names = w.model.output_names + w.model.grad_names
            return [Expected(n, "jax", "jax", want[n]) for n in names], ref
        from .oracle_jax import jax_window        # JAX is imported when a check first runs
        ref = jax_window(w.params, w.x, w.y, w.h0, **w.options)
        want = dict(ref.grads, loss=ref.loss, h_last=ref.h_last)
        return [Expected(n, "jax", "jax", want[n]) for n in OUTPUT_NAMES + GRAD_NAMES], ref


class FiniteDifferences:
    """Central finite differences of the loss: every element (``full``), or PROJECTIONS
    random directions per array compared with the gradient's inner products."""
    name = "fd"

    def expect(self, w):
        if w.cell != DEFAULT_CELL:
            states, options = w.cell_args()
            names = w.model.grad_names
        else:
            states, options, names = (), w.options, GRAD_NAMES
        engine = side(w.cell, "fd")           # the cell's engine: fd_window, fd_directional
        if w.mode == "full":
            fd = engine.fd_window(w.params, w.x, w.y, w.h0, *states, **options)
            return [Expected(n, "fd", "fd", fd.grads[n], fd.kinks[n]) for n in names], fd
        arrays = dict(w.params, x=w.x, h0=w.h0, **w.states)
        return self._projected(w, names, arrays, lambda dirs: engine.fd_directional(
            w.params, w.x, w.y, w.h0, *states, dirs, **options))

    def _projected(self, w, names, arrays, directional):
        rng = np.random.default_rng([w.seed, w.index])
        # Gaussian entries: of both signs, unlike a direction drawn from [0, 1)
        dirs = {n: rng.standard_normal((PROJECTIONS,) + np.shape(arrays[n])) for n in names}
        fd = directional(dirs)
        expected = []
        for n in names:
            d = dirs[n].reshape(PROJECTIONS, -1)
            expected.append(Expected(n, "fd-projections", "fd", fd[n],
                                     project=lambda g, d=d: d @ np.ravel(g)))   # [K]
        return expected, fd


ORACLES = (JaxOracle(), FiniteDifferences())
