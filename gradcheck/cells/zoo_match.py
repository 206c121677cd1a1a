"""What every cell's zoo does with its bugs once it has the forward's cache: which bugs
reproduce an implementation's gradients, and the sentence that names them."""
from ..compare import compare

import numpy as np

__all__ = ["reproducing_bugs", "finding", "layer_window", "layer_candidate"]


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
