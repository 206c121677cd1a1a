"""A cell's conventions, declared: the ways hand-written code of the same cell commonly
differs from the contract without being wrong (the order of the gate blocks, which side of
the update z weighs, where the reset gate sits, a cell state the code resets), each a key
of an adapter declaration (gradcheck/adapters.py) with the values it may take.

Plain data (no NumPy): the cell's declaration module lists its conventions with
``declare_conventions``, which registers one diagnosis kind per key,
``<cell>_convention_<key>``: the forward follows another value of that key than the one
checked (gradcheck/cells/convention_arrays.py finds which).
"""
from typing import NamedTuple

from .. import kinds

__all__ = ["EFFECTS", "Convention", "declare_conventions"]


# What a key's value changes (gradcheck/cells/convention_arrays.py applies it):
EFFECTS = {
    "order": "the gate blocks of the blocked arrays (Wx, Wh, b, bh) are in the value's order",
    "negate z": "the update gate's blocks are negated for a value other than the contract's "
                "(the code's z is the contract's 1 - z, and s(-u) = 1 - s(u))",
    "option reset_after": "the cell option reset_after is on for a value other than the "
                          "contract's (without bh, the code's one bias: bh = 0)",
    "zero c0": "for a value other than the contract's, the code starts every call from "
               "c0 = 0 and returns no c_last",
}


class Convention(NamedTuple):
    """One key of a cell's adapter declarations. ``values``: {value: what code with that
    value computes, in words}, the contract's value first; ``effect``: a key of EFFECTS;
    ``hint``: the student's words."""
    cell: str
    key: str
    values: dict
    effect: str
    hint: str

    @property
    def contract(self):
        return next(iter(self.values))

    @property
    def kind(self):
        return f"{self.cell}_convention_{self.key}"


def declare_conventions(cell, *conventions):
    """{key: Convention} of ``cell``, given as (key, values, effect, hint); each is registered
    as a contract kind (the code computes another function than the one checked, a
    convention it can declare rather than a wrong gradient)."""
    declared = {}
    for key, values, effect, hint in conventions:
        if effect not in EFFECTS:
            raise ValueError(f"convention {key!r}: effect {effect!r} is not one of {list(EFFECTS)}")
        c = Convention(cell, key, dict(values), effect, hint)
        kinds.register(c.kind, "contract", f"{cell.upper()} convention: {key}", hint)
        declared[key] = c
    return declared
