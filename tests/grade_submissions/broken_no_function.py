"""Defines the wrong name."""


def loss_and_gradients(params, x, y, h0, **options):
    return 0.0, {}, h0
