"""Hostile: asks for far more memory than its limit (80 GB)."""
import numpy as np


def loss_and_grads(params, x, y, h0, **options):
    hog = np.ones(10**10)
    return float(hog.sum()), {}, h0
