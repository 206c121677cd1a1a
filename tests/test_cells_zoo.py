"""The cells' zoos: every deliberately wrong implementation fails through the isolated path,
with the diagnosis that names its mistake (a kind of its own), and no mistake is named
for correct code."""
import pytest

import gradcheck
from gradcheck import kinds, model
from gradcheck.tolerances import tolerance
from tests.helpers import small_data

CELL_BUGS = [(c, b) for c in model.cell_names() if c != model.DEFAULT_CELL
             for b in model.side(c, "zoo").BUGS]


@pytest.mark.parametrize(("cell", "bug"), CELL_BUGS, ids=[f"{c}-{b}" for c, b in CELL_BUGS])
def test_every_bug_fails_isolated_with_the_diagnosis_that_names_it(cell, bug):
    zoo = model.side(cell, "zoo")
    report = gradcheck.check(f"{zoo.__name__}:{bug}", cell=cell, interval=3, seq_len=6,
                             batch=4)
    assert not report.passed
    assert report.isolation["isolated"]
    assert report.finding.kind == zoo.BUGS[bug].kind, report.diagnosis
    assert kinds.kind_of(report.finding.kind).group == "conceptual"
    assert "reproduces the numbers" in report.diagnosis


@pytest.mark.parametrize("cell", sorted({c for c, _ in CELL_BUGS}))
def test_no_mistake_reproduces_correct_gradients(cell):
    config, data = small_data(cell=cell, interval=3)
    reference = model.side(cell, "jax")
    states = tuple(data.states.values())
    options = dict(config.model_options, **config.model.options)
    right = reference.jax_window(data.params, data.x, data.y, data.h0, *states, **options)
    zoo = model.side(cell, "zoo")
    assert zoo.reproducing(data.params, data.x, data.y, data.h0, *states, right.grads,
                           config.model_options, tolerance("jax", "float64")) == {}


@pytest.mark.parametrize("cell", sorted({c for c, _ in CELL_BUGS}))
def test_the_cell_declares_every_kind_of_its_zoo(cell):
    zoo = model.side(cell, "zoo")
    conventions = {c.kind for c in model.cell(cell).conventions.values()}
    assert set(model.cell(cell).kinds) == {b.kind for b in zoo.BUGS.values()} | conventions
    assert len(zoo.BUGS) >= 10
