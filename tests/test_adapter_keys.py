"""Every declaration key is honoured by the whole-window check AND by a layer checked by
itself (gradcheck.adapters builds both from the same stages): for each key, the code
that needs it passes with its declaration and does not pass with the key taken out, in
both paths."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from gradcheck import adapters
from gradcheck.layer_check import check_layer

STYLES_DIR = Path(__file__).resolve().parent / "impls" / "styles"
LIBRARY = json.loads((STYLES_DIR / "library.json").read_text())
# a cell that keeps its own state, given h0 and read back dh0 through its attributes; two
# biases, the second passed as zeros; parameters and gradients in dicts of its own names
CELL = {"style": "cell", "carries_state": True, "params": "parameters", "grads": "gradients",
        "zero": "flush", "state": {"h0": "a0", "dh0": "dA_next"},
        "options": {"activations": ["identity", "tanh", "identity"]},
        "layers": {"dense1": None,
                   "rnn": {"class": "Cell", "args": ["U", "b2", "W2", "b2:zeros"],
                           "keys": ["Waa", "ba", "Wax", "bx"], "kwargs": {"n_out": "R:size"}},
                   "dense2": {"class": "Dense", "args": ["W3", "b3"]}}}
# the output layer called once per step, its backward given the list of steps' gradients
STEPS = copy.deepcopy(LIBRARY)
STEPS["layers"]["dense2"].update({"class": "StepDense", "sequence": "steps"})
SIZES = dict(batch=4, input_size=3, state_size=3, output_size=5)
WINDOW = dict(SIZES, interval=3, seq_len=7)
LAYER = dict(SIZES, interval=3, hidden_size=4)

# (key, file, declaration, the layer that has it, the path to the key, its value without it
# (DELETE: taken out))
DELETE = object()
KEYS = [
    ("carries_state", "cell_inside.py", CELL, "rnn", ("carries_state",), DELETE),
    ("state", "cell_inside.py", CELL, "rnn", ("state",), DELETE),
    ("keys", "cell_inside.py", CELL, "rnn", ("layers", "rnn", "keys"), DELETE),
    ("params", "cell_inside.py", CELL, "rnn", ("params",), DELETE),
    ("grads", "cell_inside.py", CELL, "rnn", ("grads",), DELETE),
    ("zero", "cell_inside.py", CELL, "rnn", ("zero",), DELETE),
    ("kwargs", "library.py", LIBRARY, "dense1", ("layers", "dense1", "kwargs"), DELETE),
    ("size", "library.py", LIBRARY, "dense1", ("layers", "dense1", "kwargs", "n_in"), "I"),
    ("row", "library.py", LIBRARY, "dense1", ("layers", "dense1", "get", "db"), "b1"),
    ("reset", "library.py", LIBRARY, "dense1", ("layers", "dense1", "reset"), DELETE),
    ("set_state", "library.py", LIBRARY, "rnn", ("layers", "rnn", "set_state"), DELETE),
    ("dh0", "library.py", LIBRARY, "rnn", ("layers", "rnn", "dh0"), DELETE),
    ("sequence", "library.py", LIBRARY, "dense2", ("layers", "dense2", "sequence"), DELETE),
    ("sequence-steps", "library.py", STEPS, "dense2", ("layers", "dense2", "sequence"), "list"),
]


def _without(decl, path, value):
    out = copy.deepcopy(decl)
    *where, key = path
    inner = out
    for k in where:
        inner = inner[k]
    if value is DELETE:
        del inner[key]
    else:
        inner[key] = value
    return out


def _passes(path, file, decl, layer, module=None):
    """True when the check passes; False for a verdict, a usage error or not supported."""
    impl = module if module is not None else str(STYLES_DIR / file)
    loss, acts, _ = adapters.supported(adapters.declaration(decl))
    try:
        if path == "window":
            report = gradcheck.check(impl, adapter=decl, in_process=True, **WINDOW)
        else:
            report = check_layer(layer, impl, adapter=decl, loss=loss, activations=acts,
                                 **LAYER)
    except gradcheck.UsageError:
        return False
    return report.passed


@pytest.mark.parametrize("path", ["window", "layer"])
@pytest.mark.parametrize("key,file,decl,layer,where,value", KEYS, ids=[k[0] for k in KEYS])
def test_each_key_is_honoured_in_both_paths(key, file, decl, layer, where, value, path):
    assert _passes(path, file, decl, layer)
    assert not _passes(path, file, _without(decl, where, value), layer)


@pytest.mark.parametrize("path", ["window", "layer"])
def test_an_input_declared_zeros_keeps_no_gradient(path):
    """The cell's second bias is passed as zeros: the gradient the code computes for it
    (here made NaN) is never taken for b2, in either path."""
    module = adapters._module_of(str(STYLES_DIR / "cell_inside.py"), adapters.declaration(CELL))
    backward = module.Cell.backward

    def poisoned(self, dA):
        out = backward(self, dA)
        self.gradients["bx"] = np.full_like(self.gradients["bx"], np.nan)
        return out
    module.Cell.backward = poisoned
    assert _passes(path, None, CELL, "rnn", module)
    declared_plain = _without(CELL, ("layers", "rnn", "args"), ["U", "b2", "W2", "b2"])
    assert not _passes(path, None, declared_plain, "rnn", module)


def test_code_that_starts_from_a_zero_state_cannot_be_given_h0_by_a_layer_check():
    decl = {"style": "textbook", "h0": "zeros"}
    with pytest.raises(gradcheck.UsageError, match=r"^adapter='h0': code that starts every "
                                                   r"window from a zero state cannot be given "
                                                   r"the state a layer check gives it$"):
        check_layer("rnn", str(STYLES_DIR / "textbook.py"), adapter=decl, **LAYER)


def test_the_readmes_library_entry_is_the_one_checked():
    readme = (STYLES_DIR.parents[2] / "README.md").read_text()
    block = next(b.split("```", 1)[0] for b in readme.split("```json\n")[1:]
                 if b.startswith('"dense2"'))
    assert json.loads("{" + block + "}") == {"dense2": LIBRARY["layers"]["dense2"]}
