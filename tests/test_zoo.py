"""Tests of gradcheck.zoo: every wrong implementation breaks exactly what it claims.

Each bug runs every window of its demo config next to ``reference.loss_and_grads``
(both get the same h0: the bug's own h_last carried from the window before), and
the arrays it lists in ``breaks`` must differ while every other array agrees.
"""
import functools
import re
import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:                                 # run from anywhere without an install
    sys.path.insert(0, _ROOT)

import reference  # noqa: E402
from gradcheck import zoo  # noqa: E402
from gradcheck.model import GRAD_NAMES  # noqa: E402

# Two correct float64 computations of the same sums (the reference batches over
# time, the zoo loops step by step) differ by rounding, ~1e-15 of an array's scale;
# 1e-10 leaves a wide margin. The smallest real bug (db3_off_by_1e6) is 1e-6 off;
# 1e-9 sits between the two.
AGREE = 1e-10
DIFFER = 1e-9
# float32 against the float32 reference: ~1e-7 rounding per operation over a few
# steps and batch sums stays well below 1e-5 of an array's scale.
AGREE_FLOAT32 = 1e-5
# Central-difference step on a float64 loss: truncation ~FD_STEP^2 and rounding
# ~1e-16 / FD_STEP are both far below FD_RTOL.
FD_STEP = 1e-5
FD_RTOL = 1e-6

DEFAULTS = {"interval": 3, "seq_len": None, "batch": 128, "input_size": 10, "hidden_size": 20,
            "state_size": 5, "output_size": 100, "loss": "l2",
            "activations": ("tanh", "tanh", "identity"), "reduction": "mean",
            "dtype": "float64"}
# Smaller than the article's sizes to stay fast; every bug stays visible (a bug's
# config overrides these).
SMALL = {"batch": 8, "input_size": 4, "hidden_size": 6, "state_size": 4, "output_size": 7}
OUTPUT_NAMES = GRAD_NAMES + ("loss", "h_last")

BUG_IDS = [bug.name for bug in zoo.list_bugs()]
STATEFUL_IDS = [bug.name for bug in zoo.list_bugs() if bug.stateful]


# ------------------------------------------------------------------ helpers

def _config(bug_config=(), **overrides):
    return {**DEFAULTS, **SMALL, **dict(bug_config), **overrides}


def _data(cfg, seed=0, zero_h0=False):
    """(params, x, y, h0) for a whole sequence of ``cfg``, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    T = cfg["seq_len"] or cfg["interval"]
    B, I, H, R, O = (cfg[k] for k in ("batch", "input_size", "hidden_size", "state_size",
                                      "output_size"))
    dtype = np.dtype(cfg["dtype"])
    shapes = {"W1": ((I, H), I), "b1": ((H,), I), "W2": ((H, R), H), "U": ((R, R), R),
              "b2": ((R,), H), "W3": ((R, O), R), "b3": ((O,), R)}  # shape, fan-in
    params = {name: rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(dtype)
              for name, (shape, fan_in) in shapes.items()}
    x = rng.normal(size=(T, B, I)).astype(dtype)                    # [T, B, I]
    if cfg["loss"] == "ce":
        y = rng.integers(0, O, size=(T, B))                         # [T, B] class ids
    elif cfg["loss"] == "bce":
        y = rng.uniform(size=(T, B, O)).astype(dtype)               # [T, B, O] in [0, 1]
    else:
        y = rng.normal(size=(T, B, O)).astype(dtype)                # [T, B, O]
    h0 = rng.normal(0.0, 0.5, (B, R)).astype(dtype)                 # [B, R]
    if zero_h0:
        h0 = np.zeros_like(h0)
    return params, x, y, h0


def _options(cfg):
    return {"loss": cfg["loss"], "activations": tuple(cfg["activations"]),
            "reduction": cfg["reduction"]}


def _rel_err(got, want):
    """max |got - want| / max |want|; inf for a NaN or a wrong shape."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return np.inf
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), np.finfo(np.float64).tiny)
    return np.inf if np.isnan(err) else float(err)


def _copy_inputs(params, x, y, h0):
    return {n: p.copy() for n, p in params.items()}, x.copy(), y.copy(), h0.copy()


def _inputs_equal(a, b):
    (pa, *rest_a), (pb, *rest_b) = a, b
    return (all(np.array_equal(pa[n], pb[n]) for n in pa)
            and all(np.array_equal(u, v) for u, v in zip(rest_a, rest_b)))


def _run_windows(impl, cfg, seed=0, zero_h0=False):
    """Every window of cfg's sequence through impl and the reference.

    Returns one dict per window: the relative error of every output name, plus
    "nan" (a NaN in impl's outputs) and "inputs_modified" (impl changed an input).
    """
    params, x, y, h0 = _data(cfg, seed, zero_h0)
    k = cfg["interval"]
    windows = []
    for start in range(0, x.shape[0], k):
        inputs = (params, x[start:start + k].copy(), y[start:start + k].copy(), h0)
        before = _copy_inputs(*inputs)
        want_loss, want_grads, want_h = reference.loss_and_grads(
            *_copy_inputs(*inputs), **_options(cfg))
        got_loss, got_grads, got_h = impl(*inputs, **_options(cfg))
        errors = {n: _rel_err(got_grads.get(n), want_grads[n]) for n in GRAD_NAMES}
        errors["loss"] = _rel_err(got_loss, want_loss)
        errors["h_last"] = _rel_err(got_h, want_h)
        outputs = [got_loss, got_h, *got_grads.values()]
        errors["nan"] = any(np.isnan(np.asarray(v, dtype=np.float64)).any() for v in outputs)
        errors["inputs_modified"] = not _inputs_equal(inputs, before)
        windows.append(errors)
        h0 = np.array(got_h, copy=True)                   # the bug's own state flows on
    return windows


def _differs(window, name):
    if name in ("nan", "inputs_modified"):
        return window[name]
    return window[name] > DIFFER


def _agrees(window, name):
    if name in ("nan", "inputs_modified"):
        return not window[name]
    return window[name] <= AGREE


@functools.cache
def _demo(name):
    """The windows of a bug's demo config, run once per test session."""
    bug = zoo.BUGS[name]
    return tuple(_run_windows(bug.make(), _config(bug.config)))


# ------------------------------------------------------------------ the registry

def test_registry_holds_at_least_15_bugs_under_their_own_names():
    assert len(zoo.BUGS) >= 15
    assert all(name == bug.name for name, bug in zoo.BUGS.items())


def test_list_bugs_is_sorted_by_name():
    assert [bug.name for bug in zoo.list_bugs()] == sorted(zoo.BUGS)


def test_every_flaw_switch_is_a_bug():
    assert {f for f in zoo.Flaws.__dataclass_fields__} == set(zoo.BUGS)


@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_bug_is_described_in_one_line(name):
    bug = zoo.BUGS[name]
    assert re.fullmatch(r"[a-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*", bug.name)
    assert bug.doc.strip() and "\n" not in bug.doc and len(bug.doc) <= 100


@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_bug_breaks_and_config_use_known_names(name):
    bug = zoo.BUGS[name]
    assert bug.breaks and set(bug.breaks) <= set(zoo.BREAK_NAMES)
    assert len(set(bug.breaks)) == len(bug.breaks)
    assert set(bug.config) <= set(zoo.CONFIG_KEYS)


@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_make_returns_a_callable_fresh_for_stateful_bugs(name):
    bug = zoo.BUGS[name]
    if bug.stateful:
        assert bug.make() is not bug.make()
    else:
        assert bug.make() is bug.impl
    assert callable(bug.make())


def test_module_attribute_names_a_fresh_implementation():
    assert callable(zoo.no_dh_next)
    assert zoo.accumulator_not_reset is not zoo.accumulator_not_reset
    with pytest.raises(AttributeError, match="no_such_bug"):
        zoo.no_such_bug  # noqa: B018


# ------------------------------------------------ each bug breaks exactly its list

@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_bug_breaks_every_name_it_lists(name):
    windows = _demo(name)
    unseen = [n for n in zoo.BUGS[name].breaks if not any(_differs(w, n) for w in windows)]
    assert not unseen, f"{name} lists {unseen} but they agree with the reference"


@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_bug_breaks_nothing_else(name):
    windows = _demo(name)
    others = [n for n in zoo.BREAK_NAMES if n not in zoo.BUGS[name].breaks]
    broken = {n: [w.get(n) for w in windows] for n in others
              if not all(_agrees(w, n) for w in windows)}
    assert not broken, f"{name} also breaks {broken}"


# ------------------------------------------------ when a bug shows and when it hides

def test_dU_skips_first_step_shows_with_a_nonzero_h0():
    (window,) = _run_windows(zoo.BUGS["dU_skips_first_step"].make(), _config())
    assert window["U"] > DIFFER


def test_dU_skips_first_step_hides_with_a_zero_h0():
    (window,) = _run_windows(zoo.BUGS["dU_skips_first_step"].make(), _config(), zero_h0=True)
    assert all(_agrees(window, n) for n in zoo.BREAK_NAMES)


@pytest.mark.parametrize("name", STATEFUL_IDS, ids=STATEFUL_IDS)
def test_stateful_bug_agrees_on_its_first_window(name):
    bug = zoo.BUGS[name]
    cfg = _config(bug.config, seq_len=bug.config["interval"])
    (window,) = _run_windows(bug.make(), cfg)
    assert all(_agrees(window, n) for n in zoo.BREAK_NAMES)


@pytest.mark.parametrize("name", STATEFUL_IDS, ids=STATEFUL_IDS)
def test_stateful_bug_make_starts_clean_after_a_used_one(name):
    bug = zoo.BUGS[name]
    _run_windows(bug.make(), _config(bug.config))            # leaves state in that instance
    (window,) = _run_windows(bug.make(), _config(bug.config, seq_len=bug.config["interval"]))
    assert all(_agrees(window, n) for n in zoo.BREAK_NAMES)


HIDDEN = [
    pytest.param("relu_grad_from_output", {"activations": ("tanh", "sigmoid", "identity")},
                 id="relu_grad_from_output-without_relu"),
    pytest.param("tanh_grad_of_output", {"activations": ("sigmoid", "relu", "identity")},
                 id="tanh_grad_of_output-without_tanh"),
    pytest.param("sigmoid_grad_from_input", {"activations": ("relu", "tanh", "identity")},
                 id="sigmoid_grad_from_input-without_sigmoid"),
    pytest.param("f1_grad_forgotten", {"activations": ("identity", "tanh", "identity")},
                 id="f1_grad_forgotten-identity_f1"),
    pytest.param("bce_extra_sigmoid_grad", {"loss": "l2"}, id="bce_extra_sigmoid_grad-l2"),
    pytest.param("bce_extra_sigmoid_grad", {"loss": "ce"}, id="bce_extra_sigmoid_grad-ce"),
    pytest.param("ce_grad_without_onehot", {"loss": "bce"}, id="ce_grad_without_onehot-bce"),
    pytest.param("mean_over_time_and_batch", {"reduction": "sum"},
                 id="mean_over_time_and_batch-sum"),
    pytest.param("loss_not_reduced", {"reduction": "sum"}, id="loss_not_reduced-sum"),
    pytest.param("accumulator_not_reset", {"interval": 3, "seq_len": 3},
                 id="accumulator_not_reset-one_window"),
]


@pytest.mark.parametrize(("name", "overrides"), HIDDEN)
def test_bug_hides_where_its_mistake_does_not_apply(name, overrides):
    bug = zoo.BUGS[name]
    windows = _run_windows(bug.make(), _config(bug.config, **overrides))
    assert all(_agrees(w, n) for w in windows for n in zoo.BREAK_NAMES)


# ------------------------------------------ a wrong forward consistent with itself

def _directional_check(impl, cfg, seed=1):
    """(central difference of impl's loss along a random direction, <grads, direction>)."""
    params, x, y, h0 = _data(cfg)
    opts = _options(cfg)
    inputs = {**params, "x": x, "h0": h0}
    rng = np.random.default_rng(seed)
    direction = {n: rng.normal(size=v.shape) for n, v in inputs.items()}

    def loss_at(eps):
        moved = {n: v + eps * direction[n] for n, v in inputs.items()}
        h_moved = moved.pop("h0")
        x_moved = moved.pop("x")
        return impl(moved, x_moved, y, h_moved, **opts)[0]

    _, grads, _ = impl(params, x, y, h0, **opts)
    analytic = sum(float(np.sum(grads[n] * direction[n])) for n in inputs)
    numeric = (loss_at(FD_STEP) - loss_at(-FD_STEP)) / (2 * FD_STEP)
    return numeric, analytic


def test_forward_U_transposed_agrees_with_its_own_finite_differences():
    numeric, analytic = _directional_check(zoo.BUGS["forward_U_transposed"].make(), _config())
    assert abs(numeric - analytic) <= FD_RTOL * abs(analytic)


def test_forward_U_transposed_loss_differs_from_the_reference():
    (window,) = _run_windows(zoo.BUGS["forward_U_transposed"].make(), _config())
    assert window["loss"] > DIFFER and window["h_last"] > DIFFER


# --------------------------------------- the shared implementation, with no flaw on

FLAWLESS_CASES = [
    pytest.param(loss, acts, reduction, dtype, id=f"{loss}-{'_'.join(acts)}-{reduction}-{dtype}")
    for loss in ("l2", "ce", "bce")
    for acts in (("tanh", "tanh", "identity"), ("sigmoid", "relu", "identity"),
                 ("relu", "sigmoid", "identity"))
    for reduction in ("mean", "sum")
    for dtype in ("float64", "float32")
] + [
    pytest.param("l2", ("tanh", "tanh", f3), "mean", "float64", id=f"l2-f3_{f3}")
    for f3 in ("tanh", "sigmoid", "relu")
]


@pytest.mark.parametrize(("loss", "activations", "reduction", "dtype"), FLAWLESS_CASES)
def test_article_bptt_without_flaws_matches_the_reference(loss, activations, reduction, dtype):
    cfg = _config(loss=loss, activations=activations, reduction=reduction, dtype=dtype,
                  seq_len=5)
    tol = AGREE if dtype == "float64" else AGREE_FLOAT32
    windows = _run_windows(zoo.ArticleBPTT(), cfg)
    worst = {n: max(w[n] for w in windows) for n in OUTPUT_NAMES}
    assert all(v <= tol for v in worst.values()), worst
    assert not any(w["nan"] or w["inputs_modified"] for w in windows)


@pytest.mark.parametrize("name", BUG_IDS, ids=BUG_IDS)
def test_bug_computes_in_float32_with_the_contract_shapes(name):
    bug = zoo.BUGS[name]
    params, x, y, h0 = _data(_config(bug.config, dtype="float32"))
    k = bug.config.get("interval", DEFAULTS["interval"])
    value, grads, h_last = bug.make()(params, x[:k], y[:k], h0, **_options(_config(bug.config)))
    expected = {**{n: p.shape for n, p in params.items()}, "x": x[:k].shape, "h0": h0.shape}
    assert isinstance(value, float)
    assert {n: g.shape for n, g in grads.items()} == expected
    assert all(g.dtype == np.float32 for g in grads.values())
    assert h_last.shape == h0.shape and h_last.dtype == np.float32
