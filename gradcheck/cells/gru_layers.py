"""The GRU's layer of one step in JAX, for the layer checks (``gradcheck layer gru_step``
and, repeated over a window, ``gru``), written from the equations, never from the
reference:

    r = s(a_t Wx_r + h_prev Wh_r + b_r)      z likewise         (blocks r, z, n of R each)
    n = tanh(a_t Wx_n + (r*h_prev) Wh_n + b_n)                   (reset before)
    n = tanh(a_t Wx_n + b_n + r*(h_prev Wh_n + bh_n))            (reset after: bh given)
    h_t = (1-z)*n + z*h_prev
"""
import jax
import jax.numpy as jnp

__all__ = ["gru_step", "step_function"]


def gru_step(a_t, h_prev, Wx, Wh, b, bh=None):
    """h_t of one step. a_t [B, H]; h_prev [B, R]; Wx [H, 3R]; Wh [R, 3R]; b, bh [3R]
    (bh given: the reset gate after the recurrent product, bh inside it)."""
    R = h_prev.shape[-1]
    x_part = a_t @ Wx + b                                          # [B, 3R]
    rec = h_prev @ Wh[:, :2 * R] + (0.0 if bh is None else bh[:2 * R])
    r = jax.nn.sigmoid(x_part[:, :R] + rec[:, :R])
    z = jax.nn.sigmoid(x_part[:, R:2 * R] + rec[:, R:])
    if bh is None:
        n = jnp.tanh(x_part[:, 2 * R:] + (r * h_prev) @ Wh[:, 2 * R:])
    else:
        n = jnp.tanh(x_part[:, 2 * R:] + r * (h_prev @ Wh[:, 2 * R:] + bh[2 * R:]))
    return (1.0 - z) * n + z * h_prev


def step_function(layer, options):
    """The JAX function of step layer ``layer`` (the cell's nonlinearities are fixed:
    ``options`` change nothing)."""
    return {"gru_step": gru_step}[layer]
