"""A correct --impl file written the way many people write modules today: postponed
annotations and a dataclass (which looks its module up in sys.modules)."""
from __future__ import annotations

import dataclasses

import numpy as np

import reference


@dataclasses.dataclass
class Window:
    loss: float
    grads: dict
    h_last: np.ndarray


def loss_and_grads(params, x, y, h0, **options):
    w = Window(*reference.loss_and_grads(params, x, y, h0, **options))
    return w.loss, w.grads, w.h_last
