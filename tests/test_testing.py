"""Tests of gradcheck.testing: assert_bptt_correct passes silently or says why, briefly."""
from pathlib import Path

import pytest
from hypothesis import given, settings

from gradcheck import zoo
from gradcheck._reference import reference
from gradcheck.errors import UsageError
from gradcheck.strategies import configs
from gradcheck.testing import MAX_LINES, NotSupported, assert_bptt_correct
from tests.helpers import SMALL

IMPLS = Path(__file__).resolve().parent / "impls"


def test_passes_silently_on_the_reference():
    assert assert_bptt_correct(reference.loss_and_grads, interval=3, seq_len=4, **SMALL) is None


@pytest.mark.parametrize("loss", ["l2", "ce", "bce"])
def test_works_under_parametrize(loss):
    assert_bptt_correct(reference.loss_and_grads, interval=2, loss=loss, **SMALL)


@pytest.mark.parametrize("bug", ["no_dh_next", "dU_transposed", "stale_h0",
                                 "nan_backward_off_by_one"])
def test_a_bug_fails_with_the_diagnosis_first(bug):
    b = zoo.BUGS[bug]
    options = dict(SMALL, interval=3, seq_len=7)
    options.update(b.config)
    with pytest.raises(AssertionError) as info:
        assert_bptt_correct(b.make(), **options)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("diagnosis: "), lines
    assert len(lines) <= MAX_LINES
    assert any("FAILED" in line for line in lines[1:3])
    broken = [n for n in b.breaks if n not in ("loss", "h_last")]
    for name in broken[:3]:          # each failing array is named with its worst element
        assert any(line.startswith(f"  {name} (") and "worst element" in line
                   for line in lines), (name, lines)


def test_no_dh_next_names_the_steps_that_disagree():
    with pytest.raises(AssertionError) as info:
        assert_bptt_correct(zoo.BUGS["no_dh_next"].make(), interval=3, **SMALL)
    assert "steps that disagree: [1, 2]" in str(info.value)


def test_a_spec_string_is_loaded():
    assert_bptt_correct(f"{IMPLS / 'correct.py'}:wrapped", interval=2, **SMALL)
    with pytest.raises(AssertionError, match="diagnosis: The implementation raised"):
        assert_bptt_correct(f"{IMPLS / 'broken.py'}:raises", interval=2, **SMALL)


@pytest.mark.parametrize(("options", "match"), [
    pytest.param(dict(interval=0), "interval=0", id="bad-interval"),
    pytest.param(dict(interval=2, loss="hinge"), "loss='hinge'", id="bad-loss"),
    pytest.param(dict(interval=2, impl_spec="nofile.py:f"), "no such file", id="bad-spec"),
])
def test_bad_options_are_usage_errors_not_failures(options, match):
    impl = options.pop("impl_spec", reference.loss_and_grads)
    with pytest.raises(UsageError, match=match):
        assert_bptt_correct(impl, **options)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(configs(max_size=4, max_interval=4, max_windows=2))
def test_works_with_the_shipped_strategies(options):
    assert_bptt_correct(reference.loss_and_grads, **options)


def test_options_the_code_declines_raise_not_supported():
    spec = f"{IMPLS / 'correct.py'}:loop_bptt"               # l2 only: NotImplementedError
    with pytest.raises(NotSupported, match=r"^not supported by the implementation: "
                                           r"NotImplementedError: loop_bptt only does l2"):
        assert_bptt_correct(spec, interval=2, loss="ce", **SMALL)
    assert issubclass(NotSupported, AssertionError)


def test_assert_bptt_correct_takes_the_cell():
    assert_bptt_correct("tests/impls/cells/lstm_loop.py:loss_and_grads", cell="lstm",
                        interval=2, seq_len=3, batch=2)
    with pytest.raises(AssertionError, match="missing 1 required positional argument: 'c0'"):
        assert_bptt_correct("tests/impls/cells/lstm_loop.py:loss_and_grads", interval=2,
                            batch=2)
