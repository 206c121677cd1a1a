"""The project's own reference implementation, found beside the gradcheck package.

``reference/`` is installed next to ``gradcheck/`` (site-packages, or the repository in an
editable install). It is loaded from that folder under a private module name, never
looked up on ``sys.path``: a user's own ``reference.py`` or ``reference/`` in the working
folder (first on ``sys.path``) would otherwise replace it, and the checker would calibrate
against, and call itself, the user's code. ``import reference`` elsewhere is untouched.
"""
import importlib.util
import sys
from pathlib import Path

__all__ = ["reference", "REFERENCE_DIR", "cell_module"]

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
_NAME = "_gradcheck_reference"           # a name no user module is expected to have


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    init = REFERENCE_DIR / "__init__.py"
    if not init.is_file():                               # pragma: no cover - broken install
        raise ImportError(f"gradcheck's reference implementation is missing: no {init}; "
                          "reinstall gradcheck")
    spec = importlib.util.spec_from_file_location(
        _NAME, init, submodule_search_locations=[str(REFERENCE_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module                          # its relative imports look it up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return module


reference = _load()
importlib.import_module(f"{_NAME}.activations")          # submodules the checker reads


def cell_module(name):
    """The reference's module ``name`` (a cell's: ``lstm``), loaded the same private way."""
    return importlib.import_module(f"{_NAME}.{name}")
