"""Tests of gradcheck tour: the four answers come from measurements of the reference."""
import copy

import pytest

from gradcheck import tour
from gradcheck._reference import reference
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from tests.helpers import SMALL

INTERVALS = (1, 2, 3, 8)


@pytest.fixture(scope="module", params=[("tanh", "tanh", "identity"),
                                        ("relu", "sigmoid", "identity")],
                ids=["same-f1-f2", "different-f1-f2"])
def measured(request):
    return tour.measure(INTERVALS, sizes=SMALL, activations=request.param)


def test_every_layer_runs_interval_steps(measured):
    for row in measured["rows"]:
        assert {name: steps for name, (_, steps) in row["layers"].items()} == \
            dict.fromkeys(("dense1", "rnn", "dense2"), row["interval"])
        assert row["layers"]["rnn"][0] == row["interval"]      # one call per step


def test_the_instrumentation_is_removed_afterwards(measured):
    import importlib
    network = tour._NETWORK
    activations = importlib.import_module(f"{reference.__name__}.activations")
    losses = importlib.import_module(f"{reference.__name__}.losses")
    assert network.ACTIVATIONS is activations.ACTIVATIONS
    assert network.loss_and_delta is losses.loss_and_delta


def test_cache_is_linear_at_the_bytes_the_shapes_predict(measured):
    rows = measured["rows"]
    assert all(r["cache_bytes"] == r["predicted_bytes"] for r in rows)
    B, I, H, R, O = (SMALL[k] for k in ("batch", "input_size", "hidden_size", "state_size",
                                         "output_size"))
    per_step = 8 * B * (I + 2 * H + 2 * R + O)
    assert [r["cache_bytes"] for r in rows] == [8 * B * R + T * per_step for T in INTERVALS]


def test_one_set_of_weights(measured):
    assert all(r["weights_in_cache"] == [] for r in measured["rows"])
    assert all(set(r["grads_per_weight"].values()) == {1} for r in measured["rows"])
    assert measured["per_step_sum"]["max_rel_diff"] < 1e-12


def test_state_derivative_memory_does_not_grow(measured):
    slope, _ = tour._working_growth(measured["rows"])
    assert slope < 0.01 * 8 * SMALL["batch"] * SMALL["state_size"]


def test_the_text_answers_from_the_numbers(measured):
    text = tour.format_tour(measured)
    for q in ("1. Do we need to iterate", "2. Does every layer", "3. Do we need",
              "4. Do we need to cache"):
        assert q in text
    assert "answer: Yes: every layer ran exactly interval steps" in text
    assert "equals the shapes' prediction" in text
    doctored = copy.deepcopy(measured)
    doctored["rows"][1]["cache_bytes"] += 8
    doctored["rows"][2]["layers"]["rnn"] = (1, 1)
    doctored["rows"][-1]["weights_in_cache"] = ["h~U"]
    for r in doctored["rows"]:
        r["backward_working_bytes"] += r["interval"] * 8 * SMALL["batch"] * SMALL["state_size"]
    text = tour.format_tour(doctored)
    assert "DIFFERS from" in text and "NO (measured otherwise)" in text
    assert text.count("measured otherwise") == 3


def test_figure(measured, tmp_path):
    path = tmp_path / "tour.png"
    tour.write_figure(measured, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_bad_plot_path_is_a_usage_error(tmp_path, capsys):
    assert main(["tour", "--plot", str(tmp_path / "t.jpg")]) == ExitCode.USAGE
    assert "expected a FILE.png in an existing folder" in capsys.readouterr().err
