"""The arrays of one check, drawn from the config's seed (every random draw is here)."""
from typing import NamedTuple

import numpy as np

__all__ = ["Data", "make_data"]


class Data(NamedTuple):
    """Inputs in the implementation's dtype. Shapes: params as in reference;
    x [T, B, I]; y [T, B, O] floats or [T, B] ids (ce); h0 [B, R] (first window)."""
    params: dict
    x: np.ndarray
    y: np.ndarray
    h0: np.ndarray


def make_data(config):
    """Parameters ~ N(0, 1/fan_in), biases ~ N(0, 0.5^2), x ~ N(0, 1); targets per loss;
    a random non-zero incoming state h0 ~ U(-1, 1), so the first window already
    exercises every term of the recurrence."""
    rng = np.random.default_rng(config.seed)
    dtype = np.dtype(config.dtype)
    T, B = config.seq_len, config.batch
    I, H, R, O = config.input_size, config.hidden_size, config.state_size, config.output_size
    params = {
        "W1": rng.normal(size=(I, H)) / np.sqrt(I),
        "b1": 0.5 * rng.normal(size=H),
        "W2": rng.normal(size=(H, R)) / np.sqrt(H),
        "U": rng.normal(size=(R, R)) / np.sqrt(R),
        "b2": 0.5 * rng.normal(size=R),
        "W3": rng.normal(size=(R, O)) / np.sqrt(R),
        "b3": 0.5 * rng.normal(size=O),
    }
    x = rng.normal(size=(T, B, I))
    if config.loss == "ce":
        y = rng.integers(0, O, size=(T, B))
    elif config.loss == "bce":
        y = rng.uniform(0.0, 1.0, size=(T, B, O)).astype(dtype)
    else:
        y = rng.normal(size=(T, B, O)).astype(dtype)
    h0 = rng.uniform(-1.0, 1.0, size=(B, R))
    return Data({k: v.astype(dtype) for k, v in params.items()}, x.astype(dtype), y,
                h0.astype(dtype))
