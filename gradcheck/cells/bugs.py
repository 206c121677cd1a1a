"""A cell's zoo of mistakes, declared: each mistake is a diagnosis kind (plain data, no
NumPy, since the cell's declaration is read for --help)."""
from typing import NamedTuple

from .. import kinds

__all__ = ["Bug", "declare_bugs"]


class Bug(NamedTuple):
    """One mistake of a cell's zoo: ``what`` the diagnosis says (when it reproduces the
    numbers), ``title`` the instructor's label, ``hint`` the student's words; ``options``:
    the cell's options on in the form it is a mistake of (the GRU's ("reset_after",)),
    the others off."""
    cell: str
    name: str
    what: str
    title: str
    hint: str
    options: tuple = ()

    @property
    def kind(self):
        return f"{self.cell}_{self.name}"

    @property
    def doc(self):
        """What ``gradcheck --cell CELL --list-bugs`` prints (as the RNN zoo's ``doc``)."""
        return self.what

    @property
    def config(self):
        """Options of the check that shows the bug, beyond its form (none: the defaults)."""
        return {}

    def make(self):
        """A fresh ``loss_and_grads`` with this mistake, from the cell's zoo module (which
        loads NumPy: only when a bug is run)."""
        from ..model import side
        return getattr(side(self.cell, "zoo"), self.name)


def declare_bugs(cell, *bugs):
    """{name: Bug} of ``cell``'s mistakes, given as (name, what, title, hint[, options]);
    each is registered as a conceptual diagnosis kind."""
    declared = {}
    for fields in bugs:
        bug = Bug(cell, *fields)
        kinds.register(bug.kind, "conceptual", bug.title, bug.hint)
        declared[bug.name] = bug
    return declared
