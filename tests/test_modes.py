"""--mode projections: cheap for large models, and still rejects every zoo bug."""
import pytest

import gradcheck
from gradcheck import zoo
from gradcheck.check import FULL_MODE_MAX_ELEMENTS, choose_mode
from gradcheck.cli import main
from gradcheck.config import make_config

SMALL = dict(batch=6, input_size=4, hidden_size=5, state_size=3, output_size=7)


@pytest.mark.parametrize("loss, acts", [("l2", "tanh,tanh,identity"), ("ce", "relu,sigmoid,identity"),
                                        ("bce", "sigmoid,relu,identity")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_reference_passes_in_projections_mode(loss, acts, dtype):
    report = gradcheck.check(interval=4, seq_len=6, loss=loss, activations=acts, dtype=dtype,
                             mode="projections", **SMALL)
    assert report.passed, report.format_table()
    assert {r.oracle for r in report.results} == {"jax", "fd-projections"}


@pytest.mark.parametrize("name", sorted(zoo.BUGS))
def test_every_zoo_bug_is_rejected_in_projections_mode(name):
    bug = zoo.BUGS[name]
    report = gradcheck.check(bug.make(), **{**bug.config, "mode": "projections"})
    assert not report.passed
    assert {r.name for r in report.results if not r.passed} == set(bug.breaks)


@pytest.mark.parametrize("name", ["db3_off_by_1e6", "dU_skips_first_step", "dW3_uses_h_prev"])
def test_projections_alone_catch_single_array_bugs(name):
    bug = zoo.BUGS[name]
    report = gradcheck.check(bug.make(), **{**bug.config, "mode": "projections"})
    failing = {r.name for r in report.results if not r.passed and r.oracle == "fd-projections"}
    assert failing == set(bug.breaks)


def test_auto_mode_is_full_when_cheap_and_projections_beyond():
    small = make_config(interval=3)
    large = make_config(interval=16, batch=64, input_size=64, hidden_size=128,
                        state_size=128, output_size=64)
    assert small.n_elements <= FULL_MODE_MAX_ELEMENTS < large.n_elements
    assert choose_mode(small)[0] == "full"
    mode, reason = choose_mode(large)
    assert mode == "projections" and str(FULL_MODE_MAX_ELEMENTS) in reason


def test_report_says_which_mode_and_why(capsys):
    assert main(["--interval", "2", "--batch", "3", "--mode", "projections"]) == 0
    assert "mode: projections (chosen with --mode)" in capsys.readouterr().out


def test_progress_is_reported_per_window_only_after_two_seconds(monkeypatch):
    import io

    from gradcheck.cli.check import Progress
    stream = io.StringIO()
    bar = Progress(stream)
    bar(1, 3)
    assert stream.getvalue() == ""                  # quick checks stay silent
    monkeypatch.setattr(Progress, "AFTER_SECONDS", 0.0)
    bar(2, 3)
    bar.close()
    assert stream.getvalue() == "\rgradcheck: window 2/3 checked (0 s)\n"


def test_check_calls_progress_after_every_window():
    calls = []
    gradcheck.check(interval=2, seq_len=5, progress=lambda d, t: calls.append((d, t)), **SMALL)
    assert calls == [(1, 3), (2, 3), (3, 3)]
