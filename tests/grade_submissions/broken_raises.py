"""Raises on every call."""


def loss_and_grads(params, x, y, h0, **options):
    raise ValueError("not implemented yet")
