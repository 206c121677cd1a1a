"""Hostile: never returns."""


def loss_and_grads(params, x, y, h0, **options):
    while True:
        pass
