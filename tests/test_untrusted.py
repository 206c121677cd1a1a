"""Tests of gradcheck.untrusted: whatever an implementation does is a verdict, not a crash.

Each broken implementation of ``tests/impls/broken.py`` breaks the contract one way;
it is checked through the API (``gradcheck.check``) and through the command line
(``--impl FILE:FUNC --json``), and the report must name the problem.
"""
import re

import numpy as np
import pytest

import gradcheck
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from gradcheck.untrusted import GRAD_NAMES, call_impl, load_impl
from tests.helpers import SMALL, small_data
from tests.impls import broken, correct
from tests.test_cli import IMPLS, SMALL_FLAGS, strict_json

BROKEN_FILE = IMPLS / "broken.py"
CORRECT_FILE = IMPLS / "correct.py"
OUTPUTS = GRAD_NAMES + ("loss", "h_last")
# The sensitivities promised in gradcheck/tolerances.py: relative errors a check must
# catch per dtype, and a rounding-sized one it must accept in float64.
MUST_FAIL = {"float64": 1e-6, "float32": 1e-3}
ROUNDING_SIZED = 1e-9

# (function in broken.py, name of the result that must fail, regex on its message)
BROKEN = [
    pytest.param("raises", "exception",
                 r"raised RuntimeError: deliberate failure .* in raises", id="raises"),
    pytest.param("exits", "exception", r"raised SystemExit: 3", id="sys-exit"),
    pytest.param("wrong_signature", "exception",
                 r"^cannot be called the way the contract calls it, wrong_signature\(params, x, "
                 r"y, h0, loss=\.\.\., activations=\.\.\., reduction=\.\.\.\): TypeError: .*"
                 r"unexpected keyword argument 'loss'; its signature is \(params, x, y, h0, "
                 r"lossfn='l2'\)$", id="wrong-signature"),
    pytest.param("raises_type_error", "exception",
                 r"^raised TypeError: object of type 'int' has no len\(\) at broken.py:\d+ in "
                 r"raises_type_error$", id="type-error-inside"),
    pytest.param("nan_grad", "nan", r"NaN or inf in W2$", id="nan-in-W2"),
    pytest.param("inf_loss", "nan", r"NaN or inf in loss$", id="inf-loss"),
    pytest.param("transposed_W2", "shape",
                 r"grads\['W2'\] has shape \(3, 4\); expected \(4, 3\)", id="W2-transposed"),
    pytest.param("transposed_h_last", "shape",
                 r"h_last has shape \(3, 4\); expected \(B, R\) = \(4, 3\)",
                 id="h_last-transposed"),
    pytest.param("missing_U", "missing_grad", r"grads has keys W1, b1, W2, b2, W3, b3, x, h0; "
                 r"expected W1, b1, W2, U, b2, W3, b3, x, h0 \(missing U\)$", id="missing-U"),
    pytest.param("returns_list", "return_value", r"returned list; expected a tuple",
                 id="returns-list"),
    pytest.param("returns_pair", "return_value", r"returned a tuple of 2; expected a tuple",
                 id="returns-2-tuple"),
    pytest.param("returns_none", "return_value", r"returned NoneType", id="returns-none"),
    pytest.param("grads_not_dict", "return_value", r"grads of type list; expected a dict",
                 id="grads-not-dict"),
    pytest.param("string_loss", "return_value", r"loss of type str; expected a float",
                 id="loss-string"),
    pytest.param("numeric_string_loss", "return_value", r"loss of type str; expected a float",
                 id="loss-numeric-string"),
    pytest.param("modifies_x", "inputs_modified", r"modified its input x in place",
                 id="modifies-x"),
    pytest.param("modifies_U", "inputs_modified", r"modified its input U in place",
                 id="modifies-U"),
]


def _problem(results, name):
    """The failing results called ``name`` (a problem or an array)."""
    return [r for r in results if r["name"] == name and not r["passed"]]


@pytest.mark.parametrize(("func", "problem", "message"), BROKEN)
def test_broken_impl_fails_through_the_api(func, problem, message):
    report = gradcheck.check(getattr(broken, func), **SMALL)
    assert report.passed is False
    found = _problem(report.to_dict()["results"], problem)
    assert found, report.format_table()
    assert any(re.search(message, r["message"]) for r in found), found


@pytest.mark.parametrize(("func", "problem", "message"), BROKEN)
def test_broken_impl_fails_through_the_cli(capfd, func, problem, message):
    code = main(["--interval", "3", *SMALL_FLAGS, "--impl", f"{BROKEN_FILE}:{func}", "--json"])
    out, _ = capfd.readouterr()
    assert code == ExitCode.FAILED
    doc = strict_json(out)
    assert doc["passed"] is False
    found = _problem(doc["results"], problem)
    assert found and all(r["oracle"] == "contract" for r in found)
    assert any(re.search(message, r["message"]) for r in found), found


def test_nan_in_a_gradient_is_also_counted_by_the_comparisons():
    report = gradcheck.check(broken.nan_grad, **SMALL)
    w2 = [r for r in report.results if r.name == "W2"]
    assert {r.oracle for r in w2} == {"jax", "fd"}
    assert all(not r.passed and r.nonfinite == 1 and r.worst_index == [0, 0] for r in w2)
    assert {r.name for r in report.failures} == {"nan", "W2"}


@pytest.mark.parametrize("func", ["modifies_x", "modifies_U"])
def test_modified_inputs_is_the_only_failure_when_the_numbers_are_right(func):
    report = gradcheck.check(getattr(broken, func), **SMALL)
    assert [r.name for r in report.failures] == ["inputs_modified"]


def test_an_exception_ends_the_check_without_judging_arrays():
    report = gradcheck.check(broken.raises, seq_len=7, **SMALL)
    assert [(r.name, r.window) for r in report.results] == [("exception", 1)]


# ------------------------------------------------------------------ output of the impl

def test_noisy_impl_keeps_stdout_one_json_document(capfd):
    code = main(["--interval", "3", *SMALL_FLAGS, "--impl", f"{BROKEN_FILE}:noisy", "--json"])
    out, err = capfd.readouterr()
    assert code == ExitCode.OK
    assert strict_json(out)["passed"] is True
    assert "noise from print()" in err and "junk written to fd 1" in err


def test_noisy_impl_output_precedes_the_table(capfd):
    code = main(["--interval", "3", *SMALL_FLAGS, "--impl", f"{BROKEN_FILE}:noisy"])
    out, _ = capfd.readouterr()
    assert code == ExitCode.OK
    assert out.splitlines()[0].startswith("PASSED")


# ------------------------------------------------------------------ correct impls pass

CORRECT_SPECS = [
    pytest.param("reference:loss_and_grads", id="module-reference"),
    pytest.param("tests.impls.correct:loop_bptt", id="module-loop"),
    pytest.param(f"{CORRECT_FILE}:loop_bptt", id="file-loop"),
    pytest.param(f"{CORRECT_FILE}:wrapped", id="file-wrapped"),
    pytest.param(f"{IMPLS / 'with_dataclass.py'}", id="file-alone-means-loss_and_grads"),
]


@pytest.mark.parametrize("spec", CORRECT_SPECS)
def test_correct_impl_passes_through_the_cli(capfd, spec):
    code = main(["--interval", "3", "--seq-len", "5", *SMALL_FLAGS, "--impl", spec, "--json"])
    out, _ = capfd.readouterr()
    assert code == ExitCode.OK
    doc = strict_json(out)
    assert doc["passed"] is True
    assert doc["impl"].endswith(spec.rpartition(":")[2] or spec)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("activations", [("tanh", "tanh", "identity"),
                                         ("relu", "sigmoid", "tanh")], ids="-".join)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_independent_loop_impl_passes_through_the_api(reduction, activations, dtype):
    report = gradcheck.check(correct.loop_bptt, seq_len=5, activations=activations,
                             reduction=reduction, dtype=dtype, **SMALL)
    assert report.passed, report.format_table()


def test_impl_file_defining_a_dataclass_loads_and_passes(capfd):
    spec = f"{IMPLS / 'with_dataclass.py'}:loss_and_grads"
    code = main(["--interval", "3", *SMALL_FLAGS, "--impl", spec, "--json"])
    out, err = capfd.readouterr()
    assert code == ExitCode.OK, err
    assert strict_json(out)["passed"] is True


def test_load_impl_returns_the_named_function():
    assert load_impl(f"{BROKEN_FILE}:raises").__name__ == "raises"
    assert load_impl("tests.impls.correct:loop_bptt") is correct.loop_bptt


# ------------------------------------------------------------------ the checker's power

@pytest.mark.parametrize("name", OUTPUTS)
def test_float64_one_output_off_by_1e6_fails_on_that_output(name):
    report = gradcheck.check(broken.scaled(name, 1 + MUST_FAIL["float64"]), **SMALL)
    assert {r.name for r in report.failures} == {name}, report.format_table()
    if name in GRAD_NAMES:
        assert {r.oracle for r in report.failures} == {"jax", "fd"}
        assert all(r.ratio > 1.0 for r in report.failures)


@pytest.mark.parametrize("name", OUTPUTS)
def test_float32_one_output_off_by_1e3_fails_on_that_output(name):
    report = gradcheck.check(broken.scaled(name, 1 + MUST_FAIL["float32"]), dtype="float32",
                             **SMALL)
    assert {r.name for r in report.failures} == {name}, report.format_table()


@pytest.mark.parametrize("name", OUTPUTS)
def test_float64_one_output_off_by_1e9_passes(name):
    report = gradcheck.check(broken.scaled(name, 1 + ROUNDING_SIZED), **SMALL)
    assert report.passed, report.format_table()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss, activations", [("l2", "tanh,tanh,identity"),
                                               ("ce", "sigmoid,relu,identity"),
                                               ("bce", "tanh,sigmoid,identity")],
                         ids=["l2", "ce", "bce"])
def test_reference_passes(dtype, loss, activations):
    report = gradcheck.check(dtype=dtype, loss=loss, activations=activations, seq_len=5,
                             **SMALL)
    assert report.passed, report.format_table()
    assert report.to_dict()["config"]["dtype"] == dtype


# ------------------------------------------------------------------ call_impl directly

def test_call_impl_gives_the_impl_copies_and_keeps_the_checkers_arrays():
    config, data = small_data(interval=3)
    before = {n: a.copy() for n, a in dict(data.params, x=data.x, h0=data.h0).items()}
    out = call_impl(broken.modifies_U, data.params, data.x, data.y, data.h0, config.model_options)
    assert [p.name for p in out.problems] == ["inputs_modified"]
    for n, a in dict(data.params, x=data.x, h0=data.h0).items():
        np.testing.assert_array_equal(a, before[n])


def test_call_impl_returns_float64_arrays_of_every_gradient():
    config, data = small_data(interval=3, dtype="float32")
    out = call_impl(correct.wrapped, data.params, data.x, data.y, data.h0, config.model_options)
    assert out.problems == []
    assert set(out.grads) == set(GRAD_NAMES)
    assert all(g.dtype == np.float64 for g in out.grads.values())
    assert isinstance(out.loss, float) and out.h_last.shape == data.h0.shape


def test_a_warning_inside_the_implementation_is_not_a_verdict():
    """pytest runs this suite with warnings as errors: a warning the code under test
    triggers (NumPy's spurious "invalid value encountered in matmul" was one) must not
    turn into an exception verdict against a correct implementation."""
    import warnings

    import gradcheck
    from gradcheck._reference import reference

    def warns(params, x, y, h0, **options):
        warnings.warn("a spurious floating-point warning", RuntimeWarning)
        return reference.loss_and_grads(params, x, y, h0, **options)

    with pytest.warns(RuntimeWarning, match="spurious"):          # shown, not raised
        report = gradcheck.check(warns, interval=2, batch=2, input_size=2, hidden_size=2,
                                 state_size=2, output_size=2)
    assert report.passed, report.format_table()
