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
    on = {o: True for o in zoo.BUGS[bug].options}       # the form it is a mistake of
    report = gradcheck.check(f"{zoo.__name__}:{bug}", cell=cell, interval=3, seq_len=6,
                             batch=4, **on)
    assert not report.passed
    assert report.isolation["isolated"]
    assert report.finding.kind == zoo.BUGS[bug].kind, report.diagnosis
    assert kinds.kind_of(report.finding.kind).group == "conceptual"
    assert "reproduces the numbers" in report.diagnosis


# Every cell with its options off, then with each of them on (the GRU's reset_after).
FORMS = [(c, ()) for c in sorted({c for c, _ in CELL_BUGS})] + [
    (c, (o.name,)) for c in sorted({c for c, _ in CELL_BUGS}) for o in model.cell(c).options]


@pytest.mark.parametrize(("cell", "on"), FORMS, ids=["-".join((c,) + o) for c, o in FORMS])
def test_no_mistake_reproduces_correct_gradients(cell, on):
    config, data = small_data(cell=cell, interval=3, cell_options=on)
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


@pytest.mark.parametrize(("cell", "on"), FORMS, ids=["-".join((c,) + o) for c, o in FORMS])
def test_every_form_of_a_cell_has_its_mistakes(cell, on):
    """Each form of a cell (the GRU's reset before and after the product) has zoo bugs
    of its own, each refused in the other form."""
    zoo = model.side(cell, "zoo")
    mine = [b for b in zoo.BUGS.values() if set(b.options) == set(on)]
    assert len(mine) >= 5
    if on:
        config, data = small_data(cell=cell, interval=2)              # the other form
        with pytest.raises(NotImplementedError, match=r"--reset-after"):
            getattr(zoo, mine[0].name)(data.params, data.x, data.y, data.h0,
                                       **config.model_options)


# --- the command line's --bug and --list-bugs read the chosen cell's zoo ---------------

@pytest.mark.parametrize("cell_name", ["lstm", "gru"])
def test_list_bugs_prints_the_cell_s_own_zoo(cell_name, capsys):
    from gradcheck.cli import main
    assert main(["--cell", cell_name, "--list-bugs"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(model.side(cell_name, "zoo").BUGS)


def test_list_bugs_names_the_form_of_a_reset_after_bug(capsys):
    from gradcheck.cli import main
    assert main(["--cell", "gru", "--list-bugs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    bugs = model.side("gru", "zoo").BUGS
    assert [line.endswith("(--reset-after)") for line in lines] == [
        "reset_after" in bugs[line.split()[0]].options for line in lines]
    assert any(line.endswith("(--reset-after)") for line in lines)


@pytest.mark.parametrize("argv, kind, reset_after", [
    (["--cell", "lstm", "--bug", "dc_next_without_f"], "lstm_dc_next_without_f", False),
    (["--cell", "gru", "--bug", "after_dbh_n_missing"], "gru_after_dbh_n_missing", True),
])
def test_bug_runs_the_cell_s_zoo_in_its_form(argv, kind, reset_after, capsys):
    import json
    from gradcheck.cli import main
    assert main(argv + ["--interval", "3", "--batch", "4", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["diagnosis_kind"] == kind
    assert doc["config"]["cell"] == argv[1]
    assert doc["config"].get("reset_after", False) is reset_after


@pytest.mark.parametrize("argv, message", [
    (["--cell", "lstm", "--bug", "dU_transposed"],
     "gradcheck: error: --bug dU_transposed: in the zoo of --cell rnn, not of --cell lstm "
     "(give --cell rnn)"),
    (["--bug", "no_dc_next"],
     "gradcheck: error: --bug no_dc_next: in the zoo of --cell lstm, not of --cell rnn "
     "(give --cell lstm)"),
    (["--cell", "lstm", "--bug", "lstm_no_dc_next"],             # its diagnosis kind
     "gradcheck: error: --bug lstm_no_dc_next: expected one of the names --cell lstm "
     "--list-bugs prints (did you mean no_dc_next?)"),
    (["--cell", "gru", "--bug", "z_swaped"],
     "gradcheck: error: --bug z_swaped: expected one of the names --cell gru --list-bugs "
     "prints (did you mean z_swapped?)"),
    (["--cell", "lstm", "--bug", "nosuch"],
     "gradcheck: error: --bug nosuch: expected one of the names --cell lstm --list-bugs "
     "prints"),
    (["--bug", "no_dh_next", "--reset-after"],
     "gradcheck: error: --reset-after: only for --cell gru (this check's cell is rnn)"),
    (["--cell", "gru", "--bug", "dWh_from_h_t", "--reset-after"],
     "gradcheck: error: --reset-after: --bug dWh_from_h_t is a mistake of the form without "
     "--reset-after"),
])
def test_a_bug_outside_the_cell_or_its_form_is_a_usage_error(argv, message, capsys):
    from gradcheck.cli import main
    assert main(argv + ["--interval", "3"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
