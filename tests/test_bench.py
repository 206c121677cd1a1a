"""The benchmark times what it says: its JAX windows compute the reference's window, its
sweep compiles once, and a command that fails is never a figure."""
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import reference
from gradcheck import oracle_jax
from gradcheck.bench import CELLS, _fd_error, _fresh, _jax_window_fns, small_configs
from gradcheck.tolerances import DIFFERENCE_FORM_ACCURACY
from tests.helpers import small_data

# Two float64 computations of the same window in different orders: they differ by
# rounding only (the reference is ~1e-15 from JAX; see test_reference).
SAME_WINDOW_RTOL = 1e-10


@pytest.mark.parametrize("formulation", ["scan", "loop"])
def test_bench_jax_windows_compute_the_reference_window(formulation):
    _, data = small_data(interval=4)
    fn = _jax_window_fns()[formulation]
    (value, h_last), (dparams, dx, dh0) = fn(data)
    want_value, want, want_h = reference.loss_and_grads(data.params, data.x, data.y, data.h0)
    got = dict(dparams, x=dx, h0=dh0)
    assert abs(float(value) - want_value) <= SAME_WINDOW_RTOL * abs(want_value)
    np.testing.assert_allclose(np.asarray(h_last), want_h, rtol=SAME_WINDOW_RTOL)
    for name in reference.GRAD_NAMES:
        scale = np.max(np.abs(want[name]))
        assert np.max(np.abs(np.asarray(got[name]) - want[name])) <= SAME_WINDOW_RTOL * scale, name


def test_the_sweep_draws_sizes_1_to_8_in_one_compiled_bucket():
    """The fresh-process sweep compiles the oracle once: every configuration it draws
    pads to the same shapes (and every size 1 to 8 is drawn)."""
    configs = small_configs(np.random.default_rng(1), 300)
    drawn = {v for c in configs for v in c.values()}
    assert drawn == set(range(1, 9))
    steps = {oracle_jax._bucket(min(c["interval"], c["seq_len"]), oracle_jax.MIN_STEPS_BUCKET)
             for c in configs}
    widths = {oracle_jax._bucket(c[k], oracle_jax.MIN_BUCKET) for c in configs
              for k in ("batch", "input_size", "hidden_size", "state_size", "output_size")}
    assert (len(steps), len(widths)) == (1, 1)


def test_a_fresh_process_that_exits_otherwise_is_an_error():
    """The benchmark times what it says: a command that fails is not a figure."""
    assert _fresh([sys.executable, "-c", "raise SystemExit(2)"], dict(os.environ), 2) > 0
    with pytest.raises(RuntimeError, match="exited 2, not 0"):
        _fresh([sys.executable, "-c", "raise SystemExit(2)"], dict(os.environ), 0)


def test_the_figures_carry_their_date_cores_and_load():
    from gradcheck.bench import conditions
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+ cores, load average \d+\.\d",
                        conditions())


def test_the_readme_dates_its_timings_and_their_machine():
    """The Performance section says when and under what load its figures were measured."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"python -m gradcheck\.bench.*\d{4}-\d\d-\d\d", section, re.DOTALL)
    assert re.search(r"load average (about )?\d+", section)


@pytest.mark.parametrize(("label", "cell", "options"), CELLS, ids=[c[0] for c in CELLS])
def test_the_bench_measures_each_cell_s_fd_error_against_jax(label, cell, options):
    config, _ = small_data(interval=3, cell=cell, cell_options=tuple(options))
    assert 0.0 < _fd_error(config) <= DIFFERENCE_FORM_ACCURACY


def test_the_cells_section_prints_each_cell_s_time_ratio_and_fd_error(capsys):
    from gradcheck.bench import cells
    cells(dict(interval=2, batch=3, input_size=2, hidden_size=3, state_size=2, output_size=3),
          rounds=1)
    out = capsys.readouterr().out
    assert re.search(r"^  rnn +\d+\.\d ms", out, re.MULTILINE)
    for label, _, _ in CELLS:
        assert re.search(rf"^  {re.escape(label)} +\d+\.\d ms +\d+\.\d\dx the rnn's "
                         rf"\(target <= 3\); FD error \d\.\de-\d+ ", out, re.MULTILINE), label
