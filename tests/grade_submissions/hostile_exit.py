"""Hostile: ends its process in the middle of a call, with status 0."""
import os


def loss_and_grads(params, x, y, h0, **options):
    os._exit(0)
