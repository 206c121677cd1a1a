"""Tests of the pytest plugin: the battery, the fixture and marker, and that it costs nothing.

The battery runs in-process (pytester) so JAX's compiled models are shared with the rest
of the suite; the cost test runs a real pytest in a fresh process.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import jax  # noqa: F401  (the oracle imports JAX lazily; pytester drops modules an inner
import pytest  # run imported, and a second import of jaxlib in one process aborts it)

import gradcheck.oracle_fd  # noqa: F401  (loaded before pytester snapshots sys.modules,
import gradcheck.oracle_jax  # noqa: F401  so inner runs reuse the compiled JAX model)
import gradcheck.testing  # noqa: F401
from gradcheck.battery import BATTERY

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ROOT / "tests" / "impls"
CORRECT = f"{IMPLS / 'correct.py'}:wrapped"
BUGGY_SOURCE = textwrap.dedent("""
    from gradcheck import zoo
    loss_and_grads = zoo.BUGS["dU_transposed"].make()
""")
# U is 1x1 when every size is 1: a transposed dU is right there, and only there. Small
# sizes only: the JAX bucket the rest of the suite compiles anyway.
SELECTED = "loss_ce or all_sizes_1 or float32_ce"


def test_the_battery_has_at_least_12_named_configurations(pytester):
    result = pytester.runpytest_inprocess("--collect-only", "-q", f"--gradcheck-impl={CORRECT}")
    names = [line for line in result.outlines if line.startswith("gradcheck::battery[")]
    assert names == [f"gradcheck::battery[{n}]" for n in BATTERY]
    assert len(names) >= 12
    covered = {k: {str(o.get(k)) for o in BATTERY.values()} for k in ("loss", "dtype", "batch")}
    assert covered["loss"] >= {"None", "ce", "bce"} and "float32" in covered["dtype"]
    assert "1" in covered["batch"]


def test_the_collected_count_is_what_runs(pytester):
    pytester.makepyfile(test_mine="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={CORRECT}", "-k",
                                          f"test_a or {SELECTED}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"collected {2 + len(BATTERY)} items / "
                                 f"{2 + len(BATTERY) - 4} deselected / 4 selected"])


def test_battery_passes_a_correct_and_fails_a_buggy_implementation(pytester):
    pytester.makepyfile(buggy=BUGGY_SOURCE)
    ok = pytester.runpytest_inprocess(f"--gradcheck-impl={CORRECT}", "-k", SELECTED)
    ok.assert_outcomes(passed=3)
    bad = pytester.runpytest_inprocess("--gradcheck-impl=buggy.py:loss_and_grads", "-k", SELECTED)
    bad.assert_outcomes(passed=1, failed=2)
    text = bad.stdout.str()
    assert "FAILED gradcheck::battery[loss_ce] - diagnosis: dU is transposed" in text
    assert "worst element" in text and "steps that disagree" in text


def test_a_configuration_the_code_declines_is_skipped_not_failed(pytester):
    """tests/impls/correct.py:loop_bptt does l2 only (NotImplementedError otherwise): the
    battery's ce configurations are not supported by it, which is a skip with the reason."""
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={IMPLS / 'correct.py'}:loop_bptt",
                                          "-rs", "-k", "loss_ce or all_sizes_1")
    result.assert_outcomes(passed=1, skipped=1)
    assert "not supported by the implementation: NotImplementedError: loop_bptt only does l2" \
        in result.stdout.str()


def test_a_user_suite_with_assert_bptt_correct_fixture_and_marker(pytester):
    pytester.makepyfile(buggy=BUGGY_SOURCE, test_mine=textwrap.dedent(f"""
        import pytest
        from gradcheck.testing import assert_bptt_correct
        import buggy
        SMALL = dict(batch=3, input_size=2, hidden_size=3, state_size=2, output_size=3)

        def test_correct():
            assert_bptt_correct({CORRECT!r}, interval=2, **SMALL)

        def test_buggy():
            assert_bptt_correct(buggy.loss_and_grads, interval=2, **SMALL)

        @pytest.mark.gradcheck(interval=3, seq_len=4, **SMALL)
        def test_fixture_and_marker(bptt_check):
            bptt_check({CORRECT!r})

        def test_fixture_without_an_impl_skips(bptt_check):
            bptt_check(interval=2)
    """))
    result = pytester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    failure = result.stdout.str().split("test_buggy", 2)[-1]
    assert "AssertionError: diagnosis: dU is transposed" in failure


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("no_colon_here", "--gradcheck-impl no_colon_here: expected FILE.py[:FUNC]",
                 id="no-colon"),
    pytest.param("missing.py:f", "--gradcheck-impl missing.py:f: no such file 'missing.py'",
                 id="no-file"),
])
def test_a_bad_spec_is_a_usage_error(pytester, spec, message):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_suite_that_does_not_use_it_imports_no_numpy_or_jax(tmp_path):
    """pytest loads the plugin in every run (entry point): it must cost nothing."""
    (tmp_path / "test_plain.py").write_text(textwrap.dedent("""
        import sys

        def test_nothing_heavy_loaded(request):
            assert request.config.pluginmanager.hasplugin("gradcheck")
            heavy = [m for m in ("numpy", "jax", "matplotlib", "gradcheck.check")
                     if m in sys.modules]
            assert heavy == []
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:hypothesispytest", "-p", "no:xdist", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_the_battery_checks_a_cell_named_with_gradcheck_cell(pytester):
    lstm = f"{IMPLS / 'cells' / 'lstm_loop.py'}:loss_and_grads"
    ok = pytester.runpytest_inprocess(f"--gradcheck-impl={lstm}", "--gradcheck-cell", "lstm",
                                      "-k", "windows_short_last or act_identity")
    ok.assert_outcomes(passed=2)
    bad = pytester.runpytest_inprocess(f"--gradcheck-impl={lstm}", "-k", "windows_short_last")
    bad.assert_outcomes(failed=1)                   # an LSTM checked as the RNN it is not
    assert "missing 1 required positional argument: 'c0'" in bad.stdout.str()


def test_an_unknown_gradcheck_cell_is_a_usage_error(pytester):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={CORRECT}", "--gradcheck-cell",
                                          "cnn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--gradcheck-cell cnn: expected one of rnn, lstm, gru" in result.stderr.str()
