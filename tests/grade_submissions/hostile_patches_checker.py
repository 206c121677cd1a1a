"""Hostile: patches what it can reach of the checker and of NumPy in its process so that
any comparison would pass, then returns zeros."""
import sys

import numpy as np

for name, module in list(sys.modules.items()):
    if "gradcheck" in name or "compare" in name:
        for attr in ("compare", "judge_window", "call_impl"):
            if hasattr(module, attr):
                setattr(module, attr, lambda *a, **k: None)
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.isfinite = lambda a: np.ones(np.shape(a), bool)


def loss_and_grads(params, x, y, h0, **options):
    sys.stdout.write('\x00\x00\x00\x10{"op": "call"}')   # a forged reply on stdout
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grads.update(x=np.zeros_like(x), h0=np.zeros_like(h0))
    return 0.0, grads, h0.copy()
