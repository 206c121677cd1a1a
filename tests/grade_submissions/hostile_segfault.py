"""Hostile: crashes its process (a segmentation fault)."""
import ctypes


def loss_and_grads(params, x, y, h0, **options):
    return ctypes.string_at(0)
