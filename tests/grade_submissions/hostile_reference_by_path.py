"""Hostile: loads the checker's reference from its files under another name, and falls back
to zeros when that is refused."""
import glob
import importlib.util
import os
import site
import sys

import numpy as np

_here = os.path.dirname(os.path.abspath(__file__))
_impl = None
for root in site.getsitepackages() + sys.path + [os.path.dirname(os.path.dirname(_here))]:
    for init in glob.glob(os.path.join(root, "reference", "__init__.py")) + glob.glob(
            os.path.join(os.path.dirname(root), "*", "reference", "__init__.py")):
        try:
            spec = importlib.util.spec_from_file_location(
                "my_helpers", init, submodule_search_locations=[os.path.dirname(init)])
            module = importlib.util.module_from_spec(spec)
            sys.modules["my_helpers"] = module
            spec.loader.exec_module(module)
            _impl = module.loss_and_grads
            break
        except Exception:
            continue
    if _impl is not None:
        break


def loss_and_grads(params, x, y, h0, **options):
    if _impl is not None:
        return _impl(params, x, y, h0, **options)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grads.update(x=np.zeros_like(x), h0=np.zeros_like(h0))
    return 0.0, grads, h0.copy()
