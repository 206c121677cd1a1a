"""Hostile: returns the shipped JAX oracle's answers."""
from gradcheck.oracle_jax import jax_window


def loss_and_grads(params, x, y, h0, **options):
    r = jax_window(params, x, y, h0, **options)
    return r.loss, r.grads, r.h_last
