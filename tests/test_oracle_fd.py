"""The batched finite-difference engine against a plain one-element-at-a-time loop and JAX;
its window state (fd_window_state.WindowState) through its public surface; its threads."""
import threading

import numpy as np
import pytest

import reference
from gradcheck import oracle_fd
from gradcheck.compare import compare
from gradcheck.fd_window_state import (ACTIVATIONS, Scratch, WindowState, activation_aux,
                                       tanh_aux_scaled, tanh_change_into)
from gradcheck.model import GRAD_NAMES
from gradcheck.oracle_fd import fd_directional, fd_window
from gradcheck.oracle_jax import jax_window
from gradcheck.tolerances import REFERENCE_RTOL, tolerance
from tests.helpers import record_threads, small_data

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


# fd_directional takes every array through f1's change as a whole [T, B, H] array; an
# identity f1 used to hand b1's [H] direction back unbroadcast (a crash in projections mode).
DIRECTIONAL_MODELS = {**MODELS, "l2-identity-f1": ("l2", ("identity", "sigmoid", "sigmoid")),
                      "ce-identity-f1": ("ce", ("identity", "tanh", "identity"))}


@pytest.mark.parametrize("model", DIRECTIONAL_MODELS, ids=str)
def test_directional_derivatives_agree_with_jax(model):
    loss, acts = DIRECTIONAL_MODELS[model]
    config, data = small_data(interval=3, loss=loss, activations=acts)
    opts = config.model_options
    rng = np.random.default_rng(0)
    arrays = dict(data.params, x=data.x, h0=data.h0)
    dirs = {name: rng.standard_normal((2,) + np.shape(arrays[name])) for name in GRAD_NAMES}
    fd = fd_directional(data.params, data.x, data.y, data.h0, dirs, **opts)
    want = jax_window(data.params, data.x, data.y, data.h0, **opts)
    for name in GRAD_NAMES:
        inner = dirs[name].reshape(2, -1) @ want.grads[name].ravel()
        result = compare(fd[name], inner, tolerance("fd", "float64"))
        assert result.passed, (name, result)


def test_window_state_is_the_unperturbed_forward():
    config, data = small_data(interval=4, loss="bce", activations=("sigmoid", "tanh", "identity"))
    w = WindowState(data.params, data.x, data.y, data.h0, **config.model_options)
    want = jax_window(data.params, data.x, data.y, data.h0, **config.model_options)
    T, B, R = w.z2.shape
    assert w.h.shape == (T + 1, B, R) and w.z3.shape == (T, B, 5)
    np.testing.assert_allclose(w.h, want.states, rtol=REFERENCE_RTOL, atol=0)
    assert w.scale == B and w.class_ids is None and w.relu == (False, False, False)


def _taylor_change(name, z, dz):
    """f(z + dz) - f(z) to third order in dz: the dz^4 term is ~1e-32, far below float64."""
    if name == "tanh":
        t = np.tanh(z)
        d1 = 1.0 / np.cosh(z) ** 2                       # 1 - t^2 without its cancellation
        d2, d3 = -2.0 * t * d1, d1 * (6.0 * t * t - 2.0)
    else:
        s, q = 1.0 / (1.0 + np.exp(-z)), 1.0 / (1.0 + np.exp(z))    # s(z), 1 - s(z)
        d1 = s * q
        d2, d3 = d1 * (q - s), d1 * (1.0 - 6.0 * s * q)
    return d1 * dz + d2 * dz ** 2 / 2 + d3 * dz ** 3 / 6


# activation_change's promise: rounding relative to the change, not to f(z): a few
# ulps of it. The textbook f(z + dz) - f(z) is off by ~eps |f| / |dz| ~ 1e-8 of the
# change at these dz, so this rtol tells the two apart (asserted below).
CHANGE_RTOL = 1e-14


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_activation_change_is_relative_to_the_perturbation(name):
    config, data = small_data(interval=2, activations=(name, "tanh", "identity"))
    w = WindowState(data.params, data.x, data.y, data.h0, **config.model_options)
    dz = 1e-8 * np.array([-1.0, -0.3, 0.7, 1.0])[:, None, None, None]   # [4, 1, 1, 1]
    want = _taylor_change(name, w.z1, dz)                                # [4, T, B, H]
    got = w.activation_change(0, dz, w.f1_aux)
    np.testing.assert_allclose(got, want, rtol=CHANGE_RTOL, atol=0)
    f = ACTIVATIONS[name]
    textbook = f(w.z1 + dz) - f(w.z1)
    assert not np.allclose(textbook, want, rtol=CHANGE_RTOL, atol=0)


# dz of 1e-8 takes tanh_change_into's u = dz path (the series factor rounds to 1); 1e-6
# its series path; both within _SERIES_MAX (1e-4).
@pytest.mark.parametrize("size", [1e-8, 1e-6])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_tanh_change_into_is_relative_to_the_perturbation(name, size):
    """The cells' in-place gate change: tanh itself (s = 1) and a sigmoid written as a
    tanh (s = 1/2 at z / 2), against the third-order Taylor change, as activation_change."""
    config, data = small_data(interval=2)
    z = WindowState(data.params, data.x, data.y, data.h0, **config.model_options).z1
    dz = size * np.array([-1.0, -0.3, 0.7, 1.0])[:, None, None, None] * np.ones(z.shape)
    s = 1.0 if name == "tanh" else 0.5
    out, work = np.empty_like(dz), np.empty_like(dz)
    aux = tanh_aux_scaled(activation_aux("tanh", s * z, np.tanh(s * z)), s)
    assert tanh_change_into(dz, aux, out, work)
    np.testing.assert_allclose(out, _taylor_change(name, z, dz), rtol=CHANGE_RTOL, atol=0)


def test_tanh_change_into_leaves_exploding_changes_to_activation_change():
    """A change beyond the series' range (only exploding states make one) is refused, so
    the cell's engine differences it directly (activation_change)."""
    z = np.zeros((2, 3))
    dz = np.array([[1e-8, 0.0, 0.0], [0.0, 2e-4, 0.0]])
    aux = tanh_aux_scaled(activation_aux("tanh", z, np.tanh(z)), 1.0)
    assert not tanh_change_into(dz, aux, np.empty_like(dz),
                                np.empty_like(dz))


def test_scratch_reuses_a_thread_s_arrays_and_keeps_threads_apart():
    scratch = Scratch()
    a = scratch.get("dh", (4, 5))
    assert a.shape == (4, 5)
    assert np.shares_memory(scratch.get("dh", (2, 5)), a)           # smaller: reused
    assert not np.shares_memory(scratch.get("dc", (4, 5)), a)       # another key
    bigger = scratch.get("dh", (8, 5))
    assert bigger.shape == (8, 5) and not np.shares_memory(bigger, a)   # grown
    other = []
    thread = threading.Thread(target=lambda: other.append(scratch.get("dh", (8, 5))))
    thread.start()
    thread.join()
    assert not np.shares_memory(other[0], bigger)


@pytest.mark.parametrize("engine", ["fd_window", "fd_directional"])
def test_unknown_array_is_a_clear_error(engine):
    config, data = small_data(interval=2)
    args = (data.params, data.x, data.y, data.h0)
    with pytest.raises(ValueError, match=rf"{engine}: no finite differences for \['W4'\]; "
                                         r"expected names among \['W1'"):
        if engine == "fd_window":
            fd_window(*args, names=("W1", "W4"), **config.model_options)
        else:
            fd_directional(*args, {"W4": np.ones((1, 2, 2))}, **config.model_options)


def test_worker_threads_are_joined_before_fd_window_returns(monkeypatch):
    config, data = small_data(interval=3, batch=6)
    monkeypatch.setattr(oracle_fd, "_CHUNK_ELEMENTS", 64)       # many chunks: the pool runs
    ran_on = record_threads(monkeypatch, oracle_fd, "_param_chunk")
    before = set(threading.enumerate())
    fd_window(data.params, data.x, data.y, data.h0, **config.model_options)
    assert any(name.startswith("gradcheck-fd") for name in ran_on), ran_on
    assert set(threading.enumerate()) == before
