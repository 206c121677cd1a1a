"""The reference's LSTM and GRU against an independent framework's cells: flax.linen's
LSTMCell and GRUCell (a test-only dependency), run step by step in float64 between the
same dense layers and l2 loss, states and gradients compared for a whole window.

flax's layout (read from its params tree and source): LSTMCell has input kernels ii, if,
ig, io (no bias) and recurrent kernels hi, hf, hg, ho with the bias, gates i, f, g, o as
in the contract. GRUCell is the reset-after form with the contract's z convention
(h = (1 - z) n + z h_prev); only the n block has a recurrent bias (hn), r and z carry one
bias each on the input side (ir, iz), so the contract's b_r + bh_r and b_z + bh_z fold into
them exactly. No framework cell has the contract's reset-before GRU; it is covered by an
exact identity: with a diagonal Wh_n, (r * h) Wh_n = r * (h Wh_n), so reset-before equals
reset-after with bh = 0.
"""
import functools

import flax.linen as nn  # the test extra's flax: a missing one is an error, not a skip
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference import gru, lstm

# Both sides evaluate the same float64 expressions in a different order (fused matmuls vs
# per-block Dense): rounding of a few ulps per operation over a short window, far below this.
STATE_ATOL_F64 = 1e-12
# The same, for the gradients, relative to each gradient's largest entry (jax.grad through
# flax's cells vs the reference's hand-written backward).
GRAD_RTOL_F64 = 1e-12
# A wrong mapping (swapped gate blocks) must be this far off, or the test could not fail.
WRONG_MAPPING_MIN = 1e-6

T, B, I, H, R, O = 4, 3, 2, 5, 3, 2
ACTS = ("tanh", "tanh", "identity")      # f1 = tanh, l2 loss on an identity output, mean


def _params(gates, reset_after=False, diagonal_Whn=False, seed=0):
    rng = np.random.default_rng(seed)
    G = len(gates)
    p = {"W1": rng.normal(0, 0.7, (I, H)), "b1": rng.normal(0, 0.3, H),
         "Wx": rng.normal(0, 0.6, (H, G * R)), "Wh": rng.normal(0, 0.6, (R, G * R)),
         "b": rng.normal(0, 0.3, G * R), "W3": rng.normal(0, 0.7, (R, O)),
         "b3": rng.normal(0, 0.3, O)}
    if reset_after:
        p["bh"] = rng.normal(0, 0.3, G * R)
    if diagonal_Whn:                      # Wh_n diagonal: the reset-before identity holds
        p["Wh"][:, 2 * R:] = np.diag(np.diag(p["Wh"][:, 2 * R:]))
    x = rng.normal(0, 1.0, (T, B, I))
    y = rng.normal(0, 1.0, (T, B, O))
    h0 = rng.normal(0, 0.5, (B, R))
    c0 = rng.normal(0, 0.5, (B, R))
    return p, x, y, h0, c0


def _blocks(a, k):
    return a[..., k * R:(k + 1) * R]


def _flax_lstm(p, order):
    """Contract LSTM params -> flax LSTMCell params; block k goes to flax gate order[k]."""
    out = {}
    for k, g in enumerate(order):
        out["i" + g] = {"kernel": _blocks(p["Wx"], k)}
        out["h" + g] = {"kernel": _blocks(p["Wh"], k), "bias": _blocks(p["b"], k)}
    return {"params": out}


def _flax_gru(p, order):
    """Contract reset-after GRU params -> flax GRUCell params; block k goes to order[k].
    flax has no recurrent bias on r and z: bh_r and bh_z add to the input bias (exact,
    both are summed inside the same sigmoid)."""
    bh = p.get("bh", jnp.zeros_like(p["b"]))
    out = {}
    for k, g in enumerate(order):
        hidden = {"kernel": _blocks(p["Wh"], k)}
        bias = _blocks(p["b"], k)
        if g == "n":
            hidden["bias"] = _blocks(bh, k)
        else:
            bias = bias + _blocks(bh, k)
        out["i" + g] = {"kernel": _blocks(p["Wx"], k), "bias": bias}
        out["h" + g] = hidden
    return {"params": out}


def _flax_window(cell_name, order, p, x, y, h0, c0):
    """(loss, states [T, B, R] per carry) of dense -> flax cell -> dense, l2, mean."""
    a = jnp.tanh(x @ p["W1"] + p["b1"])                   # [T, B, H]
    if cell_name == "lstm":
        cell = nn.LSTMCell(features=R, dtype=jnp.float64, param_dtype=jnp.float64)
        variables, carry = _flax_lstm(p, order), (c0, h0)
    else:
        cell = nn.GRUCell(features=R, dtype=jnp.float64, param_dtype=jnp.float64)
        variables, carry = _flax_gru(p, order), h0
    hs, cs = [], []
    for t in range(T):                                    # step by step, as the contract
        carry, h = cell.apply(variables, carry, a[t])
        hs.append(h)
        if cell_name == "lstm":
            cs.append(carry[0])
    hs = jnp.stack(hs)                                    # [T, B, R]
    err = hs @ p["W3"] + p["b3"] - y                      # [T, B, O]
    loss = 0.5 * jnp.sum(err * err) / B
    return loss, (hs, jnp.stack(cs) if cs else None)


def _reference(cell_name, p, x, y, h0, c0):
    """(loss, h [T, B, R], c or None, grads) of the reference's window."""
    if cell_name == "lstm":
        value, cache = lstm.forward(p, x, y, h0, c0, activations=ACTS)
        return value, cache.h[1:], cache.c[1:], lstm.backward(p, cache)
    value, cache = gru.forward(p, x, y, h0, activations=ACTS)
    return value, cache[5][1:], None, gru.backward(p, cache)


def _framework(cell_name, order, p, x, y, h0, c0):
    """(loss, h, c, grads by the contract's names) through flax, by jax.grad."""
    with jax.enable_x64(True):
        args = ({n: jnp.asarray(v) for n, v in p.items()}, jnp.asarray(x), jnp.asarray(h0),
                jnp.asarray(c0))

        def loss(params, x, h0, c0):
            return _flax_window(cell_name, order, params, x, jnp.asarray(y), h0, c0)

        (value, (h, c)), (dp, dx, dh0, dc0) = jax.value_and_grad(
            loss, argnums=(0, 1, 2, 3), has_aux=True)(*args)
        grads = {n: np.asarray(v) for n, v in dp.items()}
        grads.update(x=np.asarray(dx), h0=np.asarray(dh0))
        if cell_name == "lstm":
            grads["c0"] = np.asarray(dc0)
        return (float(value), np.asarray(h), None if c is None else np.asarray(c), grads)


@functools.cache
def _both(cell_name, reset_after, order, diagonal_Whn=False):
    """(reference, framework) of one case, computed once for the states and gradients tests
    (cached and shared: no test edits them)."""
    gates = lstm.GATES if cell_name == "lstm" else gru.GATES
    p, x, y, h0, c0 = _params(gates, reset_after, diagonal_Whn)
    return (_reference(cell_name, p, x, y, h0, c0),
            _framework(cell_name, order, p, x, y, h0, c0))


def _state_error(ref, fw):
    errs = [np.max(np.abs(ref[1] - fw[1]))]
    if ref[2] is not None:
        errs.append(np.max(np.abs(ref[2] - fw[2])))
    return float(max(errs))


def _grad_errors(ref_grads, fw_grads, names):
    """Per name: max |ref - framework| / max |framework|."""
    return {n: float(np.max(np.abs(ref_grads[n] - fw_grads[n]))
                     / np.max(np.abs(fw_grads[n]))) for n in names}


# (cell, reset_after, the mapping's gate order, whether it is the right mapping)
CASES = [
    ("lstm", False, "ifgo", True),
    ("lstm", False, "ifog", False),       # g (tanh) and o (sigmoid) swapped: must fail
    ("lstm", False, "figo", False),       # i and f swapped: must fail
    ("gru", True, "rzn", True),
    ("gru", True, "zrn", False),          # r and z swapped: must fail
]
IDS = [f"{c}-{o}-{'right' if ok else 'wrong'}" for c, _, o, ok in CASES]


@pytest.mark.parametrize("cell_name, reset_after, order, right", CASES, ids=IDS)
def test_states_agree_with_flax_only_under_the_right_mapping(cell_name, reset_after,
                                                             order, right):
    ref, fw = _both(cell_name, reset_after, order)
    err = _state_error(ref, fw)
    if right:
        assert err <= STATE_ATOL_F64, f"{cell_name} states differ from flax's by {err:.3g}"
        assert abs(ref[0] - fw[0]) <= STATE_ATOL_F64 * max(1.0, abs(fw[0]))
    else:
        assert err >= WRONG_MAPPING_MIN, f"a swapped mapping agreed to {err:.3g}"


@pytest.mark.parametrize("cell_name, reset_after, order, right", CASES, ids=IDS)
def test_gradients_agree_with_flax_only_under_the_right_mapping(cell_name, reset_after,
                                                                order, right):
    ref, fw = _both(cell_name, reset_after, order)
    errors = _grad_errors(ref[3], fw[3], sorted(ref[3]))
    if right:
        bad = {n: e for n, e in errors.items() if not e <= GRAD_RTOL_F64}
        assert not bad, f"{cell_name} gradients differ from flax's: {bad}"
    else:
        assert max(errors.values()) >= WRONG_MAPPING_MIN, errors


@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal-Whn", "full-Whn"])
def test_reset_before_gru_equals_flax_reset_after_when_Whn_is_diagonal(diagonal):
    """Reset before: n = tanh(zx_n + (r * h) Wh_n); reset after with bh = 0:
    n = tanh(zx_n + r * (h Wh_n)). For a diagonal Wh_n these are the same number, every
    other block identical, so the reference's reset-before window must match flax's GRUCell
    (bh = 0). The gradients agree except on Wh_n's off-diagonal entries (the two functions
    differ off the diagonal), which are left out. With a full Wh_n the identity fails, and
    the test shows it does."""
    ref, fw = _both("gru", False, gru.GATES, diagonal)
    err = _state_error(ref, fw)
    if not diagonal:
        assert err >= WRONG_MAPPING_MIN, f"a full Wh_n agreed to {err:.3g}"
        return
    assert err <= STATE_ATOL_F64, f"reset-before states differ from flax's by {err:.3g}"
    kept = np.ones((R, 3 * R), dtype=bool)                # Wh_r, Wh_z and diag(Wh_n)
    kept[:, 2 * R:] = np.eye(R, dtype=bool)
    ref_grads, fw_grads = dict(ref[3]), dict(fw[3])
    ref_grads["Wh"], fw_grads["Wh"] = ref[3]["Wh"][kept], fw[3]["Wh"][kept]
    errors = _grad_errors(ref_grads, fw_grads, sorted(ref_grads))
    bad = {n: e for n, e in errors.items() if not e <= GRAD_RTOL_F64}
    assert not bad, f"reset-before gradients differ from flax's: {bad}"
