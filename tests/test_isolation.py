"""Tests of the isolated path's parts: the wire format, sizes, the worker's answers."""
import json

import numpy as np
import pytest

import gradcheck
from gradcheck.errors import UsageError
from gradcheck.isolation import EXCERPT_BYTES, Worker, format_size, parse_size
from gradcheck.wire import PREFIX, WireError, decode, encode
from tests.helpers import SMALL, small_data
from tests.test_cli import IMPLS

NAMES = {"loss", "W1", "h_last"}


def _split(message):
    head_len, _ = PREFIX.unpack_from(message)
    return message[PREFIX.size:PREFIX.size + head_len], message[PREFIX.size + head_len:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wire_round_trip_copies_real_float_arrays(dtype):
    W1 = np.arange(6, dtype=dtype).reshape(2, 3)
    header, arrays = decode(*_split(encode({"k": 1}, [("W1", W1), ("loss", np.array(2.5))])),
                            NAMES)
    assert header == {"k": 1}
    assert arrays["W1"].dtype == dtype and np.array_equal(arrays["W1"], W1)
    assert arrays["loss"].shape == ()
    assert arrays["W1"].flags.writeable and arrays["W1"].flags.owndata


def _message(listed, payload=b""):
    head = json.dumps({"arrays": listed}).encode()
    return head, payload


BAD = [
    pytest.param(b"not json", b"", "its header is not JSON", id="not-json"),
    pytest.param(*_message([["W1", "complex128", [1]]], b"x" * 16),
                 "W1 has dtype 'complex128'; only float32 and float64 cross", id="complex"),
    pytest.param(*_message([["W1", "object", [1]]], b"x" * 8), "dtype 'object'", id="object"),
    pytest.param(*_message([["W1", ">f8", [1]]], b"x" * 8), "dtype '>f8'", id="big-endian"),
    pytest.param(*_message([["b9", "float64", [1]]], b"x" * 8),
                 "an array named 'b9' is not expected here", id="unknown-name"),
    pytest.param(*_message([["W1", "float64", [1]], ["W1", "float64", [1]]], b"x" * 16),
                 "an array named 'W1' is not expected here", id="twice"),
    pytest.param(*_message([["W1", "float64", [2]]], b"x" * 8), "W1's bytes are missing",
                 id="short"),
    pytest.param(*_message([["W1", "float64", [1]]], b"x" * 9), "1 bytes follow the arrays",
                 id="trailing"),
    pytest.param(*_message([["W1", "float64", [-1]]], b""), "is not [name, dtype, shape]",
                 id="negative-shape"),
    pytest.param(*_message([["W1", "float64", [1.5]]], b""), "is not [name, dtype, shape]",
                 id="float-shape"),
    pytest.param(json.dumps([1]).encode(), b"", "not an object listing arrays", id="list"),
]


@pytest.mark.parametrize(("head", "payload", "message"), BAD)
def test_wire_rejects_anything_but_named_float_arrays(head, payload, message):
    with pytest.raises(WireError, match=message.replace("[", r"\[").replace("(", r"\(")):
        decode(head, payload, NAMES)


@pytest.mark.parametrize(("text", "size"), [("512M", 512 << 20), ("4G", 4 << 30),
                                            ("1.5G", 3 << 29), ("2gb", 2 << 30),
                                            ("134217728", 128 << 20)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["4Q", "", "-1G", "1M", "G"])
def test_parse_size_rejects_with_the_option_named(text):
    with pytest.raises(UsageError, match=r"^memory_limit=.*expected a size such as 512M"):
        parse_size(text)


def test_format_size():
    assert [format_size(n) for n in (4 << 30, 512 << 20, 3 << 29)] == ["4G", "512M", "1.5G"]


@pytest.fixture(scope="module")
def window():
    config, data = small_data()
    return config, data


def test_worker_serves_many_calls_and_they_agree_with_in_process(window):
    from gradcheck.untrusted import call_impl
    from tests.impls import correct
    config, data = window
    with Worker({"spec": f"{IMPLS / 'correct.py'}:loop_bptt"}, timeout=10) as worker:
        outs = [worker.call(data.params, data.x, data.y, data.h0, config.model_options)
                for _ in range(3)]
    here = call_impl(correct.loop_bptt, data.params, data.x, data.y, data.h0,
                     config.model_options)
    for out in outs:
        assert out.problems == []
        assert out.loss == here.loss and np.array_equal(out.h_last, here.h_last)
        assert all(np.array_equal(out.grads[n], here.grads[n]) for n in here.grads)


@pytest.mark.parametrize(("func", "name"), [("modifies_x", "x"), ("modifies_U", "U")])
def test_the_worker_sees_its_inputs_modified(window, func, name):
    config, data = window
    with Worker({"spec": f"{IMPLS / 'broken.py'}:{func}"}, timeout=10) as worker:
        out = worker.call(data.params, data.x, data.y, data.h0, config.model_options)
    assert [p.message for p in out.problems] == [f"modified its input {name} in place; "
                                                 f"it must not"]


def test_output_is_kept_as_a_bounded_excerpt(tmp_path, window):
    config, data = window
    impl = tmp_path / "loud.py"
    impl.write_text("import sys\nimport reference\n"
                    "def f(*a, **k):\n"
                    "    sys.stdout.write('A' * 100000 + 'END')\n    sys.stdout.flush()\n"
                    "    return reference.loss_and_grads(*a, **k)\n")
    with Worker({"spec": f"{impl}:f"}, timeout=10) as worker:
        assert worker.call(data.params, data.x, data.y, data.h0,
                           config.model_options).problems == []
    text = worker.output()["stdout"]
    assert text.startswith("A" * EXCERPT_BYTES) and text.endswith("END")
    assert f"[... {100003 - 2 * EXCERPT_BYTES} bytes not shown ...]" in text
    assert len(text) < 3 * EXCERPT_BYTES


def test_a_file_spec_is_isolated_and_a_callable_is_not():
    spec = f"{IMPLS / 'correct.py'}:loop_bptt"
    isolated = gradcheck.check(spec, interval=3, **SMALL).to_dict()
    here = gradcheck.check(spec, interval=3, in_process=True, **SMALL).to_dict()
    assert isolated["passed"] and here["passed"]
    assert isolated["isolation"]["isolated"] is True and isolated["isolation"]["calls"] == 1
    assert here["isolation"] == {"isolated": False}
    assert [r["max_abs_err"] for r in isolated["results"]] == \
        [r["max_abs_err"] for r in here["results"]]


def test_an_impl_that_cannot_be_loaded_is_usage_not_a_verdict():
    with pytest.raises(UsageError, match=r"importing .*raises_on_import.py raised RuntimeError"):
        gradcheck.check(f"{IMPLS / 'raises_on_import.py'}:f", interval=3, **SMALL)
