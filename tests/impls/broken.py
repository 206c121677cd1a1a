"""Implementations that break the loss_and_grads contract, one way each.

Most wrap ``reference.loss_and_grads`` and damage one thing in what it returns, so
the only thing wrong is the thing the function's name says.
"""
import os
import sys

import numpy as np

import reference


def _ref(params, x, y, h0, **options):
    return reference.loss_and_grads(params, x, y, h0, **options)


def raises(params, x, y, h0, **options):
    raise RuntimeError("deliberate failure inside the implementation")


def wrong_signature(params, x, y, h0, lossfn="l2"):
    """Takes its loss under another name: the contract's call cannot bind."""
    return _ref(params, x, y, h0)


def raises_type_error(params, x, y, h0, **options):
    """A TypeError from inside the code: blamed on its own line, not on the call."""
    return len(3)


def exits(params, x, y, h0, **options):
    sys.exit(3)


def nan_grad(params, x, y, h0, **options):
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    grads["W2"][0, 0] = np.nan
    return loss, grads, h_last


def inf_loss(params, x, y, h0, **options):
    _, grads, h_last = _ref(params, x, y, h0, **options)
    return np.inf, grads, h_last


def transposed_W2(params, x, y, h0, **options):  # noqa: N802 - named after the array
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    grads["W2"] = grads["W2"].T                       # [R, H] instead of [H, R]
    return loss, grads, h_last


def transposed_h_last(params, x, y, h0, **options):
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    return loss, grads, h_last.T                      # [R, B] instead of [B, R]


def missing_U(params, x, y, h0, **options):  # noqa: N802 - named after the array
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    del grads["U"]
    return loss, grads, h_last


def returns_list(params, x, y, h0, **options):
    return list(_ref(params, x, y, h0, **options))


def returns_pair(params, x, y, h0, **options):
    loss, grads, _ = _ref(params, x, y, h0, **options)
    return loss, grads


def returns_none(params, x, y, h0, **options):
    _ref(params, x, y, h0, **options)


def grads_not_dict(params, x, y, h0, **options):
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    return loss, list(grads.values()), h_last


def string_loss(params, x, y, h0, **options):
    _, grads, h_last = _ref(params, x, y, h0, **options)
    return "a loss", grads, h_last


def numeric_string_loss(params, x, y, h0, **options):
    loss, grads, h_last = _ref(params, x, y, h0, **options)
    return str(loss), grads, h_last                  # right digits, wrong type


def modifies_x(params, x, y, h0, **options):
    out = _ref(params, x, y, h0, **options)           # correct numbers, then the damage
    x += 1.0
    return out


def modifies_U(params, x, y, h0, **options):  # noqa: N802 - named after the array
    out = _ref(params, x, y, h0, **options)
    params["U"] *= 2.0
    return out


def noisy(params, x, y, h0, **options):
    """Correct numbers, but chatters on stdout at the Python and at the file-descriptor level."""
    print("noise from print()")
    sys.stdout.flush()
    os.write(1, b"junk written to fd 1\n")
    return _ref(params, x, y, h0, **options)


def scaled(name, factor):
    """The reference with one output (a gradient name, "loss" or "h_last") times ``factor``."""
    def impl(params, x, y, h0, **options):
        loss, grads, h_last = _ref(params, x, y, h0, **options)
        if name == "loss":
            loss = loss * factor
        elif name == "h_last":
            h_last = h_last * factor
        else:
            grads[name] = grads[name] * factor
        return loss, grads, h_last
    impl.__qualname__ = f"scaled_{name}"
    return impl
