"""What every cell's zoo does with its bugs once it has the forward's cache: which bugs
reproduce an implementation's gradients, and the sentence that names them; ``hooks``
makes the three functions the registry calls on a cell's zoo (its "zoo" and "layer_zoo"
sides) from the cell's bugs, so that a cell's zoo module writes none of them."""
from typing import Callable, NamedTuple

import numpy as np

from .._reference import cell_module
from ..compare import compare
from ..model import cell

__all__ = ["reproducing_bugs", "finding", "layer_window", "layer_candidate", "of_form",
           "Hooks", "hooks"]


def reproducing_bugs(bugs, backward, cache, impl_grads, tol, grad_names):
    """{bug: worst error / tol} of the ``bugs`` whose gradients (``backward(cache, bug)``,
    float64) all agree with ``impl_grads`` at ``tol``, over the ``grad_names`` it has."""
    names = [n for n in grad_names if n in impl_grads]
    found = {}
    for bug in bugs:
        grads = backward(cache, bug)
        fits = [compare(impl_grads[n], grads[n], tol) for n in names]
        if all(c.passed for c in fits):
            found[bug] = max(c.ratio or 0.0 for c in fits)
    return found


def finding(bugs, cell, fits):
    """(kind, sentence) for the bugs of ``cell`` ("LSTM", "GRU") that reproduce the
    numbers, or None when none does."""
    if len(fits) == 1:
        bug = bugs[next(iter(fits))]
        return bug.kind, f"{cell}: {bug.what} (this mistake reproduces the numbers)."
    if fits:
        return "ambiguous", (f"Unclear which of these {cell} mistakes it is; each reproduces "
                             f"the numbers: " + "; or ".join(bugs[b].what for b in fits) + ".")
    return None


def of_form(bugs, cell_name, arrays):
    """The names of ``bugs`` (a cell's BUGS) of the form ``arrays`` are of: a bug's options
    are exactly the cell's options whose own arrays are among them (the GRU's bh: the
    reset after the product); with no such option, the bugs whose options are none."""
    on = {o.name for o in cell(cell_name).options
          if o.arrays and all(a.name in arrays for a in o.arrays)}
    return [name for name, bug in bugs.items() if set(bug.options) == on]


def layer_window(first, weights, step):
    """A cell's layer as a window a zoo can run: (x [T, B, H], params, y [T, B, R]) with
    the dense layers the identity (W1 = I, b1 = 0, W3 = I, b3 = 0; run with f1 = f3 =
    identity, so the window's x is the layer's a and its d3 the layer's upstream).
    ``first``: the layer's a [T, B, H] (a_t [B, H] for a ``step`` layer); ``weights``:
    the cell's own params by name (Wx, Wh, b, ...)."""
    x = first[None] if step else first
    T, B, H = x.shape
    R = weights["Wh"].shape[0]
    params = dict(weights, W1=np.eye(H), b1=np.zeros(H), W3=np.eye(R), b3=np.zeros(R))
    return x, params, np.zeros((T, B, R))


def layer_candidate(bugs, reproducing, find, spec, arrays, gs, grads, tol):
    """(kind, sentence, False, bug) of a cell's ``bugs`` that reproduce a layer check's
    gradients (bug None: several do, the sentence names them), or None; ``grads``: one per
    input, None for one skipped (never compared); ``reproducing`` and ``find``: the cell
    zoo's layer_reproducing and finding."""
    inputs = dict(zip(spec.input_names, (np.asarray(v, np.float64) for v in arrays)))
    fits = reproducing(spec.name, inputs, tuple(np.asarray(g, np.float64) for g in gs),
                       dict(zip(spec.input_names, grads)), tol)
    found = find(fits)
    if found is None:
        return None
    if len(fits) == 1:
        bug = next(iter(fits))
        return found[0], bugs[bug].what, False, bug
    return found[0], found[1], False, None


class Hooks(NamedTuple):
    """The functions the registry calls on a cell's zoo module (made by ``hooks``):
    ``reproducing(params, x, y, h0, *states, impl_grads, options, tol)`` -> {bug: worst
    error / tol} for a whole window (diagnose); ``finding(fits)`` -> (kind, sentence) or
    None; ``layer_candidate(spec, arrays, gs, grads, want, failing, options, tol)`` ->
    (kind, sentence, False, bug) or None for a layer check (the "layer_zoo" side)."""
    reproducing: Callable
    finding: Callable
    layer_candidate: Callable


def hooks(cell_name, bugs, backward, layer_reproducing, grad_names):
    """The Hooks of cell ``cell_name``'s zoo, from its ``bugs`` (BUGS), its zoo's
    ``backward(params, cache, bug)`` (the window's gradients, float64, from the cell
    reference's forward cache), its ``layer_reproducing(layer, inputs, upstreams,
    impl_grads, tol)`` and the ``grad_names`` its backward gives; sentences name the cell
    by its registry label. A whole window's bugs are those of the form of its params
    (``of_form``)."""
    label = cell(cell_name).label
    reference = cell_module(cell(cell_name).sides["reference"])

    def reproducing(params, x, y, h0, *rest):
        *states, impl_grads, options, tol = rest          # states: the further ones (c0)
        f64 = {n: np.asarray(p, np.float64) for n, p in params.items()}
        y = y if y.dtype.kind in "iu" else np.asarray(y, np.float64)
        incoming = (np.asarray(s, np.float64) for s in (h0, *states))
        _, cache = reference.forward(f64, np.asarray(x, np.float64), y, *incoming, **options)
        return reproducing_bugs(of_form(bugs, cell_name, params),
                                lambda c, bug: backward(f64, c, bug), cache, impl_grads, tol,
                                grad_names)

    def cell_finding(fits):
        return finding(bugs, label, fits)

    def cell_layer_candidate(spec, arrays, gs, grads, want, failing, options, tol):
        return layer_candidate(bugs, layer_reproducing, cell_finding, spec, arrays, gs, grads,
                               tol)

    return Hooks(reproducing, cell_finding, cell_layer_candidate)
