"""The NumPy reference against the independent JAX model, and its input validation."""
import numpy as np
import pytest

import reference
from gradcheck.oracle_jax import jax_window
from gradcheck.tolerances import REFERENCE_RTOL, tolerance
from tests.helpers import small_data

SHAPES = {
    "ones": dict(batch=1, input_size=1, hidden_size=1, state_size=1, output_size=1),
    "small": dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5),
    "wide": dict(batch=2, input_size=7, hidden_size=9, state_size=6, output_size=11),
    "article-ish": dict(batch=16, input_size=10, hidden_size=20, state_size=5, output_size=100),
}
MODELS = {
    "l2-tanh": ("l2", ("tanh", "tanh", "identity")),
    "l2-sigmoid-out": ("l2", ("sigmoid", "tanh", "sigmoid")),
    "l2-relu": ("l2", ("relu", "relu", "relu")),
    "l2-identity": ("l2", ("identity", "identity", "identity")),
    "ce": ("ce", ("tanh", "sigmoid", "identity")),
    "bce": ("bce", ("relu", "tanh", "identity")),
}


def _rel_err(a, b):
    return np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("model", MODELS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("interval", [1, 3, 8])
def test_reference_matches_jax_float64(shape, model, reduction, interval):
    loss, acts = MODELS[model]
    sizes = dict(SHAPES[shape])
    if loss == "ce":                     # a softmax over one class is constant: the checker
        sizes["output_size"] = max(2, sizes["output_size"])      # refuses it, so do we here
    config, data = small_data(interval=interval, loss=loss, activations=acts,
                              reduction=reduction, **sizes)
    opts = config.model_options
    value, grads, h_last = reference.loss_and_grads(data.params, data.x, data.y, data.h0, **opts)
    want = jax_window(data.params, data.x, data.y, data.h0, **opts)
    assert abs(value - want.loss) <= REFERENCE_RTOL * abs(want.loss)
    assert _rel_err(h_last, want.h_last) <= REFERENCE_RTOL
    for name in reference.GRAD_NAMES:
        assert grads[name].shape == want.grads[name].shape, name
        assert _rel_err(grads[name], want.grads[name]) <= REFERENCE_RTOL, name


@pytest.mark.parametrize("model", MODELS, ids=str)
def test_reference_float32_computes_in_float32_and_agrees(model):
    loss, acts = MODELS[model]
    config, data = small_data(interval=4, loss=loss, activations=acts, dtype="float32")
    opts = config.model_options
    value, grads, h_last = reference.loss_and_grads(data.params, data.x, data.y, data.h0, **opts)
    want = jax_window(data.params, data.x, data.y, data.h0, **opts)
    tol = tolerance("jax", "float32")
    assert h_last.dtype == np.float32
    assert abs(value - want.loss) <= (tol.rtol + tol.atol_rel) * abs(want.loss)
    for name in reference.GRAD_NAMES:
        assert grads[name].dtype == np.float32, name
        assert _rel_err(grads[name], want.grads[name]) <= tol.atol_rel + tol.rtol, name


def test_reference_does_not_modify_inputs():
    config, data = small_data(interval=3, loss="ce", activations=("tanh", "tanh", "identity"))
    copies = {n: v.copy() for n, v in data.params.items()}
    x, y, h0 = data.x.copy(), data.y.copy(), data.h0.copy()
    reference.loss_and_grads(data.params, data.x, data.y, data.h0, **config.model_options)
    for n, v in copies.items():
        np.testing.assert_array_equal(data.params[n], v)
    for got, want in ((data.x, x), (data.y, y), (data.h0, h0)):
        np.testing.assert_array_equal(got, want)


def test_run_sequence_carries_the_state_value_not_its_derivative():
    config, data = small_data(interval=3, seq_len=7)
    opts = config.model_options
    windows = reference.run_sequence(data.params, data.x, data.y, data.h0, interval=3, **opts)
    assert [w.start for w in windows] == [0, 3, 6]
    np.testing.assert_array_equal(windows[1].h0, windows[0].h_last)
    np.testing.assert_array_equal(windows[2].h0, windows[1].h_last)
    # each window is exactly a standalone call with the carried state as a constant
    alone = reference.loss_and_grads(data.params, data.x[3:6], data.y[3:6], windows[1].h0, **opts)
    assert alone[0] == windows[1].loss
    np.testing.assert_array_equal(alone[1]["U"], windows[1].grads["U"])


def test_run_sequence_starts_from_zero_state_by_default():
    config, data = small_data(interval=2, seq_len=4)
    windows = reference.run_sequence(data.params, data.x, data.y, interval=2,
                                     **config.model_options)
    assert not windows[0].h0.any()


def test_interval_at_least_sequence_is_full_bptt():
    config, data = small_data(interval=5, seq_len=5)
    opts = config.model_options
    full = reference.loss_and_grads(data.params, data.x, data.y, data.h0, **opts)
    (window,) = reference.run_sequence(data.params, data.x, data.y, data.h0, interval=9, **opts)
    assert window.loss == full[0]
    for name in reference.GRAD_NAMES:
        np.testing.assert_array_equal(window.grads[name], full[1][name])


def _bad(data, **change):
    """(params, x, y, h0) with one thing changed."""
    params = dict(data.params)
    args = dict(x=data.x, y=data.y, h0=data.h0)
    for key, value in change.items():
        if key in params:
            params[key] = value
        else:
            args[key] = value
    return params, args["x"], args["y"], args["h0"]


_, D = small_data(interval=2)   # I=3, H=4, R=3, O=5, B=4, T=2
BAD_INPUTS = [
    ("W1-transposed", dict(W1=D.params["W1"].T.copy()), {},
     r"W1 has shape \(4, 3\); expected \(I, H\) = \(3, 4\) from x and b1\. Transposed\?"),
    ("W2-wrong", dict(W2=np.zeros((5, 3))), {}, r"W2 has shape \(5, 3\); expected \(H, R\)"),
    ("U-wrong", dict(U=np.zeros((3, 2))), {}, r"U has shape \(3, 2\); expected \(R, R\) = \(3, 3\)"),
    ("b1-wrong", dict(b1=np.zeros((1, 4))), {}, r"b1 has shape \(1, 4\); expected \(H\) = \(4,\)"),
    ("b3-wrong", dict(b3=np.zeros((1, 5))), {}, r"b3 has shape \(1, 5\); expected \(O\)"),
    ("h0-wrong", dict(h0=np.zeros((3, 4))), {}, r"h0 has shape \(3, 4\); expected \(B, R\) = \(4, 3\)"),
    ("x-2d", dict(x=np.zeros((4, 3))), {}, r"x has shape \(4, 3\); expected \(T, B, I\)"),
    ("y-wrong", dict(y=np.zeros((2, 4, 6))), {}, r"y has shape \(2, 4, 6\); expected \(T, B, O\)"),
    ("dtype-int", dict(W1=np.zeros((3, 4), dtype=np.int64)), {}, r"params\['W1'\] has dtype int64"),
    ("dtype-mixed", dict(U=np.zeros((3, 3), dtype=np.float32)), {},
     r"params\['U'\] has dtype float32; expected every parameter"),
    ("not-array", dict(b2=[0.0, 0.0, 0.0]), {}, r"params\['b2'\] is a list; expected a numpy array"),
    ("bad-loss", {}, dict(loss="mse"), r"loss='mse'; expected one of l2, ce, bce"),
    ("bad-reduction", {}, dict(reduction="avg"), r"reduction='avg'; expected one of mean, sum"),
    ("bad-activation", {}, dict(activations=("tanh", "gelu", "identity")), r"activations=.*gelu"),
    ("ce-needs-identity", {}, dict(loss="ce", activations=("tanh", "tanh", "tanh")),
     r"loss='ce' works on logits and needs f3 = 'identity'"),
    ("ce-float-targets", {}, dict(loss="ce"), r"y has shape \(2, 4, 5\); expected \(T, B\)"),
    ("ce-out-of-range", dict(y=np.full((2, 4), 5)), dict(loss="ce"),
     r"y holds class ids from 5 to 5; expected 0 to 4"),
    ("bce-out-of-range", dict(y=np.full((2, 4, 5), 2.0)), dict(loss="bce"),
     r"y holds values from 2\.0 to 2\.0; loss='bce' expects \[0, 1\]"),
]


@pytest.mark.parametrize("arrays, options, message",
                         [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_a_value_error_naming_it(arrays, options, message):
    params, x, y, h0 = _bad(D, **arrays)
    with pytest.raises(reference.ReferenceInputError, match=message) as info:
        reference.loss_and_grads(params, x, y, h0, **options)
    assert isinstance(info.value, ValueError)


def test_missing_param_is_named():
    params = {k: v for k, v in D.params.items() if k != "U"}
    with pytest.raises(reference.ReferenceInputError, match=r"params is missing U"):
        reference.loss_and_grads(params, D.x, D.y, D.h0)


def test_run_sequence_rejects_a_bad_interval():
    with pytest.raises(reference.ReferenceInputError, match=r"interval=0; expected an integer >= 1"):
        reference.run_sequence(D.params, D.x, D.y, interval=0)


def test_cache_grows_linearly_with_the_interval_at_the_per_step_size():
    """Question 2 of the article: every layer keeps its inputs/outputs for all k steps."""
    sizes = []
    for k in (1, 2, 5, 9):
        config, data = small_data(interval=k)
        _, cache = reference.forward(data.params, data.x, data.y, data.h0)
        sizes.append(cache.nbytes)
    B, I, H, R, O = 4, 3, 4, 3, 5
    per_step = 8 * B * (I + 2 * H + 2 * R + O)   # x, df1, a, df2, h, d3
    assert [b - a for a, b in zip(sizes, sizes[1:])] == [per_step, 3 * per_step, 4 * per_step]
    assert sizes[0] == per_step + 8 * B * R      # plus h0, once


def _backward_working_bytes(k):
    """Peak bytes the backward allocates beyond the gradients it returns."""
    import tracemalloc
    config, data = small_data(interval=k, batch=16)
    _, cache = reference.forward(data.params, data.x, data.y, data.h0)
    tracemalloc.start()
    try:
        grads = reference.backward(data.params, cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - sum(g.nbytes for g in grads.values())


def test_state_derivative_takes_constant_memory_whatever_the_interval():
    """Question 4 of the article: one accumulator, not k cached state derivatives."""
    # tracemalloc counts every thread's allocations: under pytest-xdist the worker's
    # message thread sometimes allocates during the measurement (seen: +2 KB at one k).
    # The backward's own working set is the same every time, so the least of three runs
    # is it; a backward that grew with k would still show it in all three.
    working = [min(_backward_working_bytes(k) for _ in range(3)) for k in (2, 8, 32, 64)]
    B, R = 16, 3
    # the same working set at every interval, and far below one [k, B, R] buffer at k = 64
    assert max(working) - min(working) < 8 * B * R, working
    assert max(working) < 64 * 8 * B * R, working


# --- the gated cells' references check their inputs as the RNN's does ----------------

CELL_REFERENCES = {"lstm": ("lstm", {}), "gru": ("gru", {}),
                   "gru-reset-after": ("gru", {"reset_after": True})}

BAD_CELL_INPUTS = [
    ("loss", lambda p, s: ({}, dict(loss="l3")), r"loss='l3'; expected one of"),
    ("reduction", lambda p, s: ({}, dict(reduction="max")), r"reduction='max'; expected mean"),
    ("activations", lambda p, s: ({}, dict(activations=("tanh", "tanh"))),
     r"activations=\('tanh', 'tanh'\); expected three of"),
    ("missing-Wh", lambda p, s: ({"params": {k: v for k, v in p.items() if k != "Wh"}}, {}),
     r"params is missing Wh"),
    ("Wh-one-block-short", lambda p, s: ({"params": dict(p, Wh=p["Wh"][:, :-p["Wh"].shape[0]])},
                                        {}), r"Wh has shape \(3, \d+\); expected \(3, \d+\)"),
    ("h0-shape", lambda p, s: ({"h0": s["h0"][:, :-1]}, {}),
     r"h0 has shape \(2, 2\); expected \(2, 3\)"),
]


@pytest.mark.parametrize("case", CELL_REFERENCES)
@pytest.mark.parametrize("bad, message", [b[1:] for b in BAD_CELL_INPUTS],
                         ids=[b[0] for b in BAD_CELL_INPUTS])
def test_a_cell_reference_names_a_bad_input(case, bad, message):
    import importlib
    cell_name, cell_options = CELL_REFERENCES[case]
    config, data = small_data(cell=cell_name, cell_options=tuple(cell_options), batch=2,
                              state_size=3)
    states = dict(h0=data.h0, **data.states)
    arrays, options = bad(data.params, states)
    args = dict(params=data.params, **states)
    args.update(arrays)
    impl = importlib.import_module(f"reference.{cell_name}")
    with pytest.raises(reference.ReferenceInputError, match=message):
        impl.loss_and_grads(args.pop("params"), data.x, data.y, args.pop("h0"),
                            *args.values(), **options)


@pytest.mark.parametrize("name", ["c0", "bh"])
def test_the_lstm_s_c0_and_the_gru_s_bh_are_checked_too(name):
    from reference import gru, lstm
    cell_name = "lstm" if name == "c0" else "gru"
    config, data = small_data(cell=cell_name, batch=2, state_size=3,
                              cell_options=() if name == "c0" else ("reset_after",))
    if name == "c0":
        with pytest.raises(reference.ReferenceInputError, match=r"c0 has shape \(2, 2\)"):
            lstm.loss_and_grads(data.params, data.x, data.y, data.h0, data.states["c0"][:, :2])
    else:
        params = dict(data.params, bh=data.params["bh"][:-1])
        with pytest.raises(reference.ReferenceInputError, match=r"bh has shape \(8,\)"):
            gru.loss_and_grads(params, data.x, data.y, data.h0)
