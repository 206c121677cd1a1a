"""What a cell's declared conventions do to its arrays, and which conventions a forward follows.

An adapter (gradcheck/adapters.py) hands code of another convention the contract's arrays
re-arranged (``to_code``): the gate blocks of the blocked arrays (Wx, Wh, b, bh; ``order``)
in the code's order, and the update gate's blocks negated for code whose z weighs the
candidate (``negate z``: s(-u) = 1 - s(u), so the code's z is the contract's 1 - z). The
code's gradients come back by ``from_code``: both maps are a permutation and signs
(orthogonal), so the inverse of the arrays' map is the transpose the gradients need.
The other effects (``option reset_after``, ``zero c0``) change what the oracles compute,
not the arrays (gradcheck/check.py, gradcheck/adapters.py).

``follows``: when the forward disagrees with the oracle, the forward is run again under the
other values of the cell's conventions (fewest changed keys first); the first under which
the code's loss and h_last agree is the convention the code follows. Like the zoo's
candidate test (a diagnosis, never a verdict), it runs the reference's NumPy window in
float64: no compile for a form of the cell the check has not run (the reset after).
"""
import itertools

import numpy as np

from .._reference import cell_module
from ..compare import compare
from ..model import cell as cell_of, describe

__all__ = ["declared", "to_code", "from_code", "follows", "sentence"]


def _conventions(cell):
    return cell_of(cell).conventions


def _gates(cell):
    return next(c.contract for c in _conventions(cell).values() if c.effect == "order")


def declared(decl, cell):
    """{key: value} of every convention of ``cell``: the declaration's (a dict, or None
    for code of the contract) over the contract's values ({} for the RNN)."""
    decl = decl or {}
    return {k: decl.get(k, c.contract) for k, c in _conventions(cell).items()}


def _blocked(cell):
    """{name: blocks} of the cell's arrays made of gate blocks (with every option on)."""
    c = cell_of(cell)
    model = describe(cell, **{o.name: True for o in c.options})
    return {a.name: a.blocks for a in model.arrays if a.blocks > 1}


def _effects(cell, values):
    """(gate order, negate z) that ``values`` ({key: value}) ask of the arrays."""
    order, negate = _gates(cell), False
    for key, c in _conventions(cell).items():
        if c.effect == "order":
            order = values.get(key, c.contract)
        elif c.effect == "negate z":
            negate = values.get(key, c.contract) != c.contract
    return order, negate


def to_code(name, arr, values, cell):
    """Array ``name`` (contract layout, gate blocks along its last axis) as code following
    ``values`` takes it; other arrays unchanged."""
    if name not in _blocked(cell) or not values:
        return arr
    order, negate = _effects(cell, values)
    gates = _gates(cell)
    blocks = np.split(np.asarray(arr), len(gates), axis=-1)
    if negate:
        blocks[gates.index("z")] = -blocks[gates.index("z")]
    return np.concatenate([blocks[gates.index(g)] for g in order], axis=-1)


def from_code(name, arr, values, cell):
    """The inverse of ``to_code``: array (or gradient) ``name`` of code following
    ``values`` in the contract's layout."""
    if name not in _blocked(cell) or not values:
        return arr
    order, negate = _effects(cell, values)
    gates = _gates(cell)
    blocks = np.split(np.asarray(arr), len(gates), axis=-1)
    out = [blocks[order.index(g)] for g in gates]
    if negate:
        out[gates.index("z")] = -out[gates.index("z")]
    return np.concatenate(out, axis=-1)


def _candidates(cell, checked):
    """Every other combination of the conventions' values, fewest keys changed first."""
    convs = _conventions(cell)
    combos = [dict(zip(convs, vs)) for vs in itertools.product(*(c.values for c in convs.values()))]
    combos = [c for c in combos if c != checked]
    return sorted(combos, key=lambda c: sum(c[k] != checked[k] for k in c))


def _forward(params, x, y, h0, states, values, checked, cell, options):
    """The (loss, h_last) of code following ``values`` run by an adapter that declared
    ``checked`` (the reference's window, float64)."""
    p = {n: np.asarray(from_code(n, to_code(n, a, checked, cell), values, cell), np.float64)
         for n, a in params.items()}
    states = {n: np.asarray(s, np.float64) for n, s in states.items()}
    for key, c in _conventions(cell).items():
        changed = values[key] != c.contract
        if c.effect == "option reset_after":     # the reference's reset is after with bh
            if changed and "bh" not in p:
                p["bh"] = np.zeros_like(p["b"])
            elif not changed:
                p.pop("bh", None)
        elif c.effect == "zero c0" and changed:
            states["c0"] = np.zeros_like(states["c0"])
    extra = [states[n] for n in describe(cell).state_names[1:]]
    y = y if y.dtype.kind in "iu" else np.asarray(y, np.float64)
    out = cell_module(cell_of(cell).sides["reference"]).loss_and_grads(
        p, np.asarray(x, np.float64), y, np.asarray(h0, np.float64), *extra, **options)
    return out[0], out[2]


def follows(params, x, y, h0, states, out, checked, cell, options, tol):
    """{key: value} of the conventions the forward of ``out`` (an Outcome: its loss and
    h_last) follows, only the keys that differ from ``checked`` (what the check assumed),
    or None when no combination of the cell's conventions explains it. ``states``: the
    window's further incoming states ({"c0": ...}); ``tol``: the comparison's tolerance."""
    if out.loss is None or out.h_last is None or not _conventions(cell):
        return None
    got_loss = np.asarray(out.loss, np.float64)
    for values in _candidates(cell, checked):
        loss, h_last = _forward(params, x, y, h0, states, values, checked, cell, options)
        if (compare(got_loss, np.asarray(loss), tol).passed
                and compare(out.h_last, h_last, tol).passed):
            return {k: v for k, v in values.items() if v != checked[k]}
    return None


def sentence(found, checked, cell, adapted):
    """(kind, text) naming the conventions ``found`` ({key: value}) against ``checked``;
    ``adapted``: the code was checked through an adapter (else: the contract itself)."""
    convs = _conventions(cell)
    uses = "; and ".join(f"{convs[k].values[v]} (this check: {convs[k].values[checked[k]]})"
                         for k, v in found.items())
    keys = ", ".join(f'"{k}": "{v}"' for k, v in found.items())
    act = (f"declare {keys} in the adapter" if adapted else
           f"write it in the contract's convention, or check it through an adapter declaring "
           f"{keys}")
    return convs[next(iter(found))].kind, (
        f"The forward disagrees with JAX and it is not a wrong gradient: your code follows "
        f"another convention than the one checked. Your forward uses {uses}; {act}.")
