"""gradcheck grade with a battery whose tests name a cell (``cell = "lstm"``): the
windows carry the cell's every state from the oracle's trajectory, and the items are
those of the cell's contract (an LSTM's c0, its forward's c_last)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck.errors import ExitCode
from gradcheck.grade.battery import FORWARD, items, load_battery

HERE = Path(__file__).resolve().parent
LSTM_LOOP = HERE / "impls" / "cells" / "lstm_loop.py"
GRU_LOOP = HERE / "impls" / "cells" / "gru_loop.py"
TIMEOUT = "3"          # seconds per call: the tiny battery's calls take milliseconds

# Small sizes; windows of 2 (the state carried twice), and one test in float32.
LSTM_BATTERY = """\
[defaults]
batch = 3
input_size = 2
hidden_size = 3
state_size = 3
output_size = 2
cell = "lstm"

[[test]]
name = "lstm_windows"
interval = 2
seq_len = 5

[[test]]
name = "lstm_f32"
points = 5
interval = 2
seq_len = 3
dtype = "float32"
"""

# Students' LSTM bugs, each one line of lstm_loop.py changed, and the zoo kind naming it.
LSTM_MUTANTS = {
    "lstm_no_dc_next": (("        dc = dh * o * (1 - tc ** 2) + dc_next",
                    "        dc = dh * o * (1 - tc ** 2)"), "lstm_no_dc_next"),
    "lstm_c_last_wrong": (("    return total, grads, h, c", "    return total, grads, h, c * 0"),
                            None),
}


def _graded(where, battery, correct, mutants):
    """{file stem: submission's JSON}: the correct file and each of its one-line mutants,
    graded with ``battery`` (TOML text)."""
    (where / "battery.toml").write_text(battery)
    text = correct.read_text()
    files = [where / f"{correct.stem}_correct.py"]
    files[0].write_text(text)
    for name, ((line, bug), _) in mutants.items():
        assert text.count(line) == 1, line
        files.append(where / f"{name}.py")
        files[-1].write_text(text.replace(line, bug))
    proc = subprocess.run([sys.executable, "-m", "gradcheck", "grade", *map(str, files),
                           "--battery", str(where / "battery.toml"), "--format", "json",
                           "--timeout", TIMEOUT, "--seed", "5"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    return {Path(s["submission"]).stem: s for s in json.loads(proc.stdout)["submissions"]}

GRU_BATTERY = """\
[defaults]
batch = 3
input_size = 2
hidden_size = 3
state_size = 3
output_size = 2
cell = "gru"
interval = 2
seq_len = 3

[[test]]
name = "gru_before"

[[test]]
name = "gru_after"
reset_after = true
"""

GRU_MUTANTS = {
    "gru_no_direct_path": (("        dh_prev = dh * z", "        dh_prev = 0 * dh"),
                           "gru_no_direct_path"),
}


@pytest.fixture(scope="module")
def lstm_graded(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("lstm"), LSTM_BATTERY, LSTM_LOOP, LSTM_MUTANTS)


@pytest.fixture(scope="module")
def gru_graded(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("gru"), GRU_BATTERY, GRU_LOOP, GRU_MUTANTS)


def test_lstm_battery_items_are_the_cells_contract(tmp_path):
    (tmp_path / "b.toml").write_text(LSTM_BATTERY)
    test = load_battery(tmp_path / "b.toml")[0]
    assert items(test) == (FORWARD, "W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x", "h0", "c0")


def test_correct_lstm_gets_full_marks(lstm_graded):
    s = lstm_graded["lstm_loop_correct"]
    assert s["passed"] and s["score"] == s["max_score"] == 15, s
    assert s["diagnosis"] is None and s["problem"] is None
    assert all(set(t["items"]) >= {"Wx", "Wh", "c0"} for t in s["tests"])


def test_lstm_zoo_bug_loses_marks_with_its_diagnosis(lstm_graded):
    s = lstm_graded["lstm_no_dc_next"]
    assert s["score"] < s["max_score"], s
    for t in s["tests"]:
        assert "c0" in t["failing"] and FORWARD not in t["failing"], t
        assert t["diagnosis_kind"] == LSTM_MUTANTS["lstm_no_dc_next"][1], t
    assert "dc_next" in s["diagnosis"]


def test_a_wrong_c_last_loses_the_forward(lstm_graded):
    """c_last is graded: the next window starts from the oracle's, so only the forward
    item of each test is lost."""
    s = lstm_graded["lstm_c_last_wrong"]
    for t in s["tests"]:
        assert t["failing"] == [FORWARD], t
        assert "c_last" in t["output"], t["output"]


@pytest.mark.parametrize(("name", "extra"), [("gru_before", ()), ("gru_after", ("bh",))])
def test_correct_gru_gets_full_marks_in_both_forms(gru_graded, name, extra):
    s = gru_graded["gru_loop_correct"]
    t = next(t for t in s["tests"] if t["name"] == name)
    assert t["score"] == t["max_score"] == 10, t
    assert set(t["items"]) == {FORWARD, "W1", "b1", "Wx", "Wh", "b", "W3", "b3", "x",
                               "h0", *extra}


def test_gru_zoo_bug_loses_marks_with_its_diagnosis(gru_graded):
    s = gru_graded["gru_no_direct_path"]
    assert all(t["score"] < t["max_score"] for t in s["tests"]), s
    before = next(t for t in s["tests"] if t["name"] == "gru_before")
    assert before["diagnosis_kind"] == GRU_MUTANTS["gru_no_direct_path"][1], before
    assert "h0" in before["failing"] and FORWARD not in before["failing"]
