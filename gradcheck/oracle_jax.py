"""An independent JAX model of one BPTT window, written from bptt.md: loss, h_last, grads.

Never calls the NumPy reference. Computes in float64: JAX's x64 mode is switched on
for the oracle's own calls only (``jax.enable_x64``), never for the process, and JAX
is imported when the oracle is first used, not when this module is. To avoid a
compile per shape, every array is zero-padded up to a size
bucket and masked: padded hidden and state units have zero weights into the real
ones, padded outputs and examples are masked out of the loss, padded time steps
freeze the state. Activations, loss and reduction are run-time arguments, so one
compiled function serves every configuration that falls in the same buckets; they
are chosen with ``jnp.where`` rather than ``lax.switch``, which XLA compiles faster.
The compiled function is kept per bucket in this process and, when the cache is on
(``exe_cache``), on disk for the next process.

The model gives every time step its own copy of the shared weights, so the
gradient of each copy is that step's contribution (``per_step``); their sum is
the weights' gradient.
"""
import functools
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from . import exe_cache

__all__ = ["CellOracle", "CellWindow", "cell_window", "JaxResult", "jax_window", "jax_truncated",
           "activation", "step_loss", "ACTIVATION_NAMES", "LOSS_NAMES"]

PARAM_NAMES = ("W1", "b1", "W2", "U", "b2", "W3", "b3")
ACTIVATION_NAMES = ("tanh", "sigmoid", "relu", "identity")
LOSS_NAMES = ("l2", "ce", "bce")


class JaxResult(NamedTuple):
    """Oracle outputs for one window, float64 NumPy. per_step[name]: [T, *shape]."""
    loss: float
    h_last: np.ndarray
    grads: dict
    per_step: dict
    step_losses: np.ndarray
    states: np.ndarray                   # [T+1, B, R]: h0, h_1, .., h_T


def _select(index, branches):
    """branches[index], chosen element-wise at run time (every branch is computed; the
    ones not chosen get a zero cotangent, and each is finite where its inputs are)."""
    import jax.numpy as jnp
    out = branches[-1]
    for i in range(len(branches) - 2, -1, -1):
        out = jnp.where(index == i, branches[i], out)
    return out


def activation(index, z):
    import jax
    import jax.numpy as jnp
    return _select(index, [jnp.tanh(z), jax.nn.sigmoid(z), jax.nn.relu(z), z])


def step_loss(loss_id, f3_id, z3, y_t, ids_t, mask_o):
    """Per-example loss of one step. Shapes: z3, y_t [B, O]; ids_t [B]; mask_o [O]."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    err = (activation(f3_id, z3) - y_t) * mask_o
    l2 = 0.5 * jnp.sum(err * err, axis=-1)

    logits = jnp.where(mask_o, z3, -jnp.inf)
    m = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    lse = m[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - m), axis=-1))
    ce = lse - jnp.take_along_axis(z3, ids_t[:, None], axis=-1)[:, 0]

    bce = jnp.sum((jax.nn.softplus(z3) - y_t * z3) * mask_o, axis=-1)
    return _select(loss_id, [l2, ce, bce])


def _window_loss(steps, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b, mask_o,
                 act_ids, loss_id, scale):
    """Loss of a window whose weights are given per step (steps[name]: [T, *shape]).

    cut_t [T] bool: the state's derivative is stopped as it enters that step (a
    truncated-BPTT window starts there); inject_t [T] bool: the state's value is
    replaced by h_in [T, B, R] there; weight_t [T]: each step's loss weight."""
    import jax.numpy as jnp
    from jax import lax

    f1, f2, f3 = act_ids

    def step(h_prev, inputs):
        (W1, b1, W2, U, b2, W3, b3), x_t, y_t, ids_t, live, cut, inject, h_in_t, weight = inputs
        h_prev = jnp.where(inject, h_in_t, h_prev)
        h_prev = jnp.where(cut, lax.stop_gradient(h_prev), h_prev)
        z1 = x_t @ W1 + b1                                  # [B, H]
        a = activation(f1, z1)
        z2 = a @ W2 + h_prev @ U + b2                       # [B, R]
        h = jnp.where(live, activation(f2, z2), h_prev)    # padded steps keep the state
        z3 = h @ W3 + b3                                    # [B, O]
        loss_t = jnp.sum(step_loss(loss_id, f3, z3, y_t, ids_t, mask_o) * mask_b) * weight
        return h, (h, loss_t)

    weights = tuple(steps[n] for n in PARAM_NAMES)
    h_last, (states, losses) = lax.scan(
        step, h0, (weights, x, y, ids, mask_t, cut_t, inject_t, h_in, weight_t))
    return jnp.sum(losses) / scale, (h_last, states, losses / scale)


def _value_and_grads(params, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b,
                     mask_o, act_ids, loss_id, scale):
    import jax
    import jax.numpy as jnp

    T = x.shape[0]
    steps = {n: jnp.broadcast_to(p, (T,) + p.shape) for n, p in params.items()}
    fn = jax.value_and_grad(_window_loss, argnums=(0, 1, 2), has_aux=True)
    (loss, (h_last, states, losses)), (g_steps, g_x, g_h0) = fn(
        steps, x, h0, y, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b, mask_o, act_ids,
        loss_id, scale)
    return loss, h_last, states, losses, g_steps, g_x, g_h0


# The outputs' structure (loss, h_last, states, losses, g_steps, g_x, g_h0), to rebuild
# a compiled function loaded from the cache.
_OUT_STRUCTURE = (0, 0, 0, 0, {n: 0 for n in PARAM_NAMES}, 0, 0)
_compiled = {}                       # (name, bucket shapes) -> jax Compiled, in this process


@functools.lru_cache(maxsize=None)
def _source():
    """This module's source: a cached executable is valid for this model only."""
    return Path(__file__).read_bytes()


# XLA options for the oracle's compile: the older loop emitters for fusions instead of
# the newer fusion emitters, and LLVM's optimization level 1 (not 2). Measured at the
# article's, the large and the smallest bucket, the compile is much shorter than with
# the defaults and a window runs as fast. Level 0 compiles faster still but runs a
# window several times slower: it is used only for buckets whose window is so small
# that its run stays a fraction of a compile even over a long sweep (SMALL_WINDOW_WORK).
# (python -m gradcheck.bench prints the start-up figures a user sees.) The options
# change how XLA generates code, not what it computes: the regression baseline's
# error figures are unchanged.
COMPILE_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}
SMALL_WINDOW_OPTIONS = dict(COMPILE_OPTIONS, xla_backend_optimization_level=0)
# A window's multiply-adds in the products (per step and example: I*H + H*R + R*R + R*O,
# padded) up to which SMALL_WINDOW_OPTIONS apply: the smallest bucket (every size up to
# 16, up to 8 steps: 131,072), what sweeps of small shapes and most tests use.
SMALL_WINDOW_WORK = 1 << 17


def _window_work(params, x):
    """Multiply-adds of the padded window's matrix products (its 2-D weights')."""
    Tp, Bp, _ = np.shape(x)
    return Tp * Bp * sum(int(np.prod(np.shape(p))) for p in params.values() if np.ndim(p) == 2)


def _compile(lowered, work):
    """Compile with the options for a window of ``work`` multiply-adds, or with XLA's
    defaults where this jaxlib does not know one of them."""
    options = SMALL_WINDOW_OPTIONS if work <= SMALL_WINDOW_WORK else COMPILE_OPTIONS
    try:
        return lowered.compile(options)
    except Exception:                    # noqa: BLE001 -- e.g. "No such compile option"
        return lowered.compile()


def _executable(args, name="_value_and_grads", fn=None, out_structure=_OUT_STRUCTURE,
                source=None):
    """The compiled ``fn`` (default: the RNN's _value_and_grads) for these (padded)
    arguments' shapes: from this process, else from the cache folder, else compiled (and
    stored there). ``name`` and ``source`` (bytes; default this module's) key it;
    ``out_structure`` is a pytree shaped like fn's outputs, to rebuild a loaded one."""
    import jax

    shapes = tuple((np.shape(a), np.asarray(a).dtype.str) for a in jax.tree_util.tree_leaves(args))
    compiled = _compiled.get((name, shapes))
    if compiled is None:
        key = None
        if exe_cache.cache_dir() is not None:
            key = exe_cache.fingerprint(name, shapes, source or _source())
            compiled = exe_cache.load(key, jax.tree_util.tree_structure((args, {})),
                                      jax.tree_util.tree_structure(out_structure))
        if compiled is None:
            compiled = _compile(jax.jit(fn or _value_and_grads).lower(*args),
                                _window_work(args[0], args[1]))
            if key is not None:
                exe_cache.store(key, compiled)
        _compiled[(name, shapes)] = compiled
    return compiled


# The smallest padded sizes: every configuration with sizes up to these (a sweep of
# small shapes) shares one compiled function. Padding costs run time in proportion;
# each further bucket costs a compile.
MIN_STEPS_BUCKET = 8
MIN_BUCKET = 16


def _bucket(n, smallest):
    """The padded size for a dimension of n: a power of two, at least ``smallest``."""
    return max(smallest, 1 << (n - 1).bit_length())


def _pad(arr, shape):
    out = np.zeros(shape, dtype=arr.dtype)
    out[tuple(slice(0, s) for s in arr.shape)] = arr
    return out


@functools.lru_cache(maxsize=None)
def _masks(T, B, O, Tp, Bp, Op):
    return (np.arange(Tp) < T, (np.arange(Bp) < B).astype(np.float64), np.arange(Op) < O)


def jax_window(params, x, y, h0, *, loss, activations, reduction):
    """Loss, h_last and the nine gradients of one window, in float64.

    Shapes: as in the reference contract; inputs of any float dtype are upcast.
    Returns a JaxResult (per_step holds each weight's per-step gradients [T, ...]).
    """
    T = x.shape[0]
    return _run(params, x, y, h0, np.zeros(T, bool), None, np.ones(T), loss, activations,
                reduction)


def jax_truncated(params, x, y, h0, *, interval, loss, activations, reduction, window=None,
                  carried=None):
    """A whole [T, B, I] sequence under truncated BPTT, in one pass, from the equations.

    The state's value runs through the sequence; its derivative is stopped at the
    start of every window of ``interval`` steps. With ``window`` (1-based), only
    that window's steps count in the loss, so the gradients are that window's
    alone; without it, the loss and gradients sum over all windows. ``carried``
    [W-1, B, R], if given, is the state's value entering windows 2..W (another
    implementation's carried state), used in place of the model's own. grads["x"]
    is [T, B, I] over the whole sequence; grads["h0"] is the first state's.
    """
    T = x.shape[0]
    steps = np.arange(T)
    cut = (steps % interval == 0) & (steps > 0)
    weight = np.ones(T) if window is None else (steps // interval == window - 1).astype(float)
    h_in = None
    if carried is not None:
        h_in = np.zeros((T,) + np.shape(h0))
        h_in[cut] = np.asarray(carried, np.float64).reshape((-1,) + np.shape(h0))
    return _run(params, x, y, h0, cut, h_in, weight, loss, activations, reduction)


def _run(params, x, y, h0, cut, h_in, weight, loss, activations, reduction):
    """Pad to the size buckets, run the compiled model, cut the padding off again."""
    T, B, I = x.shape
    H, R, O = params["W1"].shape[1], params["W2"].shape[1], params["W3"].shape[1]
    Tp, Bp = _bucket(T, MIN_STEPS_BUCKET), _bucket(B, MIN_BUCKET)
    Ip, Hp, Rp, Op = (_bucket(n, MIN_BUCKET) for n in (I, H, R, O))
    shapes = {"W1": (Ip, Hp), "b1": (Hp,), "W2": (Hp, Rp), "U": (Rp, Rp), "b2": (Rp,),
              "W3": (Rp, Op), "b3": (Op,)}
    padded = {n: _pad(np.asarray(params[n], np.float64), shapes[n]) for n in PARAM_NAMES}
    xp = _pad(np.asarray(x, np.float64), (Tp, Bp, Ip))
    h0p = _pad(np.asarray(h0, np.float64), (Bp, Rp))
    if loss == "ce":
        ids, yp = _pad(np.asarray(y, np.int32), (Tp, Bp)), np.zeros((Tp, Bp, Op))
    else:
        ids, yp = np.zeros((Tp, Bp), np.int32), _pad(np.asarray(y, np.float64), (Tp, Bp, Op))
    mask_t, mask_b, mask_o = _masks(T, B, O, Tp, Bp, Op)
    cut_t = _pad(np.asarray(cut, bool), (Tp,))
    inject_t = cut_t if h_in is not None else np.zeros(Tp, bool)
    h_in = np.zeros((Tp, Bp, Rp)) if h_in is None else _pad(h_in, (Tp, Bp, Rp))
    weight_t = _pad(np.asarray(weight, np.float64), (Tp,))
    act_ids = tuple(np.int32(ACTIVATION_NAMES.index(a)) for a in activations)
    scale = float(B) if reduction == "mean" else 1.0
    args = (padded, xp, h0p, yp, ids, mask_t, cut_t, inject_t, h_in, weight_t, mask_b, mask_o,
            act_ids, np.int32(LOSS_NAMES.index(loss)), np.float64(scale))
    import jax
    with jax.enable_x64(True):
        out = jax.device_get(_executable(args)(*args))
    loss_v, h_last, states, losses, g_steps, g_x, g_h0 = out
    per_step = {n: np.asarray(g_steps[n])[(slice(0, T),) + tuple(slice(0, s) for s in
                                                                   params[n].shape)]
                for n in PARAM_NAMES}
    grads = {n: g.sum(axis=0) for n, g in per_step.items()}
    grads["x"] = np.asarray(g_x)[:T, :B, :I]
    grads["h0"] = np.asarray(g_h0)[:B, :R]
    states = np.concatenate([np.asarray(h0, np.float64)[None], np.asarray(states)[:T, :B, :R]])
    return JaxResult(float(loss_v), np.asarray(h_last)[:B, :R], grads, per_step,
                     np.asarray(losses)[:T], states)


class CellOracle(NamedTuple):
    """What a cell's JAX module declares (cells/NAME_jax.py): the rest -- the dense layers,
    the loss, the scan over steps, padding to the size buckets, the per-step weights,
    value_and_grad, compiling and the cache -- is cell_window's.

    ``model``: the cell's model.Model (its arrays' names, shapes and gate blocks);
    ``step(p, a, carry) -> carry``: one step of the cell from its equations, with p the
    step's weights by name, a = f1(x_t W1 + b1) [B, H] and carry the states (h first),
    [B, R] each; ``name`` keys its compiled executables and ``source`` is the cell
    module's text (a cached executable is valid for that text only)."""
    name: str
    model: object
    step: Callable
    source: bytes

    @property
    def param_names(self):
        return self.model.param_names


def _cell_window_loss(cell, steps, x, states, y, ids, mask_t, mask_b, mask_o, acts, loss_id,
                      scale):
    """Loss of a cell's window whose weights are given per step (steps[name]: [T, *shape]);
    padded steps (mask_t False) keep the states and add no loss."""
    import jax.numpy as jnp
    from jax import lax

    f1, f3 = acts

    def body(carry, inputs):
        w, x_t, y_t, ids_t, live = inputs
        p = dict(zip(cell.param_names, w))
        a = activation(f1, x_t @ p["W1"] + p["b1"])        # [B, H]
        new = tuple(jnp.where(live, n, c) for n, c in zip(cell.step(p, a, carry), carry))
        z3 = new[0] @ p["W3"] + p["b3"]                     # [B, O]
        loss_t = jnp.sum(step_loss(loss_id, f3, z3, y_t, ids_t, mask_o) * mask_b) * live
        return new, (new, loss_t)

    weights = tuple(steps[n] for n in cell.param_names)
    last, (trajectory, losses) = lax.scan(body, states, (weights, x, y, ids, mask_t))
    return jnp.sum(losses) / scale, (last, trajectory, losses / scale)


def _cell_value_and_grads(cell, params, x, states, y, ids, mask_t, mask_b, mask_o, acts,
                          loss_id, scale):
    import jax
    import jax.numpy as jnp

    T = x.shape[0]
    steps = {n: jnp.broadcast_to(p, (T,) + p.shape) for n, p in params.items()}
    fn = jax.value_and_grad(_cell_window_loss, argnums=(1, 2, 3), has_aux=True)
    return fn(cell, steps, x, states, y, ids, mask_t, mask_b, mask_o, acts, loss_id, scale)


class CellWindow(NamedTuple):
    """A cell's window from cell_window, float64 NumPy, cut back to its sizes: per_step
    [name]: [T, *shape]; grads: the parameters' (summed over steps), x's and each
    incoming state's by index (grads_states); last and trajectories (each [T+1, B, R],
    the incoming state first) by state index; step_losses [T]."""
    loss: float
    last: tuple
    trajectories: tuple
    grads: dict
    grads_states: tuple
    per_step: dict
    step_losses: np.ndarray


def _pad_blocks(arr, K, shape):
    """arr [.., K R] padded to ``shape`` [.., K Rp], each of its K blocks in its own slot
    (K = 1: zeros after arr, like _pad)."""
    R, Rp = arr.shape[-1] // K, shape[-1] // K
    out = np.zeros(shape)
    lead = tuple(slice(0, s) for s in arr.shape[:-1])
    for k in range(K):
        out[lead + (slice(k * Rp, k * Rp + R),)] = arr[..., k * R:(k + 1) * R]
    return out


def _unpad_blocks(arr, K, shape):
    """The inverse of _pad_blocks: arr [.., K Rp] cut to ``shape`` [.., K R]."""
    R, Rp = shape[-1] // K, arr.shape[-1] // K
    lead = tuple(slice(0, s) for s in shape[:-1])
    return np.concatenate([arr[lead + (slice(k * Rp, k * Rp + R),)] for k in range(K)], -1)


def cell_window(cell, params, x, y, states, *, loss, activations, reduction):
    """Run a cell's window (``cell``: a CellOracle) padded to the size buckets, compiled
    once per bucket (and kept in the cache folder when it is on), in float64.

    Shapes: params by cell.param_names (as the cell's model says); x [T, B, I]; y
    [T, B, O] or [T, B] ids (ce); states: the incoming states, each [B, R].
    Returns a CellWindow. Padding: zero weights into the real units (a padded unit's
    gates see zero pre-activations and its state stays zero), padded examples and
    outputs masked out of the loss, padded steps keep the states and add no loss."""
    import jax

    T, B, I = x.shape
    H, O = np.shape(params["W1"])[1], np.shape(params["W3"])[1]
    R = np.shape(states[0])[-1]
    Tp, Bp = _bucket(T, MIN_STEPS_BUCKET), _bucket(B, MIN_BUCKET)
    Ip, Hp, Rp, Op = (_bucket(n, MIN_BUCKET) for n in (I, H, R, O))
    padded_sizes = {"I": Ip, "H": Hp, "R": Rp, "O": Op}
    padded, blocks = {}, {}
    for n in cell.param_names:
        a = cell.model.array(n)
        shape = [padded_sizes[letter] for letter in a.letters]
        shape[-1] *= a.blocks
        blocks[n] = a.blocks
        padded[n] = _pad_blocks(np.asarray(params[n], np.float64), a.blocks, tuple(shape))
    xp = _pad(np.asarray(x, np.float64), (Tp, Bp, Ip))
    sp = tuple(_pad(np.asarray(s, np.float64), (Bp, Rp)) for s in states)
    if loss == "ce":
        ids, yp = _pad(np.asarray(y, np.int32), (Tp, Bp)), np.zeros((Tp, Bp, Op))
    else:
        ids, yp = np.zeros((Tp, Bp), np.int32), _pad(np.asarray(y, np.float64), (Tp, Bp, Op))
    mask_t, mask_b, mask_o = _masks(T, B, O, Tp, Bp, Op)
    acts = (np.int32(ACTIVATION_NAMES.index(activations[0])),
            np.int32(ACTIVATION_NAMES.index(activations[2])))
    scale = np.float64(B if reduction == "mean" else 1.0)
    args = (padded, xp, sp, yp, ids, mask_t, mask_b, mask_o, acts,
            np.int32(LOSS_NAMES.index(loss)), scale)
    n = len(states)
    structure = ((0, ((0,) * n, (0,) * n, 0)), ({k: 0 for k in cell.param_names}, 0, (0,) * n))
    with jax.enable_x64(True):
        out = jax.device_get(_executable(
            args, name=f"cell:{cell.name}", fn=functools.partial(_cell_value_and_grads, cell),
            out_structure=structure, source=_source() + cell.source)(*args))
    (value, (last, trajectory, losses)), (g_steps, g_x, g_states) = out
    per_step = {k: _unpad_blocks(np.asarray(g_steps[k])[:T], blocks[k],
                                 (T,) + np.shape(params[k])) for k in cell.param_names}
    grads = {k: g.sum(axis=0) for k, g in per_step.items()}
    grads["x"] = np.asarray(g_x)[:T, :B, :I]
    trajectories = tuple(np.concatenate([np.asarray(s0, np.float64)[None],
                                         np.asarray(tr)[:T, :B, :R]])
                         for s0, tr in zip(states, trajectory))
    return CellWindow(float(value), tuple(np.asarray(v)[:B, :R] for v in last), trajectories,
                      grads, tuple(np.asarray(g)[:B, :R] for g in g_states), per_step,
                      np.asarray(losses)[:T])
