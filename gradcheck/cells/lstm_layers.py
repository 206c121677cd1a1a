"""The LSTM's layer of one step in JAX, for the layer checks (``gradcheck layer lstm_step``
and, repeated over a window, ``lstm``), written from the equations, never from the
reference:

    zg = a_t Wx + h_prev Wh + b                 (blocks i, f, g, o of R each)   [B, 4R]
    c_t = s(zf) * c_prev + s(zi) * tanh(zg)     h_t = s(zo) * tanh(c_t)         [B, R]
"""
import jax
import jax.numpy as jnp

__all__ = ["lstm_step", "step_function"]


def lstm_step(a_t, h_prev, c_prev, Wx, Wh, b):
    """(h_t, c_t) of one step. a_t [B, H]; h_prev, c_prev [B, R]; Wx [H, 4R]; Wh [R, 4R];
    b [4R]."""
    R = h_prev.shape[-1]
    zg = a_t @ Wx + h_prev @ Wh + b
    i = jax.nn.sigmoid(zg[:, :R])
    f = jax.nn.sigmoid(zg[:, R:2 * R])
    g = jnp.tanh(zg[:, 2 * R:3 * R])
    o = jax.nn.sigmoid(zg[:, 3 * R:])
    c_t = f * c_prev + i * g
    return o * jnp.tanh(c_t), c_t


def step_function(layer, options):
    """The JAX function of step layer ``layer`` (the cell's nonlinearities are fixed:
    ``options`` change nothing)."""
    return {"lstm_step": lstm_step}[layer]
