"""What a cell's declared conventions do to its arrays, and which conventions a forward follows.

An adapter (gradcheck/adapters.py) hands code of another convention the contract's arrays
re-arranged (``to_code``): the gate blocks of the blocked arrays (Wx, Wh, b, bh; ``order``)
in the code's order, and the update gate's blocks negated for code whose z weighs the
candidate (``negate z``: s(-u) = 1 - s(u), so the code's z is the contract's 1 - z). The
code's gradients come back by ``from_code``: both maps are a permutation and signs
(orthogonal), so the inverse of the arrays' map is the transpose the gradients need.
The other effects (``option reset_after``, ``zero c0``) change what the oracles compute,
not the arrays (gradcheck/check.py, gradcheck/adapters.py).

``computed`` is the one place that says what code following other conventions computes,
as the contract's arrays (the blocks as the code reads them, bh for a reset after, a zero
c0). ``first_followed``: when the forward disagrees with the oracle, the oracle is run again
on those arrays under the other values of the cell's conventions (fewest changed keys
first); the first whose forward the code's agrees with is the convention the code follows.
``follows`` (the whole window) runs the reference's NumPy window in float64, like the zoo's
candidate test (a diagnosis, never a verdict): no compile for a form of the cell the check
has not run (the reset after); a layer checked by itself (gradcheck/layer_check.py) runs
the JAX layer it was checked against.
"""
import itertools

import numpy as np

from .._reference import cell_module
from ..compare import compare
from ..model import cell as cell_of, describe

__all__ = ["declared", "to_code", "from_code", "gradient_from_code", "computed",
           "first_followed", "follows", "sentence"]


def _conventions(cell):
    return cell_of(cell).conventions


def _gates(cell):
    return next(c.contract for c in _conventions(cell).values() if c.effect == "order")


def declared(decl, cell, options=()):
    """{key: value} of every convention of ``cell``: the declaration's (a dict, or None
    for code of the contract) over the contract's values ({} for the RNN); ``options``:
    the names of the cell options the check has on, whose keys take the option's value
    (reset_after: "reset" is "after")."""
    decl = decl or {}
    out = {k: decl.get(k, c.contract) for k, c in _conventions(cell).items()}
    for k, c in _conventions(cell).items():
        if c.effect.startswith("option ") and c.effect.split(" ", 1)[1] in options:
            out[k] = next(v for v in c.values if v != c.contract)
    return out


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


def gradient_from_code(name, g, values, cell):
    """``from_code`` of a gradient the code returned, which may be anything: as it is when
    it is no array of numbers whose last axis holds the gate blocks (a string, a scalar, a
    wrong width), so the check tells what is wrong with it."""
    if name not in _blocked(cell) or not values:
        return g
    try:
        arr = np.asarray(g)
    except (TypeError, ValueError):
        return g
    if arr.dtype.kind not in "fiuc" or arr.ndim == 0 or arr.shape[-1] % len(_gates(cell)):
        return g
    return from_code(name, arr, values, cell)


def _applies(c, names, cell):
    """Whether convention ``c`` changes a computation of the arrays ``names``: a cell state
    the code resets changes only a window's incoming further states (c0, not a step's
    c_prev); every other convention changes any."""
    if c.effect != "zero c0":
        return True
    return any(i in names for i, _ in describe(cell).extra_states)


def _candidates(cell, checked, names=None):
    """Every other combination of the conventions' values, fewest keys changed first;
    ``names``: the arrays computed with (None: a whole window), the conventions that change
    nothing there held at their checked value."""
    convs = {k: c for k, c in _conventions(cell).items()
             if names is None or _applies(c, names, cell)}
    combos = [dict(checked, **dict(zip(convs, vs)))
              for vs in itertools.product(*(c.values for c in convs.values()))]
    combos = [c for c in combos if c != checked]
    return sorted(combos, key=lambda c: sum(c[k] != checked[k] for k in c))


def computed(arrays, values, checked, cell):
    """(arrays, reset_after): what code following ``values``, handed ``arrays`` ({model
    name: array}, the contract's layout) by an adapter that declared ``checked``, computes,
    as the contract's arrays of the same computation (float64): the gate blocks as the code
    reads them; bh added as zeros for a reset after (the code's one bias) or dropped for a
    reset before; the incoming further states (c0) zero for a cell state the code resets;
    ``reset_after``: the computation's reset is after the product."""
    out = {n: np.asarray(from_code(n, to_code(n, a, checked, cell), values, cell), np.float64)
           for n, a in arrays.items()}
    after = "bh" in out
    for key, c in _conventions(cell).items():
        changed = values[key] != c.contract
        if c.effect == "option reset_after":
            after = changed
            if changed and "bh" not in out:
                out["bh"] = np.zeros_like(out["b"])
            elif not changed:
                out.pop("bh", None)
        elif c.effect == "zero c0" and changed:
            for i, _ in describe(cell).extra_states:
                if i in out:
                    out[i] = np.zeros_like(out[i])
    return out, after


def first_followed(run, got, arrays, checked, cell, tol, names=None):
    """{key: value} (the keys that differ from ``checked``) of the first other combination
    of the cell's conventions, fewest changes first, under which ``run`` (the oracle of the
    computation, given ``computed``'s arrays and reset_after) returns what the code
    returned, ``got`` (a tuple of arrays, each compared at ``tol``); None when none does.
    ``names``: the arrays of a layer checked by itself (None: a whole window)."""
    for values in _candidates(cell, checked, names):
        want = run(*computed(arrays, values, checked, cell))
        if all(compare(np.asarray(g, np.float64), np.asarray(w), tol).passed
               for g, w in zip(got, want)):
            return {k: v for k, v in values.items() if v != checked[k]}
    return None


def follows(params, x, y, h0, states, out, checked, cell, options, tol):
    """{key: value} of the conventions the forward of ``out`` (an Outcome: its loss and
    h_last) follows, only the keys that differ from ``checked`` (what the check assumed),
    or None when no combination of the cell's conventions explains it. ``states``: the
    window's further incoming states ({"c0": ...}); ``tol``: the comparison's tolerance.
    Each combination runs the reference's window (float64)."""
    if out.loss is None or out.h_last is None or not _conventions(cell):
        return None
    y = y if y.dtype.kind in "iu" else np.asarray(y, np.float64)
    extra = describe(cell).state_names[1:]
    reference = cell_module(cell_of(cell).sides["reference"])

    def run(arrays, _after):          # the reference's reset is after when given bh
        p = {n: a for n, a in arrays.items() if n not in extra}
        got = reference.loss_and_grads(p, np.asarray(x, np.float64), y,
                                       np.asarray(h0, np.float64),
                                       *(arrays[n] for n in extra), **options)
        return got[0], got[2]
    return first_followed(run, (out.loss, out.h_last), dict(params, **states), checked,
                          cell, tol)


def sentence(found, checked, cell, adapted, layer=False):
    """(kind, text) naming the conventions ``found`` ({key: value}) against ``checked``;
    ``adapted``: the code was checked through an adapter (else: the contract itself,
    which an adapter of the conventions alone declares); ``layer``: a layer checked by
    itself (its own two functions)."""
    convs = _conventions(cell)
    uses = "; and ".join(f"{convs[k].values[v]} (this check: {convs[k].values[checked[k]]})"
                         for k, v in found.items())
    keys = ", ".join(f'"{k}": "{v}"' for k, v in found.items())
    act = f"declare {keys} in the adapter" if adapted else _contract_act(found, convs, layer)
    return convs[next(iter(found))].kind, (
        f"The forward disagrees with JAX and it is not a wrong gradient: your code follows "
        f"another convention than the one checked. Your forward uses {uses}; {act}.")


def _contract_act(found, convs, layer):
    """What code of the contract does about the conventions ``found``: declare the keys in
    an adapter; a key that is a cell option (the reset after) is the option's form of the
    contract itself (with bh), so its flag and keyword are named instead."""
    keys = ", ".join(f'"{k}": "{v}"' for k, v in found.items()
                     if not convs[k].effect.startswith("option "))
    where = "check_layer" if layer else "gradcheck.check"
    acts = [f"declare it: --adapter '{{{keys}}}' (adapter={{{keys}}} in {where})"] if keys else []
    for k, v in found.items():
        if convs[k].effect.startswith("option "):
            option, on = convs[k].effect.split(" ", 1)[1], v != convs[k].contract
            acts.append(f"check it {'with' if on else 'without'} --{option.replace('_', '-')} "
                        f"({option}={on} in {where})")
    return "write it in the contract's convention, or " + " and ".join(acts)
