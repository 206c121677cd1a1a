"""The batched finite-difference engine against a plain one-element-at-a-time loop and JAX."""
import numpy as np
import pytest

import reference
from gradcheck.compare import compare
from gradcheck.oracle_fd import fd_window
from gradcheck.oracle_jax import jax_window
from gradcheck.tolerances import tolerance
from tests.helpers import small_data

# The plain loop differences two loss totals, so its step balances truncation (~h^2)
# against the rounding of the totals (~eps / h): h ~ eps^(1/3) ~ 6e-6, error ~1e-10
# of each array, well inside the FD tolerance. (The engine's own FD_STEP, 1e-8, would
# leave the plain loop ~1e-8 of rounding.)
PLAIN_STEP = 6e-6

MODELS = {
    "l2-tanh": ("l2", ("tanh", "tanh", "identity")),
    "l2-sigmoid-out": ("l2", ("identity", "sigmoid", "sigmoid")),
    "ce": ("ce", ("sigmoid", "tanh", "identity")),
    "bce": ("bce", ("tanh", "identity", "identity")),
}


def _plain_central_differences(data, opts, name):
    """One forward per perturbed element, the textbook way."""
    arrays = {**{k: v.astype(np.float64) for k, v in data.params.items()},
              "x": data.x.astype(np.float64), "h0": data.h0.astype(np.float64)}
    target = arrays[name]
    out = np.empty_like(target)
    for i in np.ndindex(target.shape):
        e = PLAIN_STEP * max(1.0, abs(target[i]))
        saved = target[i]
        values = []
        for v in (saved + e, saved - e):
            target[i] = v
            params = {k: arrays[k] for k in reference.PARAM_NAMES}
            values.append(reference.forward(params, arrays["x"], data.y, arrays["h0"], **opts)[0])
        target[i] = saved
        out[i] = (values[0] - values[1]) / (2 * e)
    return out


@pytest.mark.parametrize("name", reference.GRAD_NAMES)
@pytest.mark.parametrize("model", MODELS, ids=str)
def test_batched_engine_agrees_with_plain_loop(model, name):
    loss, acts = MODELS[model]
    config, data = small_data(interval=3, loss=loss, activations=acts, batch=3)
    opts = config.model_options
    fast = fd_window(data.params, data.x, data.y, data.h0, names=(name,), **opts)
    plain = _plain_central_differences(data, opts, name)
    result = compare(fast.grads[name], plain, tolerance("fd", "float64"))
    assert result.passed, result
    assert not fast.kinks[name].any()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("model", MODELS, ids=str)
@pytest.mark.parametrize("interval", [1, 2, 6])
def test_engine_agrees_with_jax(model, reduction, interval):
    loss, acts = MODELS[model]
    config, data = small_data(interval=interval, loss=loss, activations=acts,
                              reduction=reduction, batch=5, output_size=7)
    opts = config.model_options
    fd = fd_window(data.params, data.x, data.y, data.h0, **opts)
    want = jax_window(data.params, data.x, data.y, data.h0, **opts)
    for name in reference.GRAD_NAMES:
        result = compare(fd.grads[name], want.grads[name], tolerance("fd", "float64"))
        assert result.passed, (name, result)


def test_engine_chunks_large_batches_identically(monkeypatch):
    import gradcheck.oracle_fd as engine
    config, data = small_data(interval=3, batch=6)
    opts = config.model_options
    whole = fd_window(data.params, data.x, data.y, data.h0, **opts)
    monkeypatch.setattr(engine, "_CHUNK_ELEMENTS", 64)    # forces many tiny chunks
    chunked = fd_window(data.params, data.x, data.y, data.h0, **opts)
    for name in reference.GRAD_NAMES:
        np.testing.assert_allclose(chunked.grads[name], whole.grads[name], rtol=0, atol=0)


@pytest.mark.parametrize("layer", ["f1", "f2"])
def test_relu_kink_is_flagged_not_judged(layer):
    acts = ("relu", "tanh", "identity") if layer == "f1" else ("tanh", "relu", "identity")
    config, data = small_data(interval=2, activations=acts)
    params = dict(data.params)
    # put one pre-activation of example 0 at step 1 exactly on the kink, via its bias
    if layer == "f1":
        z = data.x[0, 0] @ params["W1"] + params["b1"]
        params["b1"] = params["b1"] - z[0] * np.eye(params["b1"].size)[0]
        kinked = "b1"
    else:
        a = np.tanh(data.x[0, 0] @ params["W1"] + params["b1"])
        z = a @ params["W2"] + data.h0[0] @ params["U"] + params["b2"]
        params["b2"] = params["b2"] - z[0] * np.eye(params["b2"].size)[0]
        kinked = "b2"
    fd = fd_window(params, data.x, data.y, data.h0, **config.model_options)
    assert fd.kinks[kinked][0]
    assert fd.kinks["x"][0, 0].any()
