"""The checker's power: every zoo bug is rejected, on the arrays it really breaks,
with a diagnosis naming its class; the CLI demonstrates them."""
import json
import re

import pytest

import gradcheck
from gradcheck import zoo
from gradcheck.candidates import CANDIDATES
from gradcheck.cli import main
from gradcheck.kinds import KINDS
from tests.helpers import assert_figures_agree

# What each diagnosis must say (a regex), per bug.
DIAGNOSES = {
    "accumulator_not_reset": r"window 2 disagrees.*accumulator is not reset",
    "stale_h0": r"window 2 disagrees.*state other than the h0 passed in",
    "no_dh_next": r"not passed back through time: W1, b1, W2, U, b2, x, h0 disagree at every "
                  r"step but the last",
    "dh_next_overwrites": r"not passed back through time",
    "dU_skips_first_step": r"dU misses step 1's term h0\^T d2_1",
    "dU_transposed": r"dU is transposed",
    "forward_U_transposed": r"forward pass is wrong.*match finite differences of its own loss",
    "db3_off_by_1e6": r"db3 is off by a constant factor 0\.999999.*relative -1\.0e-06",
    "relu_grad_from_output": r"RNN activation f2 = relu is wrong",
    "tanh_grad_of_output": r"RNN activation f2 = tanh is wrong",
    "sigmoid_grad_from_input": r"first dense layer's backward is wrong.*f1 = sigmoid",
    "f1_grad_forgotten": r"first dense layer's backward is wrong",
    "bce_extra_sigmoid_grad": r"dL/dz3, is wrong for loss bce",
    "ce_grad_without_onehot": r"dL/dz3, is wrong for loss ce",
    "nan_backward_off_by_one": r"produces NaN or inf.*x",
    "modifies_h0": r"writes into its inputs.*h0",
    "dW3_uses_h_prev": r"Only dW3 disagrees",
    "dW2_not_accumulated": r"dW2 holds only step 1's contribution.*accumulated",
    "dx_time_reversed": r"dx is stored in reversed time order",
    "dh0_zeros": r"dh0 is returned as zeros",
    "mean_over_time_and_batch": r"loss and every gradient are off by the same factor 0\.333333",
    "loss_not_reduced": r"loss value is wrong but every gradient is right",
    "h_last_from_backward_loop": r"h_last is wrong",
    "dU_first_from_last_state": r"Only dU disagrees: dU's term of the window's first step is "
                                r"built from the wrong state.*LAST state.*in step 1 alone",
    "dU_first_from_h1": r"Only dU disagrees: dU's term of the window's first step is built "
                        r"from the wrong state: h_1.*in step 1 alone",
    "dU_from_h_t": r"Only dU disagrees at steps \[1, 2, 3\]: dU is built from h_t instead of "
                   r"h_\{t-1\}",
    "dh_next_U_untransposed": r"through U instead of U\^T.*transposed U in the state's "
                              r"derivative.*reproduces the numbers",
    "dh_next_skips_f2_grad": r"W1, b1, W2, U, b2, x, h0 disagree: the state's derivative is "
                             r"passed back without f2'.*reproduces the numbers",
    "dx_skips_f1_grad": r"Only dx disagrees at steps \[1, 2, 3\]: dx misses f1'\(z1\).*"
                        r"reproduces the numbers",
}

# The kind of each diagnosis (kinds.py): what the grader groups by, whatever the words.
DIAGNOSIS_KINDS = {
    "accumulator_not_reset": "state_accumulator_not_reset", "stale_h0": "stale_state",
    "no_dh_next": "dh_next_not_passed", "dh_next_overwrites": "dh_next_not_passed",
    "dU_skips_first_step": "dU_first_step", "dU_transposed": "transposed",
    "forward_U_transposed": "forward", "db3_off_by_1e6": "scale_one",
    "relu_grad_from_output": "f2_derivative", "tanh_grad_of_output": "f2_derivative",
    "sigmoid_grad_from_input": "f1_derivative", "f1_grad_forgotten": "f1_derivative",
    "bce_extra_sigmoid_grad": "output_derivative", "ce_grad_without_onehot": "output_derivative",
    "nan_backward_off_by_one": "nan", "modifies_h0": "inputs_modified",
    "dW3_uses_h_prev": "dW3_from_h_prev", "dW2_not_accumulated": "not_accumulated",
    "dx_time_reversed": "dx_reversed", "dh0_zeros": "dh0_zeros",
    "mean_over_time_and_batch": "reduction", "loss_not_reduced": "loss_value",
    "h_last_from_backward_loop": "h_last", "dU_first_from_last_state": "dU_first_step",
    "dU_first_from_h1": "dU_first_step", "dU_from_h_t": "dU_from_h_t",
    "dh_next_U_untransposed": "dh_next_through_U", "dh_next_skips_f2_grad": "dh_next_skips_f2",
    "dx_skips_f1_grad": "dx_skips_f1",
}


def test_every_bug_has_a_diagnosis_test():
    assert set(DIAGNOSES) == set(zoo.BUGS) == set(DIAGNOSIS_KINDS)
    assert set(DIAGNOSIS_KINDS.values()) <= set(KINDS)


@pytest.mark.parametrize("name", sorted(zoo.BUGS))
def test_bug_is_rejected_on_the_arrays_it_breaks(name):
    bug = zoo.BUGS[name]
    report = gradcheck.check(bug.make(), **bug.config)
    assert not report.passed
    failed = {r.name for r in report.results if not r.passed}
    assert failed == set(bug.breaks), report.format_table()
    assert report.diagnosis is not None
    assert re.search(DIAGNOSES[name], report.diagnosis), report.diagnosis
    finding = report.finding
    assert finding.kind == DIAGNOSIS_KINDS[name] and finding.text == report.diagnosis
    assert finding.evidence["windows"] == sorted({r.window for r in report.failures})
    named = {r.name for r in report.failures if r.oracle != "contract"}
    assert set(finding.evidence["arrays"]) == named
    if "candidate" in finding.evidence:      # the candidate that reproduced the numbers
        assert CANDIDATES[finding.evidence["candidate"]].kind == finding.kind
        assert 0 <= finding.evidence["factor"] <= 1
    assert_figures_agree(finding)


@pytest.mark.parametrize("name", ["no_dh_next", "dh_next_overwrites"])
def test_attribution_names_every_step_but_the_last(name):
    report = gradcheck.check(zoo.BUGS[name].make(), interval=4, batch=8)
    u = next(r for r in report.results if r.name == "U" and r.oracle == "jax")
    assert u.steps == [1, 2, 3]


@pytest.mark.parametrize("name", ["no_dh_next", "dh_next_overwrites"])
def test_diagnosis_judges_steps_within_the_first_window_of_several(name):
    """Windows of 3, 3 and 1 steps: the pattern is 'every step but the last' of each
    window, not of the sequence (the 1-step window has no dh_next to miss)."""
    report = gradcheck.check(zoo.BUGS[name].make(), interval=3, seq_len=7, batch=8)
    assert re.search(DIAGNOSES["no_dh_next"], report.diagnosis), report.diagnosis


def test_diagnosis_names_the_disagreeing_steps_of_every_window():
    report = gradcheck.check(zoo.BUGS["dW3_uses_h_prev"].make(), interval=3, seq_len=6, batch=8)
    assert "at steps [1, 2, 3, 4, 5, 6]" in report.diagnosis, report.diagnosis


def test_attribution_names_the_window_and_its_steps():
    bug = zoo.BUGS["accumulator_not_reset"]
    report = gradcheck.check(bug.make(), interval=3, seq_len=7, batch=8)
    windows = {r.window for r in report.results if not r.passed}
    assert windows == {2, 3}


@pytest.mark.parametrize("name", ["dU_skips_first_step", "accumulator_not_reset", "stale_h0"])
def test_bugs_hidden_from_a_zero_state_single_window_check_are_caught(name):
    """The default check uses a random h0, so even one window shows dU_skips_first_step;
    the stateful bugs need --seq-len beyond the interval, which their demo sets."""
    bug = zoo.BUGS[name]
    assert not gradcheck.check(bug.make(), **bug.config).passed


def test_list_bugs_prints_every_bug_with_its_doc(capsys):
    assert main(["--list-bugs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(zoo.BUGS)
    for line, bug in zip(out, zoo.list_bugs()):
        assert line.startswith(bug.name) and line.endswith(bug.doc)


def test_bug_flag_runs_the_demonstration(capsys):
    assert main(["--bug", "no_dh_next", "--batch", "8", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    assert doc["config"]["batch"] == 8
    assert "not passed back through time" in doc["diagnosis"]
    assert doc["diagnosis_kind"] == "dh_next_not_passed"
    detail = doc["diagnosis_detail"]
    assert detail["kind"] == "dh_next_not_passed" and detail["group"] == "conceptual"
    assert detail["hint"] == KINDS["dh_next_not_passed"].hint
    assert detail["evidence"]["candidate"] == "no_dh_next"
    assert detail["evidence"]["steps"]["U"] == [1, 2]


def test_a_passing_check_has_no_diagnosis_in_its_json():
    report = gradcheck.check(batch=2)
    assert report.passed and report.finding is None
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["diagnosis"] is None and doc["diagnosis_kind"] is None
    assert doc["diagnosis_detail"] is None


def test_bug_flag_uses_the_bug_demo_config_unless_overridden(capsys):
    assert main(["--bug", "relu_grad_from_output", "--batch", "4", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["activations"] == ["tanh", "relu", "identity"]


def test_unknown_bug_is_a_usage_error(capsys):
    assert main(["--bug", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gradcheck: error: --bug nosuch: expected one of the names --list-bugs prints"]


def test_bug_and_impl_together_is_a_usage_error(capsys):
    assert main(["--bug", "no_dh_next", "--impl", "reference:loss_and_grads"]) == 2
    assert "choose one implementation" in capsys.readouterr().err


def test_relu_kink_is_excluded_and_counted_not_failed(monkeypatch):
    """A pre-activation exactly at a relu kink: finite differences straddle it, so the
    elements it touches are reported as not differentiable there, and the check passes."""
    import sys

    check_module = sys.modules["gradcheck.check"]
    real = check_module.make_data

    def on_the_kink(config):
        data = real(config)
        z1 = data.x[0, 0] @ data.params["W1"] + data.params["b1"]
        data.params["b1"][0] -= z1[0]                 # z1[t=0, b=0, h=0] ~ 0, within rounding
        return data

    monkeypatch.setattr(check_module, "make_data", on_the_kink)
    report = gradcheck.check(interval=2, activations=("relu", "tanh", "identity"), batch=4,
                             input_size=3, hidden_size=4, state_size=3, output_size=5)
    assert report.passed, report.format_table()
    excluded = {r.name: r.excluded for r in report.results if r.oracle == "fd" and r.excluded}
    assert excluded.get("b1", 0) >= 1 and excluded.get("x", 0) >= 1, excluded
    assert "relu kinks:" in report.format_table()
