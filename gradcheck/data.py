"""The arrays of one check, drawn from the config's seed (every random draw is here)."""
from typing import NamedTuple

import numpy as np

from .model import LOSSES, shape_of

__all__ = ["Data", "make_data"]


class Data(NamedTuple):
    """Inputs in the implementation's dtype. Shapes: params as in the model (config.model);
    x [T, B, I]; y [T, B, O] floats or [T, B] ids (ce); h0 [B, R] (first window);
    ``states``: the cell's extra incoming states by name (an LSTM's c0 [B, R]), or {}."""
    params: dict
    x: np.ndarray
    y: np.ndarray
    h0: np.ndarray
    states: dict = {}


def _targets(rng, target, shape, O, dtype):
    """y for a loss whose target kind is ``target`` (model.Loss.target)."""
    if target == "class_ids":
        return rng.integers(0, O, size=shape)
    if target == "probabilities":
        return rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def make_data(config):
    """Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.5^2), x ~ N(0, 1); targets per loss;
    a random non-zero incoming state h0 ~ U(-1, 1) (and each extra state of the cell
    likewise, drawn after everything else), so the first window already exercises every
    term of the recurrence."""
    rng = np.random.default_rng(config.seed)
    dtype = np.dtype(config.dtype)
    sizes, T = config.sizes, config.seq_len
    model = config.model
    shapes = {a.name: model.shape_of(a.name, sizes, T) for a in model.arrays}
    params = {}
    for a in model.arrays:               # drawn in the model's order: the seed's promise
        if a.role != "param":
            continue
        if a.fan_in is None:
            params[a.name] = 0.5 * rng.normal(size=shapes[a.name])
        else:
            fan_in = shapes[a.name][a.letters.index(a.fan_in)]
            params[a.name] = rng.normal(size=shapes[a.name]) / np.sqrt(fan_in)
    x = rng.normal(size=shapes["x"])
    loss = LOSSES[config.loss]
    y = _targets(rng, loss.target, shape_of(f"{loss.name}:y", sizes, T), config.output_size,
                 dtype)
    h0, *extra = (rng.uniform(-1.0, 1.0, size=shapes[n]) for n in model.state_names)
    states = {n: s.astype(dtype) for n, s in zip(model.state_names[1:], extra)}
    return Data({k: v.astype(dtype) for k, v in params.items()}, x.astype(dtype), y,
                h0.astype(dtype), states)
