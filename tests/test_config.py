"""Tests of gradcheck.config through the public API: validation, windows, memory."""
import re

import pytest

import gradcheck
from gradcheck import config as config_module
from gradcheck.config import Config, make_config
from tests.helpers import SMALL

ALLOWED_ACTIVATIONS = "each one of tanh, sigmoid, relu, identity"

# (keyword arguments of gradcheck.check, option named, start of the message)
BAD_CALLS = [
    pytest.param({"interval": 0}, "interval", "interval=0: expected an integer >= 1",
                 id="interval-zero"),
    pytest.param({"interval": True}, "interval", "interval=True: expected an integer >= 1",
                 id="interval-bool"),
    pytest.param({"interval": 3.0}, "interval", "interval=3.0: expected an integer",
                 id="interval-float"),
    pytest.param({"interval": "3"}, "interval", "interval='3': expected an integer",
                 id="interval-str"),
    pytest.param({"interval": None}, "interval", "interval=None: expected an integer",
                 id="interval-none"),
    pytest.param({"seq_len": 0}, "seq_len", "seq_len=0: expected an integer >= 1",
                 id="seq-len-zero"),
    pytest.param({"seq_len": False}, "seq_len", "seq_len=False: expected an integer",
                 id="seq-len-bool"),
    pytest.param({"batch": True}, "batch", "batch=True: expected an integer >= 1",
                 id="batch-bool"),
    pytest.param({"batch": -1}, "batch", "batch=-1: expected an integer >= 1",
                 id="batch-negative"),
    pytest.param({"input_size": 0}, "input_size", "input_size=0: expected an integer >= 1",
                 id="input-size-zero"),
    pytest.param({"hidden_size": 2.5}, "hidden_size", "hidden_size=2.5: expected an integer",
                 id="hidden-size-float"),
    pytest.param({"state_size": None}, "state_size", "state_size=None: expected an integer",
                 id="state-size-none"),
    pytest.param({"output_size": 0}, "output_size", "output_size=0: expected an integer >= 1",
                 id="output-size-zero"),
    pytest.param({"loss": "foo"}, "loss", "loss='foo': expected one of l2, ce, bce",
                 id="loss-unknown"),
    pytest.param({"loss": "L2"}, "loss", "loss='L2': expected one of l2, ce, bce",
                 id="loss-case"),
    pytest.param({"activations": ("tanh", "tanh")}, "activations",
                 f"activations='tanh,tanh': expected three names f1,f2,f3, {ALLOWED_ACTIVATIONS}",
                 id="activations-two"),
    pytest.param({"activations": ("tanh", "tanh", "identity", "tanh")}, "activations",
                 "activations='tanh,tanh,identity,tanh': expected three names",
                 id="activations-four"),
    pytest.param({"activations": "tanh,foo,identity"}, "activations",
                 f"activations='tanh,foo,identity': expected three names f1,f2,f3, "
                 f"{ALLOWED_ACTIVATIONS}", id="activations-unknown"),
    pytest.param({"activations": (1, 2, 3)}, "activations",
                 "activations='1,2,3': expected three names", id="activations-not-str"),
    pytest.param({"activations": None}, "activations", "activations=None: expected three names",
                 id="activations-none"),
    pytest.param({"loss": "ce", "output_size": 1}, "output_size",
                 "output_size=1: loss ce is a softmax over the outputs, constant (0) for one "
                 "class: use an output size >= 2", id="ce-one-class"),
    pytest.param({"loss": "ce", "activations": ("tanh", "tanh", "tanh")}, "activations",
                 "activations='tanh,tanh,tanh': loss ce works on logits and needs f3 = identity",
                 id="ce-needs-identity"),
    pytest.param({"loss": "bce", "activations": ("tanh", "tanh", "sigmoid")}, "activations",
                 "activations='tanh,tanh,sigmoid': loss bce works on logits and needs "
                 "f3 = identity", id="bce-needs-identity"),
    pytest.param({"reduction": "avg"}, "reduction", "reduction='avg': expected one of mean, sum",
                 id="reduction-unknown"),
    pytest.param({"dtype": "float16"}, "dtype", "dtype='float16': expected one of float64, "
                 "float32", id="dtype-float16"),
    pytest.param({"seed": -1}, "seed", "seed=-1: expected an integer >= 0", id="seed-negative"),
    pytest.param({"seed": True}, "seed", "seed=True: expected an integer >= 0", id="seed-bool"),
    pytest.param({"seed": 1.5}, "seed", "seed=1.5: expected an integer >= 0", id="seed-float"),
    pytest.param({"mode": "bogus"}, "mode", "mode='bogus': expected one of full, projections",
                 id="mode-unknown"),
    pytest.param({"mode": ""}, "mode", "mode='': expected one of full", id="mode-empty"),
    pytest.param({"impl": "reference"}, "impl",
                 "impl='reference': expected FILE.py[:FUNC] or MODULE:FUNC naming a function",
                 id="impl-string"),
    pytest.param({"impl": 3}, "impl",
                 "impl=3: expected a callable with the loss_and_grads contract, or "
                 "'FILE.py:FUNC' / 'MODULE:FUNC'", id="impl-number"),
    pytest.param({"impl": "nofile.py:f"}, "impl", "impl='nofile.py:f': no such file",
                 id="impl-no-file"),
    pytest.param({"impl": "m:f", "timeout": 0}, "timeout",
                 "timeout=0: expected a number of seconds > 0", id="timeout-zero"),
    pytest.param({"impl": "m:f", "time_budget": "soon"}, "time_budget",
                 "time_budget='soon': expected a number of seconds > 0", id="budget-text"),
    pytest.param({"impl": "m:f", "memory_limit": "4Q"}, "memory_limit",
                 "memory_limit='4Q': expected a size such as 512M or 4G", id="memory-unit"),
    pytest.param({"impl": 42}, "impl", "impl=42: expected a callable", id="impl-int"),
]


@pytest.mark.parametrize(("kwargs", "option", "message"), BAD_CALLS)
def test_bad_option_raises_usage_error_naming_it(kwargs, option, message):
    with pytest.raises(gradcheck.UsageError, match="^" + re.escape(message)) as info:
        gradcheck.check(**{**SMALL, **kwargs})
    assert info.value.option == option


def test_usage_error_is_a_value_error():
    assert issubclass(gradcheck.UsageError, ValueError)
    with pytest.raises(ValueError, match="^batch=0: "):
        gradcheck.check(batch=0)


@pytest.mark.parametrize("activations", [("tanh", "tanh", "identity"), ["tanh", "tanh", "identity"],
                                         "tanh,tanh,identity"], ids=["tuple", "list", "str"])
def test_activations_accept_a_tuple_a_list_or_a_comma_string(activations):
    assert make_config(activations=activations).activations == ("tanh", "tanh", "identity")


# ------------------------------------------------------------------ seq_len and windows

@pytest.mark.parametrize("interval", [1, 3, 5])
def test_seq_len_defaults_to_interval(interval):
    assert make_config(interval=interval).seq_len == interval
    report = gradcheck.check(interval=interval, **SMALL)
    assert report.to_dict()["config"]["seq_len"] == interval
    assert report.windows == [(0, interval)]


@pytest.mark.parametrize(("interval", "seq_len", "windows"), [
    pytest.param(3, 7, [(0, 3), (3, 6), (6, 7)], id="last-window-shorter"),
    pytest.param(3, 6, [(0, 3), (3, 6)], id="exact-multiple"),
    pytest.param(3, 3, [(0, 3)], id="one-window"),
    pytest.param(5, 2, [(0, 2)], id="seq-shorter-than-interval"),
    pytest.param(1, 3, [(0, 1), (1, 2), (2, 3)], id="interval-one"),
])
def test_windows(interval, seq_len, windows):
    assert make_config(interval=interval, seq_len=seq_len).windows == windows


def test_every_window_is_checked_and_reported_one_based():
    report = gradcheck.check(interval=3, seq_len=7, **SMALL)
    doc = report.to_dict()
    assert doc["windows"] == [{"window": 1, "steps": [1, 3]}, {"window": 2, "steps": [4, 6]},
                              {"window": 3, "steps": [7, 7]}]
    assert {r["window"] for r in doc["results"]} == {1, 2, 3}


# ------------------------------------------------------------------ memory

def _estimate_gib(**options):
    cfg = Config(**{"interval": 3, "seq_len": 3, **options})
    return f"{cfg.memory_estimate() / 2**30:.1f} GiB"


def test_huge_sizes_are_refused_with_the_estimate_in_gib():
    expected = _estimate_gib(batch=10**8)
    with pytest.raises(gradcheck.UsageError,
                       match=rf"^batch=100000000: these sizes need about {re.escape(expected)}; "
                             r"this machine allows [\d.]+ GiB \(half its memory\): use smaller"):
        gradcheck.check(batch=10**8)


def test_memory_limit_is_a_bound_not_a_guess(monkeypatch):
    """A config needing exactly the limit runs; one byte less of limit refuses it."""
    need = Config(interval=3, seq_len=3, **SMALL).memory_estimate()
    monkeypatch.setattr(config_module, "_memory_limit", lambda: need)
    assert make_config(interval=3, **SMALL).batch == SMALL["batch"]
    monkeypatch.setattr(config_module, "_memory_limit", lambda: need - 1)
    with pytest.raises(gradcheck.UsageError, match=r"need about 0\.0 GiB; this machine "
                                                   r"allows 0\.0 GiB"):
        make_config(interval=3, **SMALL)


@pytest.mark.parametrize("option", ["interval", "seq_len", "batch", "input_size", "hidden_size",
                                    "state_size", "output_size"])
def test_memory_estimate_grows_with_every_size(option):
    base = dict(interval=3, seq_len=6, **SMALL)
    bigger = dict(base, **{option: 2 * base[option]})
    assert Config(**bigger).memory_estimate() > Config(**base).memory_estimate()
