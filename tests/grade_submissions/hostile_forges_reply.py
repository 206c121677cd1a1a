"""Hostile: writes a forged reply to the grader's channel (every open descriptor)."""
import os


def loss_and_grads(params, x, y, h0, **options):
    for fd in range(3, 20):
        try:
            os.write(fd, b'\x00\x00\x00\x10{"arrays": []}')
        except OSError:
            pass
    return 0.0, {}, h0
