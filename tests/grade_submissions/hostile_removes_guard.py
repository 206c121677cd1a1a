"""Hostile: takes the honesty guard's import hooks out of its process, forgets the modules
the worker had loaded, imports the checker's reference for real, and falls back to zeros
when that is refused."""
import sys

import numpy as np

sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ == "builtins"]
for name in [n for n in sys.modules if n.startswith(("gradcheck", "reference", "_gradcheck"))]:
    del sys.modules[name]
sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])       # the repository: reference/ is there
try:
    from reference import loss_and_grads as _impl
except Exception:
    _impl = None


def loss_and_grads(params, x, y, h0, **options):
    if _impl is not None:
        return _impl(params, x, y, h0, **options)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grads.update(x=np.zeros_like(x), h0=np.zeros_like(h0))
    return 0.0, grads, h0.copy()
