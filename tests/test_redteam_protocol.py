"""Red-team tests of the checker's protocol with its worker (issue 16, items 1, 4, 5, 6).

Each test is one attack by code written to cheat (tests/impls/hostile/protocol.py) and
the verdict it must end in. Whatever the attack, a wrong implementation never exits 0,
the run never hangs and never ends in a traceback. They run as root and as an ordinary
user (CI runs them twice, ``-m redteam``); what the kernel lets only one of them do is
said where a test depends on it.
"""
import json
import os
import subprocess
import sys
import time

import pytest

import gradcheck
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from tests.helpers import SMALL
from tests.test_cli import IMPLS, SMALL_FLAGS, strict_json

pytestmark = pytest.mark.redteam
pytest_plugins = ["pytester"]

ATTACKS = IMPLS / "hostile" / "protocol.py"
ROOT = IMPLS.parent.parent


def _spec(func):
    return f"{ATTACKS}:{func}"


def _flags(func, *more, timeout="10"):
    return ["--interval", "3", *SMALL_FLAGS, "--json", "--timeout", timeout, *more,
            "--impl", _spec(func)]


def _failed_with(capfd, argv, names):
    """Runs the command line in this process; asserts exit 1, a strict JSON document that
    does not pass, no traceback, and a failing result for each of ``names``; the doc."""
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == ExitCode.FAILED, err
    assert "Traceback" not in err
    doc = strict_json(out)
    assert doc["passed"] is False
    failing = {r["name"] for r in doc["results"] if not r["passed"]}
    assert set(names) <= failing, doc["results"]
    return doc


# ------------------------------------------------------------------ 1. what is compared

GRADS = ("W1", "b1", "W2", "U", "b2", "W3", "b3", "x", "h0")


@pytest.mark.parametrize(("func", "missing"), [
    pytest.param("claims_no_grads", GRADS, id="answer-says-no-grads"),
    pytest.param("loss_alone", GRADS + ("h_last",), id="loss-alone-on-the-pipe"),
    pytest.param("forward_alone", GRADS, id="loss-and-h_last-on-the-pipe-then-exit-0"),
    pytest.param("grads_alone", ("loss", "h_last"), id="grads-without-loss-or-h_last"),
])
def test_an_answer_lacking_arrays_fails_naming_each(capfd, func, missing):
    doc = _failed_with(capfd, _flags(func), ["missing_grad" if m in GRADS else "return_value"
                                             for m in missing])
    messages = " ".join(r["message"] for r in doc["results"] if not r["passed"])
    for name in missing:
        assert (f"the answer carries no {name}, so it could not be compared" in messages
                or f"grads has no {name!r}" in messages), messages
    compared = {r["name"] for r in doc["results"] if r["oracle"] in ("jax", "fd")}
    assert not compared & set(missing)


@pytest.mark.parametrize("func", ["claims_no_grads", "loss_alone", "grads_alone"])
def test_the_library_check_fails_an_answer_lacking_arrays(func):
    report = gradcheck.check(_spec(func), interval=3, timeout=10, **SMALL)
    assert not report.passed and report.status == "failed"


def test_skipped_gradients_are_the_only_ones_left_out():
    """--skip x,h0 is the user's word, not the worker's: the rest must all be there."""
    report = gradcheck.check(_spec("claims_no_grads"), interval=3, timeout=10,
                             skip=("x", "h0"), **SMALL)
    assert not report.passed
    named = {r.message for r in report.failures if r.oracle == "contract"}
    assert any("'U'" in m or " U," in m for m in named), named
    assert not any("'x'" in m or "'h0'" in m for m in named), named


@pytest.mark.parametrize("func", ["claims_no_grads", "forward_alone"])
def test_the_pytest_battery_fails_an_answer_lacking_arrays(pytester, func):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={_spec(func)}", "-k", "loss_ce")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("func", ["declines_everything", "declines_by_forgery"])
def test_a_pytest_battery_where_every_configuration_is_declined_fails(pytester, func):
    result = pytester.runpytest_inprocess(f"--gradcheck-impl={_spec(func)}", "-k",
                                          "loss_ce or all_sizes_1")
    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "declined every configuration of the battery that ran (2): nothing was checked" \
        in result.stdout.str()


def test_the_regression_check_fails_an_answer_lacking_arrays():
    from gradcheck.regression import measure
    doc = measure({"small": dict(interval=3, **SMALL)}, impl=_spec("claims_no_grads"))
    entry = doc["configs"]["small"]
    assert entry["passed"] is False
    assert not any(key.endswith(("/U/jax", "/U/fd")) for key in entry["results"])


def test_grade_gives_no_gradient_points_to_an_answer_lacking_them(tmp_path):
    from gradcheck.grade.cli import main as grade
    out = tmp_path / "grades.json"
    code = grade([f"{ATTACKS}:claims_no_grads", "--interval", "3", *SMALL_FLAGS,
                  "--format", "json", "--output", str(out), "--timeout", "10",
                  "--jobs", "1", "--seed", "1", "--allow-import", "reference"])
    assert code == ExitCode.OK
    doc = json.loads(out.read_text())
    (sub,) = doc["submissions"]
    assert sub["score"] < sub["max_score"]
    (test,) = sub["tests"]
    for name in GRADS:
        assert test["items"][name] == 0, test["items"]


def test_judge_names_every_expected_array_an_answer_lacks():
    """The rule in one place (check and grade judge through it): an answer without
    problems that lacks an expected array, skipped ones aside, gets a failing contract
    result naming it."""
    import numpy as np
    from gradcheck.judge import judge_window
    from gradcheck.oracles import Expected
    from gradcheck.untrusted import Outcome
    expected = [Expected(n, "jax", "jax", np.zeros(2)) for n in ("loss", "h_last", "U", "x")]
    out = Outcome(0.0, {"U": np.zeros(2)}, None, [])
    results = judge_window(1, out, expected, {}, "float64", skip=("x",))
    failing = [(r.name, r.message) for r in results if not r.passed]
    assert failing == [("return_value", "the answer carries no h_last, so it could not be "
                                        "compared")]
