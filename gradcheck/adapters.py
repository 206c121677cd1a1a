"""Adapters: code written the way people write it, checked under the whole-window contract.

An adapter is PLAIN DATA (JSON-able: dicts, lists, strings, numbers, booleans) that says
how a user's layers map onto the model's arrays (model.py): which functions or classes
compute which layer, their arguments and returns by model name, the layout (batch- or
time-first), transposed weights (``"W2:T"``), a second bias (``"b2:zeros"``: passed as
zeros, its gradient ignored), column vectors (``"b2:col"``), and what the code computes
(its loss, activations and reduction). ``build(spec, declaration)`` turns a module spec
and a declaration into a callable with the ``loss_and_grads`` contract, so the checker,
the CLI and a worker process (which receives only the two plain values) all build the
same thing. No maths is written around the user's code: the adapter only moves arrays
(transposes, reshapes, layout) and calls the user's layers in the model's order.

Styles (``STYLES``; a declaration names one and overrides any key):

- ``course``: functional layers with caches, batch first: ``temporal_affine_forward/
  backward`` (first and last dense layers), ``rnn_forward/backward``, ``temporal_softmax_loss``.
- ``textbook``: stateful layer classes (``TimeAffine``, ``TimeRNN(Wx, Wh, b, stateful=True)``,
  ``TimeSoftmaxWithLoss``) with ``params``/``grads`` lists; ONE instance of each is built
  from the parameters on the first call and kept across windows.
- ``cell``: per-step cell classes that keep their own per-step lists and accumulate
  gradients in a dict (``grads[name] += ...``); one instance, kept across windows.
- ``function``: one loss function of one-hot ids, batch 1, column vectors, weights read
  from module globals (``lossFun(inputs, targets, hprev)``), as in minimal char-RNNs.
- conventions alone (no ``style``: ``{"gate_order": "ifog"}``): the whole-window
  ``loss_and_grads`` of the contract itself, written in other conventions of its cell
  (below); the resolved declaration's style is ``"contract"``.

Cells (``--cell lstm|gru``, model.py): a style's ``"cells"`` section holds, per cell, the
keys that replace the style's own for that cell (``"layers"`` merged entry by entry, null
removing one; the recurrent layer's entry stays ``"rnn"`` whatever the cell), so
``declaration("course", cell="lstm")`` is the course style's LSTM. The resolved
declaration names its ``"cell"``. A cell's **conventions** are keys too, never code
(gradcheck/cells/conventions.py; each cell's module lists its own): ``"gate_order"``
(the LSTM's contract ``"ifgo"``; the GRU's ``"rzn"``), ``"update"`` (GRU: ``"z_keeps"``,
the contract's h = (1-z)*n + z*h_prev, or ``"z_takes"``), ``"reset"`` (GRU:
``"before"`` or ``"after"``), ``"cell_state"`` (LSTM: ``"carried"``, or ``"reset"``: the
code starts every call from c = 0 and returns no c_last, so the checker's windows start
from c0 = 0 too, and c0's gradient and c_last are skipped). The adapter only permutes the
gate blocks of Wx, Wh, b (bh) and flips the signs of z's blocks (cells/convention_arrays.py),
and the gradients back. In a ``classes`` declaration the recurrent layer's ``set_state`` is
called with h0 and the cell's further states (c0); its entry may name the attributes
holding them after a window (``"c_last": "c"``, ``"dc0": ATTRIBUTE``); one it does not
name is skipped, as declared.
"""
import copy
import importlib
import inspect
import json
import os
import sys

import numpy as np

from .errors import DeclarationError, UsageError
from .model import (DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_LOSS, DEFAULT_REDUCTION,
                    GRAD_NAMES, LAYERS, cell as cell_of, cell_names, describe)

__all__ = ["STYLES", "build", "load_module", "declaration", "read_declaration", "prepare_data",
           "supported", "skipped", "sizes", "layer_impl", "cell_options", "declared_options",
           "resets_states", "conventions_only", "convention_pair", "layer_skips"]

_FIRST, _RNN, _OUT = (layer.name for layer in LAYERS)          # dense1, rnn, dense2

STYLES = {
    "course": {
        "style": "layers", "layout": "batch_first",
        "options": {"loss": "ce", "activations": ["identity", "tanh", "identity"],
                    "reduction": "mean"},
        "layers": {
            _FIRST: {"forward": "temporal_affine_forward", "backward": "temporal_affine_backward",
                     "args": ["x", "W1", "b1"], "grads": ["x", "W1", "b1"]},
            _RNN: {"forward": "rnn_forward", "backward": "rnn_backward",
                   "args": ["a", "h0", "W2", "U", "b2"], "grads": ["a", "h0", "W2", "U", "b2"]},
            "rnn_step": {"forward": "rnn_step_forward", "backward": "rnn_step_backward",
                         "args": ["a_t", "h_prev", "W2", "U", "b2"],
                         "grads": ["a_t", "h_prev", "W2", "U", "b2"]},
            _OUT: {"forward": "temporal_affine_forward", "backward": "temporal_affine_backward",
                   "args": ["h", "W3", "b3"], "grads": ["h", "W3", "b3"]},
            "loss": {"function": "temporal_softmax_loss", "args": ["z3", "y", "mask"],
                     "returns": ["loss", "z3"]},
        },
        "cells": {
            "lstm": {
                "gate_order": "ifog", "cell_state": "reset",
                "layers": {
                    _RNN: {"forward": "lstm_forward", "backward": "lstm_backward",
                           "args": ["a", "h0", "Wx", "Wh", "b"],
                           "grads": ["a", "h0", "Wx", "Wh", "b"]},
                    "rnn_step": None,
                    "lstm_step": {"forward": "lstm_step_forward",
                                  "backward": "lstm_step_backward",
                                  "args": ["a_t", "h_prev", "c_prev", "Wx", "Wh", "b"],
                                  "returns": ["h_t", "c_t"],
                                  "grads": ["a_t", "h_prev", "c_prev", "Wx", "Wh", "b"]},
                },
            },
        },
    },
    "textbook": {
        "style": "classes", "layout": "batch_first",
        "options": {"loss": "ce", "activations": ["identity", "tanh", "identity"],
                    "reduction": "mean"},
        "loss_divides_by": "batch_time",      # the loss averages over batch AND time
        "layers": {
            _FIRST: {"class": "TimeAffine", "args": ["W1", "b1"]},
            _RNN: {"class": "TimeRNN", "args": ["W2", "U", "b2"], "kwargs": {"stateful": True},
                   "set_state": "set_state", "dh0": "dh"},
            _OUT: {"class": "TimeAffine", "args": ["W3", "b3"]},
            "loss": {"class": "TimeSoftmaxWithLoss"},
        },
        "cells": {
            "lstm": {"gate_order": "fgio",
                     "layers": {_RNN: {"class": "TimeLSTM", "args": ["Wx", "Wh", "b"],
                                       "c_last": "c"}}},
            "gru": {"gate_order": "zrn", "update": "z_takes",
                    "layers": {_RNN: {"class": "TimeGRU", "args": ["Wx", "Wh", "b"]}}},
        },
    },
    "cell": {
        "style": "cells", "layout": "time_first",
        "options": {"loss": "l2", "activations": ["tanh", "tanh", "identity"],
                    "reduction": "mean"},
        "layers": {
            _FIRST: {"class": "Dense", "args": ["W1", "b1"], "kwargs": {"activation": "tanh"}},
            _RNN: {"class": "RNNCell", "args": ["W2", "U", "b2"]},
            _OUT: {"class": "Dense", "args": ["W3", "b3"]},
            "loss": {"function": "l2_loss"},
        },
        "forward": "forward", "backward": "backward", "grads": "grads", "zero": "zero_grad",
    },
    "function": {
        "style": "function", "function": "lossFun", "batch": 1,
        "options": {"loss": "ce", "activations": ["identity", "tanh", "identity"],
                    "reduction": "sum"},
        "first_layer": "identity",            # a = x: no first dense layer (W1 = I, b1 = 0)
        "args": ["x:ids", "y:ids", "h0:col"],
        "globals": {"Wxh": "W2:T", "Whh": "U:T", "Why": "W3:T", "bh": "b2:col", "by": "b3:col"},
        "returns": ["loss", "W2:T", "U:T", "W3:T", "b2:col", "b3:col", "h_last:col"],
    },
}
_KINDS = ("layers", "classes", "cells", "function", "contract")
_PROBE = {"layers": lambda d: d["layers"][_RNN]["forward"],
          "classes": lambda d: d["layers"][_RNN]["class"],
          "cells": lambda d: d["layers"][_RNN]["class"],
          "function": lambda d: d["object"]["class"] if "object" in d else d["function"]}


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def declaration(adapter, cell=None):
    """A full declaration from ``adapter``: a style name, or a dict that may name a
    ``style`` among STYLES and override any of its keys, for the middle layer ``cell``
    (the style's ``"cells"`` section for it; None: the one the declaration names, else
    the RNN). UsageError when unusable."""
    if isinstance(adapter, str):
        adapter = {"style": adapter}
    if not isinstance(adapter, dict):
        raise UsageError("adapter", adapter, f"expected a style ({', '.join(STYLES)}) or a dict")
    style = adapter.get("style")
    cell = cell or adapter.get("cell") or DEFAULT_CELL
    if adapter.get("cell", cell) != cell:
        raise UsageError("adapter", f"cell={adapter.get('cell')}",
                         f"this declaration is for --cell {adapter.get('cell')}; the check's "
                         f"cell is {cell}")
    if style in STYLES:
        base = {k: v for k, v in STYLES[style].items() if k != "cells"}
        if cell != DEFAULT_CELL:
            sections = STYLES[style].get("cells", {})
            if cell not in sections:
                have = [n for n, s in STYLES.items() if cell in s.get("cells", {})]
                raise UsageError("adapter", style, f"the {style} style has no --cell {cell} "
                                 f"entries (styles with them: {', '.join(have) or 'none'}; or "
                                 f"declare the layers yourself, see README, Adapters)")
            base = _merge(base, sections[cell])
        decl = _merge(base, {k: v for k, v in adapter.items() if k != "style"})
    elif style in _KINDS:
        decl = copy.deepcopy(adapter)
    else:
        styles = ", ".join(dict.fromkeys(list(STYLES) + list(_KINDS)))
        if style is None and _conventions_alone(adapter):
            decl = dict(copy.deepcopy(adapter), style="contract")
        elif style is None:        # keys alone: name the missing style, not "None"
            raise UsageError("adapter", json.dumps(adapter, default=str),
                             f"names no \"style\" (one of {styles}), and not only a cell's "
                             f"conventions (the contract's own loss_and_grads in other "
                             f"conventions: {', '.join(_CONVENTION_KEYS)})")
        else:
            raise UsageError("adapter", style, f"style must be one of {styles}")
    try:
        json.dumps(decl)
    except (TypeError, ValueError):
        raise UsageError("adapter", adapter, "must be plain JSON-able data") from None
    decl["cell"] = cell
    if cell != DEFAULT_CELL and decl["style"] in ("cells", "function"):
        raise UsageError("adapter", decl["style"], f"a {decl['style']} declaration checks "
                         f"--cell {DEFAULT_CELL} only; for --cell {cell}, a layers or classes "
                         f"declaration (the course or textbook style)")
    _check_conventions(decl, cell)
    layers = decl.get("layers")
    if isinstance(layers, dict):          # null removes a layer the style has
        decl["layers"] = {k: v for k, v in layers.items() if v is not None}
        if _FIRST not in decl["layers"]:
            decl.setdefault("first_layer", "identity")
    return decl


def _check_conventions(decl, cell):
    """UsageError for a convention key (of any cell) that ``cell`` has not, or a value
    it does not allow: one line naming the key and the allowed values."""
    own = cell_of(cell).conventions
    for name in cell_names():
        for key in cell_of(name).conventions:
            if key not in decl:
                continue
            if key not in own:
                raise UsageError("adapter", f"{key}={decl[key]}",
                                 f"\"{key}\" is not a convention of --cell {cell} (its keys: "
                                 f"{', '.join(own) or 'none'})")
            if decl[key] not in own[key].values:
                raise UsageError("adapter", f"{key}={decl[key]}",
                                 f"\"{key}\" of --cell {cell} must be one of "
                                 f"{', '.join(own[key].values)} ({own[key].contract}: the "
                                 f"contract's)")


def read_declaration(text, cell=None):
    """``--adapter``: a style name, a JSON object, or a path to a .json file; or a list of
    them (``--adapter`` given again), each merged over the ones before it (a .json file,
    then an inline override of some of its keys); for the middle layer ``cell``."""
    texts = [text] if isinstance(text, str) else list(text)
    merged = {}
    for one in texts:
        merged = _merge(merged, _read_one(one))
    return declaration(merged, cell)


def _read_one(text):
    """One ``--adapter`` value as a (partial) declaration dict."""
    if text in STYLES:
        return {"style": text}
    if os.path.isfile(text):
        try:
            with open(text) as f:
                raw = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError("adapter", text, f"cannot read it as JSON: {exc}") from None
    else:
        try:
            raw = json.loads(text)
        except ValueError:
            raise UsageError("adapter", text, f"expected a style ({', '.join(STYLES)}), a "
                             "JSON object or a .json file") from None
    if not isinstance(raw, dict):
        raise UsageError("adapter", text, "expected a JSON object")
    return raw


def supported(decl):
    """(loss, activations, reduction) the declared code computes."""
    o = decl.get("options", {})
    return (o.get("loss", DEFAULT_LOSS), tuple(o.get("activations", DEFAULT_ACTIVATIONS)),
            o.get("reduction", DEFAULT_REDUCTION))


def skipped(decl):
    """The gradients this code does not compute (never compared, reported as skipped)."""
    out = list(decl.get("skip", []))
    if decl.get("first_layer") == "identity":
        out += ["W1", "b1"]
    if _no_b1(decl):
        out.append("b1")
    if _ids_input(decl):
        out.append("x")                   # ids have no gradient
    if decl.get("h0") == "zeros" or (decl.get("carries_state") and not _state_attrs(decl)):
        out.append("h0")
    if decl["style"] == "function":
        returned = {_split(r)[0] for r in decl["returns"]}
        out += [n for n in GRAD_NAMES if n not in returned]
    model = _model(decl)
    out += [n for pair in model.extra_states for n in pair if n in _missing_states(decl)]
    out += _absent_options(decl)
    names = model.grad_names + tuple(o for _, o in model.extra_states)
    return tuple(n for n in names if n in set(out))


def _model(decl):
    """The model.Model of the declaration's cell, with the options it declares."""
    return describe(decl.get("cell") or DEFAULT_CELL, **cell_options(decl))


def cell_options(decl):
    """{cell option: True} the declaration's conventions turn on (``"reset": "after"``)."""
    cell = decl.get("cell") or DEFAULT_CELL
    out = {}
    for key, c in cell_of(cell).conventions.items():
        if c.effect.startswith("option ") and decl.get(key, c.contract) != c.contract:
            out[c.effect.split(" ", 1)[1]] = True
    return out


def declared_options(decl, given):
    """``given`` ({cell option: value}, the check's) with the options the declaration's
    conventions turn on; UsageError for one given against what a key the declaration
    names asks (``"reset": "after"`` with reset_after=False, or "before" with True)."""
    for key, c in cell_of(decl.get("cell") or DEFAULT_CELL).conventions.items():
        name = c.effect[len("option "):] if c.effect.startswith("option ") else None
        if name is None or key not in decl:
            continue
        on = decl[key] != c.contract
        if given.get(name, on) != on:
            raise UsageError(name, given[name], f"the adapter declares \"{key}\": "
                             f"\"{decl[key]}\", which needs {name}={on}")
    return dict(cell_options(decl), **given)


# Every cell's convention keys (gradcheck/cells/conventions.py).
_CONVENTION_KEYS = tuple(dict.fromkeys(k for name in cell_names()
                                       for k in cell_of(name).conventions))


def _conventions_alone(adapter):
    """``adapter`` (a dict) holds convention keys alone (and perhaps ``"cell"``)."""
    rest = set(adapter) - {"cell"}
    return bool(rest) and rest <= set(_CONVENTION_KEYS)


def conventions_only(adapter, cell):
    """{"cell": cell, key: value, ...} when ``adapter`` (a dict, or ``--adapter``'s texts)
    names no style and holds convention keys alone: a layer's own two functions declared
    to follow those conventions (a layer check); None for any other adapter. UsageError for
    a key of another cell or a value ``cell`` does not allow."""
    cell = cell or DEFAULT_CELL
    texts = [adapter] if isinstance(adapter, (str, dict)) else list(adapter)
    merged = {}
    for one in texts:
        merged = _merge(merged, one if isinstance(one, dict) else _read_one(one))
    if "style" in merged or not _conventions_alone(merged):
        return None
    if merged.get("cell", cell) != cell:
        raise UsageError("adapter", f"cell={merged['cell']}", f"this declaration is for "
                         f"--cell {merged['cell']}; the layer's cell is {cell}")
    decl = dict(merged, cell=cell)
    _check_conventions(decl, cell)
    return decl


def resets_states(decl):
    """Whether the declared code starts every call from zero further states (an LSTM's
    c0, ``"cell_state": "reset"``): the checker's windows then do the same."""
    cell = decl.get("cell") or DEFAULT_CELL
    return any(c.effect == "zero c0" and decl.get(k, c.contract) != c.contract
               for k, c in cell_of(cell).conventions.items())


def _missing_states(decl):
    """The further states' names (incoming gradient, outgoing value) the code cannot give:
    all of them when it resets them; in a ``classes`` declaration those whose attribute
    the recurrent layer's entry does not name (``"c_last": "c"``, ``"dc0": ...``); in a
    ``layers`` one all of them (its forward takes h0 alone and returns the h sequence)."""
    model = _model(decl)
    entry = decl.get("layers", {}).get(_RNN, {})
    out = set()
    for i, o in model.extra_states:
        if resets_states(decl):
            out |= {i, o}
        elif decl["style"] == "contract":       # the contract's own function takes them all
            continue
        elif decl["style"] == "classes":
            out |= {n for n, attr in ((i, entry.get("d" + i)), (o, entry.get(o))) if not attr}
        else:
            out |= {i, o}
    return out


def _absent_options(decl):
    """A cell option's arrays (bh) that no entry of the declaration passes to the code:
    zero in the data (prepare_data) and skipped."""
    if decl["style"] == "contract":             # the contract's params hold them
        return []
    model = _model(decl)
    plain = {a.name for a in describe(model.cell.name).arrays}
    given = {_split(a)[0] for entry in decl.get("layers", {}).values() if isinstance(entry, dict)
             for a in list(entry.get("args", [])) + list(entry.get("set", {}).values())}
    return [a.name for a in model.arrays if a.name not in plain and a.name not in given]


def _state_attrs(decl):
    """(attribute given h0, attribute holding dh0 after backward) of a cell that keeps its
    own state (``"state": {"h0": NAME, "dh0": NAME}``), or None."""
    state = decl.get("state")
    if not decl.get("carries_state") or not isinstance(state, dict):
        return None
    return state.get("h0"), state.get("dh0")


def _ids_input(decl):
    """The code takes class ids where the model has one-hot rows of x."""
    return decl.get("input") == "ids" or any(_split(a) == ("x", "ids")
                                             for a in decl.get("args", []))


def _no_b1(decl):
    """A first layer without a bias (an embedding: a = onehot(x) W1)."""
    first = decl.get("layers", {}).get(_FIRST)
    if first is None:
        return False
    given = list(first.get("args", [])) + list(first.get("set", {}).values())
    return "b1" not in {_split(a)[0] for a in given}


def prepare_data(decl, params, x):
    """What the code needs of the data: a = x with W1 = I, b1 = 0 when it has no first
    dense layer; b1 = 0 when its first layer has no bias (an embedding); one-hot x for
    code taking ids. Returns (params, x) (new arrays)."""
    params = dict(params)
    if decl.get("first_layer") == "identity":
        I, H = params["W1"].shape
        params["W1"] = np.eye(I, H, dtype=params["W1"].dtype)
        params["b1"] = np.zeros_like(params["b1"])
    if _no_b1(decl):
        params["b1"] = np.zeros_like(params["b1"])
    if _ids_input(decl):
        x = np.eye(x.shape[-1], dtype=x.dtype)[np.argmax(x, axis=-1)]
    for name in _absent_options(decl):
        if name in params:
            params[name] = np.zeros_like(params[name])
    return params, x


# ------------------------------------------------------------------ array forms

def _split(item):
    name, _, form = item.partition(":")
    return name, form


def _encode(arr, form, batch_first):
    """A model array as the user's code takes it."""
    if form == "T":
        return np.ascontiguousarray(arr.T)
    if form == "zeros":
        return np.zeros_like(arr)
    if form == "col":                     # [n] -> [n, 1]; a [1, n] state -> [n, 1]
        return np.ascontiguousarray(arr.reshape(-1, 1))
    if form == "row":                     # [n] -> [1, n]: a bias kept as a row, broadcast
        return np.ascontiguousarray(arr.reshape(1, -1))
    if form == "ids":                     # one-hot [T, 1, n] or ids [T, 1] -> a list of ints
        a = np.asarray(arr)
        return [int(i) for i in (a[:, 0].argmax(-1) if a.ndim == 3 else a[:, 0])]
    if batch_first and np.ndim(arr) >= 2 and form == "time":
        return np.ascontiguousarray(np.swapaxes(arr, 0, 1))
    return arr


def _decode(arr, form, shape, batch_first):
    """A user's returned array back in the model's layout."""
    a = np.asarray(arr)
    if form == "T":
        a = a.T
    elif form in ("col", "row"):
        a = a.reshape(shape)
    elif form == "time" and batch_first:
        a = np.swapaxes(a, 0, 1)
    return a


_TIME = {"x", "a", "h", "z3", "y", "mask"}         # arrays with a time axis


def _form(name, form):
    return "time" if (not form and name in _TIME) else form


# ------------------------------------------------------------------ building

def _module_of(spec, decl):
    if inspect.ismodule(spec):
        return spec
    from .untrusted import import_module_of, load_impl
    if not isinstance(spec, str):
        raise UsageError("impl", spec, "with an adapter, expected FILE.py, MODULE or a module")
    if spec.count(":") == 0 or spec.endswith(".py") and ":" not in os.path.basename(spec):
        # (the form untrusted reads; what the declaration names is looked up by the caller)
        return import_module_of(f"{spec}:{_PROBE[decl['style']](decl)}")
    load_impl(spec)                       # loads it (a UsageError if it cannot) ...
    where = spec.rpartition(":")[0]
    if where.endswith(".py") or os.sep in where:      # ... under the name untrusted gives it
        return sys.modules["_gradcheck_impl_" + os.path.splitext(os.path.basename(where))[0]]
    return importlib.import_module(where)


def _module_names(decl, layer=None):
    """(key, name, what) of each name the declaration looks up in the module (of the
    entry ``layer`` alone, when given): its layers' classes, and functions (a layers
    style's forward, backward and loss function; a cells style's loss function), or the
    function style's function (or, with an object, its class)."""
    style = decl["style"]
    if style == "function":
        spec = decl.get("object")
        yield (("class", spec["class"], "class") if spec else
               ("function", decl["function"], "function"))
        return
    functions = {"layers": ("forward", "backward", "function"), "cells": ("function",)}
    for entry, spec in decl.get("layers", {}).items():
        if spec is None or layer not in (None, entry):
            continue
        for key in ("class",) + functions.get(style, ()):
            if key in spec:
                yield key, spec[key], "class" if key == "class" else "function"


def _lacks(owner, name):
    """``owner`` (a module or an object) has no ``name``, found without running its code;
    an owner with ``__getattr__`` may make any name, so it lacks none."""
    return (inspect.getattr_static(owner, name, _ABSENT) is _ABSENT
            and inspect.getattr_static(owner, "__getattr__", None) is None)


def _whose(owner):
    """``rnn_layers.py`` for a module loaded from a file, else its name; a class's name."""
    return (os.path.basename(getattr(owner, "__file__", None) or owner.__name__)
            if inspect.ismodule(owner) else type(owner).__name__)


def _declared(module, decl, spec, layer=None):
    """UsageError (naming --impl ``spec``, as the worker's load does), one line naming the
    key, for a class or function the declaration (its entry ``layer``, when given) names
    that ``module`` does not have: found when the code loads, before anything is called
    (a method or attribute of the code's objects is found when the adapter calls it:
    _member)."""
    for key, name, what in _module_names(decl, layer):
        if _lacks(module, name):
            raise UsageError("impl", spec if isinstance(spec, str) else _whose(module),
                             f'adapter key "{key}": {_whose(module)} has no {what} "{name}"')


def load_module(spec, adapter):
    """The module ``spec`` (``FILE.py`` or ``MODULE``) names, loaded for ``adapter``."""
    return _module_of(spec, declaration(adapter))


_ABSENT = object()


def _member(owner, name, key, what):
    """``owner``'s ``name`` (a class or function of the user's module, a method or an
    attribute of a user's object), which the declaration's ``key`` names: DeclarationError,
    one line naming the key and what ``owner`` lacks, when it has no such name. Looked up
    without running code first, so that an AttributeError the user's own property or
    ``__getattr__`` raises keeps its frame (and its blame)."""
    if _lacks(owner, name):
        raise DeclarationError(f'adapter key "{key}": {_whose(owner)} has no {what} "{name}"')
    return getattr(owner, name)


def build(spec, adapter):
    """The ``loss_and_grads`` callable for the module ``spec`` (``FILE.py``, ``MODULE``,
    or either with ``:NAME``) under ``adapter`` (a style or a declaration)."""
    decl = declaration(adapter)
    if decl["style"] == "contract":
        return _contract_function(spec, decl)
    module = _module_of(spec, decl)
    _declared(module, decl, spec)
    fn = (_Function if decl["style"] == "function" else _Adapted)(module, decl)
    fn.declaration = decl
    fn.__name__ = fn.__qualname__ = f"{getattr(module, '__name__', spec)}[{decl['style']}]"
    fn.__module__ = "adapter"
    return fn


def _contract_function(spec, decl):
    """The contract's ``loss_and_grads`` (``spec``: ``FILE.py[:FUNC]``, ``MODULE:FUNC`` or
    the callable) written in the conventions ``decl`` declares, as a function of the
    contract: the blocked parameters (Wx, Wh, b, bh) handed over as the code reads them
    and its gradients of them mapped back (cells/convention_arrays.py). What it returns
    that is no dict of arrays of blocks is passed on as it is (the check tells what is
    wrong with it)."""
    from .cells.convention_arrays import declared, gradient_from_code, to_code
    if callable(spec):
        fn = spec
    else:
        from .untrusted import load_impl
        fn = load_impl(spec)
    values, cell = declared(decl, decl["cell"]), decl["cell"]
    # code that resets the further states (c0) may neither take them nor return them
    resets = len(_model(decl).extra_states) if resets_states(decl) else 0

    def loss_and_grads(params, x, y, h0, *states, **options):
        args = ({n: to_code(n, v, values, cell) for n, v in params.items()}, x, y, h0)
        out = fn(*args, **options) if resets and _binds(fn, args, options) else \
            fn(*args, *states, **options)
        if isinstance(out, tuple) and len(out) > 1 and isinstance(out[1], dict):
            out = (out[0], {n: gradient_from_code(n, g, values, cell)
                            for n, g in out[1].items()}, *out[2:])
            if resets and len(out) == 3:      # no c_last (skipped): a stand-in
                out += tuple(np.zeros_like(h0) for _ in range(resets))
        return out
    loss_and_grads.declaration = decl
    name = getattr(fn, "__name__", "loss_and_grads")
    loss_and_grads.__name__ = loss_and_grads.__qualname__ = (
        name if isinstance(name, str) else "loss_and_grads")
    loss_and_grads.__module__ = getattr(fn, "__module__", None) or "adapter"
    return loss_and_grads


def _binds(fn, args, options):
    """``fn`` takes ``args`` and ``options`` alone (its signature says so)."""
    try:
        inspect.signature(fn).bind(*args, **options)
    except (TypeError, ValueError):
        return False
    return True


def sizes(decl, sizes):
    """The sizes the code can take: batch fixed by the declaration; H = I without a first
    dense layer (a = x). ``sizes``: {option: value or None}; returns a new dict."""
    out = dict(sizes)
    if decl.get("batch") is not None and out.get("batch") is None:
        out["batch"] = decl["batch"]
    if decl.get("first_layer") == "identity":
        if out.get("hidden_size") is None:
            out["hidden_size"] = out.get("input_size")
        elif out["hidden_size"] != out.get("input_size"):
            raise UsageError("hidden_size", out["hidden_size"],
                             f"this code has no first dense layer (a = x), so H must equal "
                             f"I = {out.get('input_size')}")
    if decl.get("batch") is not None and out["batch"] != decl["batch"]:
        raise UsageError("batch", out["batch"], f"this code takes batch {decl['batch']} only")
    return out


def _size(name, arrays):
    """The size called ``name`` (a letter of model.SIZES or its option), from the arrays."""
    from .model import SIZES
    letter = next((z.letter for z in SIZES if name in (z.letter, z.option)), name)
    # each size from the first array present that has it: a layer checked by itself has
    # only that layer's arrays
    where = {"I": [("W1", 0), ("x", -1)], "H": [("W1", 1), ("W2", 0), ("a", -1), ("a_t", -1)],
             "R": [("U", 0), ("W2", 1), ("W3", 0), ("h0", -1), ("h_prev", -1), ("h", -1)],
             "O": [("W3", 1), ("z3", -1)], "B": [("h0", 0), ("h_prev", 0)]}
    shapes = {}
    for size, candidates in where.items():
        found = [np.shape(arrays[n])[axis] for n, axis in candidates
                 if n in arrays and np.ndim(arrays[n]) > 0]
        if found:
            shapes[size] = found[0]
    if letter not in shapes:
        raise UsageError("adapter", f"{name}:size", "expected a size letter (B, I, H, R, O)")
    return int(shapes[letter])


# The model's chain of layers, each (layer, its input, its output); the layer checks add
# "rnn_step" (a_t, h_prev -> h_t) and read the same entries.
_CHAIN = ((_FIRST, "x", "a"), (_RNN, "a", "h"), (_OUT, "h", "z3"))
_ACTIVATION_OF = {_FIRST: 0, "rnn_step": 1, _RNN: 1, _OUT: 2, "loss": 2}   # (a cell's: none)


class _Adapted:
    """The user's code under a declaration: options it supports (others raise
    NotImplementedError), the reduction it divides by, and the one way its declared layers
    are built, loaded and called (``stage``), which the whole window (``__call__``) and a
    layer checked by itself (``layer_impl``) share."""

    def __init__(self, module, decl):
        from .cells.convention_arrays import declared
        self.module, self.decl = module, decl
        self.batch_first = decl.get("layout") == "batch_first"
        self.loss, self.activations, self.reduction = supported(decl)
        self.skip = skipped(decl)
        self.model = _model(decl)
        self.conventions = declared(decl, self.model.cell.name)
        self.states_in, self.states_out = {}, {}     # the further states (c0, c_last)

    def _supported(self, loss, activations, reduction, B):
        want = (self.loss, self.activations, self.reduction)
        got = (loss, tuple(activations), reduction)
        if got != want and not (reduction != self.reduction and got[:2] == want[:2]):
            raise NotImplementedError(
                f"this code computes loss {want[0]} with activations {','.join(want[1])}; "
                f"asked for loss {loss} with activations {','.join(activations)}")
        if self.decl.get("batch") not in (None, B):
            raise NotImplementedError(f"this code takes batch {self.decl['batch']}; asked for {B}")

    def expect(self, layer, kw):
        """A layer checked by itself: the options it is asked for are the code's own."""
        act = kw.get("activation")
        index = _ACTIVATION_OF.get(layer)
        if act is not None and act != self.activations[index]:
            raise NotImplementedError(f"this code's {layer} computes activation "
                                      f"{self.activations[index]}; asked for {act}")
        if layer == "loss" and kw.get("loss") != self.loss:
            raise NotImplementedError(f"this code's loss is {self.loss}; asked for {kw.get('loss')}")

    def _factor(self, T, B, reduction):
        """What the code's loss and gradients are multiplied by to be the model's."""
        divides = {"batch": B, "batch_time": B * T, "none": 1}[
            self.decl.get("loss_divides_by", "batch" if self.reduction == "mean" else "none")]
        return divides / (B if reduction == "mean" else 1)

    def __call__(self, params, x, y, h0, *states, loss=DEFAULT_LOSS,
                 activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION):
        T, B = x.shape[:2]
        self._supported(loss, activations, reduction, B)
        extra = self.model.extra_states
        self.states_in = {} if resets_states(self.decl) else {     # what the code is given
            i: s for (i, _), s in zip(extra, states)}
        self.states_out = {}
        value, grads, h_last = self.window(params, x, y, h0)
        c = self._factor(T, B, reduction)
        grads = {n: np.asarray(g) * c for n, g in grads.items()}
        given = dict(params, x=x, h0=h0, **dict(zip((i for i, _ in extra), states)))
        for n in self.skip:
            if n in given:
                grads.setdefault(n, np.zeros_like(given[n]))
        # a further state the code does not give back is skipped as declared: zeros here,
        # never compared (the checker carries its own or starts from zero)
        outs = tuple(self.states_out.get(o, np.zeros_like(h0)) for _, o in extra)
        return (float(value) * c, grads, h_last) + outs

    stages = None

    def window(self, params, x, y, h0):
        """The layers' stages, built on the first window and kept (so what they accumulate
        across windows shows), loaded with each window's parameters and called in the
        model's order, forward then backward."""
        L = self.decl["layers"]
        arrays = dict(params, x=x, y=y, h0=h0, mask=np.ones(y.shape[:2], bool))
        if self.stages is None:
            self.stages = {layer: self.stage(layer, layer, inp, True)
                           for layer, inp, _ in _CHAIN if layer in L}
            self.stages["loss"] = self.stage("loss", "loss", "z3", False)
        for s in self.stages.values():
            s.load(arrays)
        for layer, inp, out in _CHAIN:
            arrays[out] = self.stages[layer].forward(arrays) if layer in self.stages else arrays[inp]
        loss = self.stages["loss"]
        value = loss.forward(arrays)
        up, grads = {"z3": loss.backward(None)["z3"]}, {}
        for layer, inp, out in reversed(_CHAIN):
            if layer not in self.stages:           # no such layer: its output is its input
                up[inp] = up[out]
                continue
            got = self.stages[layer].backward(up[out])
            up[inp] = got.pop(inp, None)
            grads.update(got)
        if up["x"] is not None and "x" not in self.skip:
            grads["x"] = up["x"]
        h_last = self.stages[_RNN].h_last(arrays["h"])
        return value, grads, h_last

    def stage(self, layer, entry, inp, time):
        """One declared layer of the code (``entry``: its key in ``"layers"``) as the
        model's ``layer``, taking ``inp`` (and, for the RNN, its state); ``time``: its
        input and output have a time axis (all but one RNN step)."""
        kind = self.decl["style"]
        cls = {"layers": _FunctionStage, "classes": _ClassStage, "cells": _CellStage}.get(kind)
        if cls is None:
            raise UsageError("layer", layer, f"a {kind} declaration cannot check it by itself")
        if layer == "loss":
            cls = {"layers": _FunctionLoss, "classes": _ClassLoss, "cells": _CellLoss}[kind]
        return cls(self, layer, self.decl["layers"][entry], inp, time)

    def enc(self, item, arrays):
        from .cells.convention_arrays import to_code
        name, form = _split(item)
        if form == "size":                # "size:I" (or an option name): the integer
            return _size(name, arrays)
        if name == "x" and _ids_input(self.decl) and self.decl["style"] != "function":
            ids = np.argmax(arrays["x"], axis=-1)                 # [T, B]
            return np.ascontiguousarray(ids.T) if self.batch_first else ids
        arr = to_code(name, arrays[name], self.conventions, self.model.cell.name)
        return _encode(arr, _form(name, form), self.batch_first)

    def kwargs(self, spec, params):
        """A constructor's keyword arguments; "R:size" and the like become the integer."""
        out = {}
        for k, v in spec.get("kwargs", {}).items():
            out[k] = _size(_split(v)[0], params) if isinstance(v, str) and \
                _split(v)[1] == "size" else v
        return out

    def dec(self, item, arr, like):
        from .cells.convention_arrays import from_code
        name, form = _split(item)
        arr = _decode(arr, _form(name, form), like[name].shape, self.batch_first)
        return name, from_code(name, arr, self.conventions, self.model.cell.name)

    def construct(self, spec, arrays):
        """One layer object of ``spec``: its class called with the declared ``args`` and
        ``kwargs`` (``"R:size"``: the integer), then ``load``."""
        args = [self.enc(a, arrays).copy() for a in spec.get("args", [])]
        cls = _member(self.module, spec["class"], "class", "class")
        obj = cls(*args, **self.kwargs(spec, arrays))
        self.load(spec, obj, arrays)
        return obj

    def load(self, spec, obj, arrays):
        """The current parameters into ``obj``: ``"set": {attribute: "W1"}`` writes each
        (a layer that made its own parameters at construction), else the ``args`` are
        copied into its ``params`` list in place; then its ``"reset"`` method, if declared
        (each layer may name its own), clears what it accumulated."""
        if "set" in spec:
            for attr, item in spec["set"].items():
                setattr(obj, attr, np.array(self.enc(item, arrays), copy=True))
        else:
            for item, p in zip(spec.get("args", []), getattr(obj, "params", [])):
                np.copyto(p, self.enc(item, arrays))
        if spec.get("reset"):
            _member(obj, spec["reset"], "reset", "method")()

    def gradients(self, spec, obj, arrays):
        """{model name: gradient} the layer object holds: ``"get": {attribute: "W1"}``, or
        its ``grads`` list paired with its ``args``; ``:zeros`` inputs have none."""
        pairs = (list(spec["get"].items()) if "get" in spec else
                 list(zip(range(len(spec.get("args", []))), spec.get("args", []))))
        out = {}
        for key, item in pairs:
            if _split(item)[1] == "zeros":
                continue
            g = (_member(obj, key, "get", "attribute") if "get" in spec
                 else _member(obj, "grads", "style", "attribute")[key])
            name, arr = self.dec(item, np.array(g, copy=True), arrays)
            out[name] = arr
        return out

    def cell(self, spec, arrays):
        """A cell object of ``spec``: built from its ``args`` (or, with ``"keys"``, without
        them), then ``load_cell``."""
        args = [] if "keys" in spec else [self.enc(a, arrays).copy() for a in spec["args"]]
        cls = _member(self.module, spec["class"], "class", "class")
        obj = cls(*args, **self.kwargs(spec, arrays))
        self.load_cell(spec, obj, arrays)
        return obj

    def load_cell(self, spec, obj, arrays):
        """The parameters into the cell's dict (``"params"`` names it; ``"keys"`` its keys),
        then the declaration's ``"zero"`` method."""
        p = getattr(obj, self.decl.get("params", "params"), None)
        if isinstance(p, dict):
            for item, key in zip(spec["args"], spec.get("keys", list(p))):
                p[key] = np.array(self.enc(item, arrays), copy=True)
        if self.decl.get("zero"):
            _member(obj, self.decl["zero"], "zero", "method")()

    def cell_gradients(self, spec, obj, arrays):
        """{model name: gradient} of the cell's grads dict or list; none for ``:zeros``."""
        g = _member(obj, self.decl.get("grads", "grads"), "grads", "attribute")
        keys = spec.get("keys", list(g) if isinstance(g, dict) else range(len(g)))
        out = {}
        for item, key in zip(spec["args"], keys):
            if _split(item)[1] != "zeros":
                name, arr = self.dec(item, np.array(g[key], copy=True), arrays)
                out[name] = arr
        return out


# ------------------------------------------------------------------ stages

_STATE_OF = {"a": "h0", "a_t": "h_prev"}       # the RNN's input -> the state it also takes


class _Stage:
    """One declared layer of the user's code as a layer of the model: ``load(arrays)``
    (the parameters in, before each call), ``forward(arrays)`` -> its output (model layout),
    ``backward(dout)`` -> {model name: gradient} of its input, its state and its parameters
    (none for a ``:zeros`` argument). The whole window keeps its stages across windows; a
    layer checked by itself makes one per call."""

    def __init__(self, ad, layer, entry, inp, time):
        self.ad, self.layer, self.entry, self.inp, self.time = ad, layer, entry, inp, time
        self.state = _STATE_OF.get(inp)
        self.arrays = None

    def load(self, arrays):
        self.arrays = arrays

    def h_last(self, h):
        return h[-1]

    def from_user(self, arr):
        return _decode(arr, "time" if self.time else "", None, self.ad.batch_first)

    def to_user(self, arr):
        return _encode(arr, "time" if self.time else "", self.ad.batch_first)


class _FunctionStage(_Stage):
    """``out, cache = forward(*args)``; ``grads = backward(dout, cache)``, by ``"grads"``.
    With ``"returns"`` (several outputs before the cache, an LSTM step's ``next_h,
    next_c``): ``forward`` gives their tuple and ``backward`` takes one dout each."""

    def forward(self, arrays):
        self.arrays = arrays
        key = "forward" if "forward" in self.entry else "function"
        fn = _member(self.ad.module, self.entry[key], key, "function")
        *got, self.cache = fn(*[self.ad.enc(a, arrays) for a in self.entry["args"]])
        if "returns" in self.entry:
            return tuple(self.from_user(g) for g in got)
        return self.from_user(got[0])

    def backward(self, dout):
        douts = dout if "returns" in self.entry else (dout,)
        back = _member(self.ad.module, self.entry["backward"], "backward", "function")(
            *(self.to_user(d) for d in douts), self.cache)
        if not isinstance(back, (tuple, list)):
            back = (back,)                     # one gradient (an embedding's dW)
        if len(back) < len(self.entry["grads"]):
            raise DeclarationError(f'adapter key "grads": {self.entry["backward"]} returned '
                                   f'{len(back)} values; the declaration names '
                                   f'{len(self.entry["grads"])} ({", ".join(self.entry["grads"])})')
        grads = {}
        for item, g in zip(self.entry["grads"], back):     # (None: not given, so missing)
            if not item.startswith("-") and _split(item)[1] != "zeros" and g is not None:
                name, arr = self.ad.dec(item, g, self.arrays)
                grads[name] = arr
        return grads


class _FunctionLoss(_Stage):
    """``loss, dz3 = function(*args)``."""

    def forward(self, arrays):
        fn = _member(self.ad.module, self.entry["function"], "function", "function")
        value, self.dz3 = fn(*[self.ad.enc(a, arrays) for a in self.entry["args"]])
        return value

    def backward(self, dout):
        return {"z3": _decode(np.asarray(self.dz3), "time", None, self.ad.batch_first)}


def _steps(arr):
    return [arr[t] for t in range(len(arr))]


class _ClassStage(_Stage):
    """A layer object built once (``construct``), loaded before each call; ``forward(input)``,
    ``backward(dout) -> dinput``, gradients read from it; the RNN given its state with
    ``set_state`` (or ``reset_state`` under ``"h0": "zeros"``) and its dh0 read from the
    attribute ``"dh0"``. ``"sequence"``: ``"list"``, the layer takes and returns a list of
    per-step arrays; ``"steps"``, its forward is called once per step and its backward
    once, with the list of every step's upstream gradient."""
    obj = None

    def load(self, arrays):
        self.arrays = arrays
        if self.obj is None:
            self.obj = self.ad.construct(self.entry, arrays)
        else:
            self.ad.load(self.entry, self.obj, arrays)
        if self.state is not None:
            key = "reset_state" if self.ad.decl.get("h0") == "zeros" else "set_state"
            method = _member(self.obj, self.entry.get(key, key), key, "method")
            if key == "reset_state":
                method()
            else:                            # with the further states (c0) it takes
                method(arrays[self.state].copy(), *(s.copy() for s in self.ad.states_in.values()))

    def forward(self, arrays):
        seq = self.entry.get("sequence")
        x = self.ad.enc(self.inp, arrays)
        forward = _member(self.obj, "forward", "style", "method")
        if seq not in ("list", "steps"):
            return self.from_user(forward(x))
        x = _steps(np.swapaxes(x, 0, 1) if self.ad.batch_first else x)
        return np.stack(forward(x) if seq == "list" else [forward(x_t) for x_t in x])

    def backward(self, dout):
        seq = self.entry.get("sequence")
        backward = _member(self.obj, "backward", "style", "method")
        d = backward(_steps(dout) if seq in ("list", "steps") else self.to_user(dout))
        grads = self.ad.gradients(self.entry, self.obj, self.arrays)
        if d is not None:
            grads[self.inp] = (np.stack(d) if isinstance(d, (list, tuple))
                               else self.from_user(d))
        if self.state is not None:
            dh0 = getattr(self.obj, self.entry.get("dh0", "dh"), None)
            if dh0 is not None:
                grads[self.state] = np.array(dh0, copy=True)
            skip = self.ad.skip
            for i, o in self.ad.model.extra_states:    # the attributes the entry names
                if i not in skip:
                    grads[i] = np.array(_member(self.obj, self.entry["d" + i], "d" + i,
                                                "attribute"), copy=True)
                if o not in skip:
                    self.ad.states_out[o] = np.array(_member(self.obj, self.entry[o], o,
                                                             "attribute"), copy=True)
        return grads

    def h_last(self, h):
        return np.array(self.obj.h, copy=True) if getattr(self.obj, "h", None) is not None \
            else None


class _ClassLoss(_ClassStage):
    """``loss = obj.forward(z3, y)``; ``dz3 = obj.backward()``."""

    def forward(self, arrays):
        bf = self.ad.batch_first
        return _member(self.obj, "forward", "style", "method")(
            _encode(arrays["z3"], "time", bf), _encode(arrays["y"], "time", bf))

    def backward(self, dout):
        dz3 = _member(self.obj, "backward", "style", "method")()
        return {"z3": _decode(dz3, "time", None, self.ad.batch_first)}


class _CellStage(_Stage):
    """A per-step cell, built once (``cell``), loaded before each call: ``out_t =
    forward(in_t[, h_prev])`` for each step, then ``din_t[, dh_prev] = backward(dout_t)``
    in reverse order; its gradients summed in its dict. Under ``"carries_state"`` the cell
    keeps h and dh_next itself (``forward(x_t)``, ``backward(dh_t) -> dx_t``) and, with
    ``"state"``, takes h0 and leaves dh0 in the declared attributes."""
    obj = None

    def load(self, arrays):
        ad = self.ad
        self.arrays = arrays
        if self.obj is None:
            self.obj = ad.cell(self.entry, arrays)
        else:
            ad.load_cell(self.entry, self.obj, arrays)
        self.inside = self.state is not None and ad.decl.get("carries_state", False)
        attrs = _state_attrs(ad.decl)
        if self.inside and attrs and ad.decl.get("h0") != "zeros":
            setattr(self.obj, attrs[0], np.array(arrays[self.state], copy=True))

    def forward(self, arrays):
        fwd = _member(self.obj, self.ad.decl.get("forward", "forward"), "forward", "method")
        xs = _steps(arrays[self.inp]) if self.time else [arrays[self.inp]]
        h, out = (arrays[self.state] if self.state else None), []
        for x_t in xs:
            h = fwd(x_t) if self.state is None or self.inside else fwd(x_t, h)
            out.append(h)
        return np.stack(out) if self.time else out[0]

    def backward(self, dout):
        bwd = _member(self.obj, self.ad.decl.get("backward", "backward"), "backward", "method")
        douts = _steps(dout) if self.time else [dout]
        din, dh_next = [None] * len(douts), np.zeros_like(douts[0])
        for t in reversed(range(len(douts))):
            if self.state is None or self.inside:     # a carrying cell adds its own dh_next
                din[t] = bwd(douts[t])
            else:
                din[t], dh_next = bwd(douts[t] + dh_next)
        grads = self.ad.cell_gradients(self.entry, self.obj, self.arrays)
        grads[self.inp] = np.stack(din) if self.time else din[0]
        attrs = _state_attrs(self.ad.decl)
        if self.state is not None and not self.inside:
            grads[self.state] = np.array(dh_next, copy=True)
        elif self.state is not None and attrs:
            grads[self.state] = np.array(_member(self.obj, attrs[1], "state", "attribute"),
                                         copy=True)
        return grads

    def h_last(self, h):
        return np.array(h[-1], copy=True)


class _CellLoss(_Stage):
    """A per-step loss function: ``loss_t, dz_t = function(z_t, y_t)``, summed over steps."""

    def forward(self, arrays):
        fn = _member(self.ad.module, self.entry["function"], "function", "function")
        got = [fn(z_t, y_t) for z_t, y_t in zip(arrays["z3"], arrays["y"])]
        self.dz3 = np.stack([dz for _, dz in got])
        return sum(v for v, _ in got)

    def backward(self, dout):
        return {"z3": self.dz3}


class _Function(_Adapted):
    """One function for the whole window; weights as arguments or module globals."""

    owner = None

    def window(self, params, x, y, h0):
        d, m = self.decl, self.module
        arrays = dict(params, x=x, y=y, h0=h0)
        if "object" in d and self.owner is None:    # a method of an object built once
            spec = d["object"]
            self.owner = _member(m, spec["class"], "class", "class")(
                *[self.enc(a, arrays) for a in spec.get("args", [])],
                **self.kwargs(spec, arrays))
        owner = m if self.owner is None else self.owner
        for key, item in d.get("globals", {}).items():   # module globals, or its attributes
            value = self.enc(item, arrays)
            setattr(owner, key, value if isinstance(value, int) else value.copy())
        fn = _member(owner, d["function"], "function", "function")
        out = fn(*[self.enc(a, arrays) for a in d["args"]])
        like = dict(arrays, h_last=h0)
        value, grads, h_last = None, {}, None
        for item, arr in zip(d["returns"], out):
            name, form = _split(item)
            if name == "loss":
                value = arr
            elif name == "-":
                continue
            else:
                _, a = self.dec(item, np.array(arr, copy=True), like)
                if name == "h_last":
                    h_last = a
                else:
                    grads[name] = a
        return value, grads, h_last


# ------------------------------------------------------------------ one layer

def layer_impl(spec, adapter, layer, names, output_has_time, cell=None):
    """(forward, backward) with the layer contract of layer_check for the user's code
    of ``layer`` under ``adapter``, built by the same stages as the whole window, so every
    key the whole window honours is honoured here. ``names``: the layer's inputs in the
    contract's order; ``cell``: the cell the layer belongs to (its entries and
    conventions; None: the RNN's). ``forward.label`` names the user's code
    (``rnn_layers.py: rnn_forward``), not this module's inner function."""
    decl = declaration(adapter, cell)
    if decl["style"] == "contract":
        raise UsageError("adapter", json.dumps({k: v for k, v in decl.items()
                                                if k not in ("style", "cell")}),
                         "a declaration of conventions alone goes with the layer's own two "
                         "functions (--impl FILE.py, or --forward and --backward), not with "
                         "a module's layers")
    module = _module_of(spec, decl)
    entries = decl.get("layers", {})
    entry = layer if layer in entries else (
        _RNN if layer == "rnn_step" and decl["style"] == "cells" or layer == decl["cell"]
        else None)
    if entry is None:
        raise UsageError("layer", layer, f"the {decl['style']} declaration has no entry for it "
                         f"(it has {', '.join(entries) or 'none'})")
    _declared(module, decl, spec, entry)
    ad = _Adapted(module, decl)
    if names[0] in _STATE_OF:
        _givable_state(decl)

    def forward(*inputs, **kw):
        ad.expect(layer, kw)
        arrays = dict(zip(names, inputs))
        ad.states_in = {} if resets_states(decl) else {        # a window's further states
            i: arrays[i] for i, _ in ad.model.extra_states if i in arrays}
        if layer == "loss":
            arrays.update(y=inputs[1], mask=np.ones(np.shape(inputs[1])[:2], bool))
        stage = ad.stage(layer, entry, names[0], output_has_time)
        stage.load(arrays)
        out = stage.forward(arrays)
        if layer == "loss":
            T, B = np.shape(inputs[0])[:2]
            c = ad._factor(T, B, kw.get("reduction"))
            return float(out) * c, (stage, c)
        return (*out, (stage, 1.0)) if isinstance(out, tuple) else (out, (stage, 1.0))

    def backward(*douts_and_cache):
        *douts, (stage, c) = douts_and_cache
        if layer == "loss":
            return (stage.backward(None)["z3"] * c * douts[0],)
        grads = stage.backward(tuple(douts) if len(douts) > 1 else douts[0])
        return tuple(grads.get(n) for n in names)

    what = entries[entry].get("forward") or entries[entry].get("class") or \
        entries[entry].get("function") or layer
    where = spec if isinstance(spec, str) else (
        getattr(spec, "__file__", None) or getattr(spec, "__name__", repr(spec)))
    forward.label = f"{where}: {what} ({decl['style']}, layer {layer})"
    return forward, backward


def layer_skips(decl, names):
    """(given as zero, gradient skipped): the inputs among ``names`` (a layer checked by
    itself) the declared code cannot take, given as zeros, as the whole window gives them
    (the further states, c0, of code that resets them; an option's array, bh, no entry
    passes), and those whose gradient it cannot give, never compared, as the whole window
    skips them (those, and a dc0 a class keeps in no declared attribute). A declaration
    of conventions alone (``conventions_only``: the contract's functions) skips only
    what a cell state reset makes zero."""
    zero = {i for i, _ in _model(decl).extra_states} if resets_states(decl) else set()
    skip = set(zero)
    if "style" in decl:
        zero |= set(_absent_options(decl))
        skip |= zero | _missing_states(decl)
    return tuple(n for n in names if n in zero), tuple(n for n in names if n in skip)


def convention_pair(forward, backward, decl, names):
    """A layer's own two functions (the layer contract) declared to follow the conventions
    of ``decl`` (``conventions_only``), as functions of the contract: the blocked inputs
    handed over re-arranged as the code reads them and its gradients mapped back
    (cells/convention_arrays.py). What the code returns is passed on as it is when it is
    no array of the input's shape (the layer check tells what is wrong with it)."""
    from .cells.convention_arrays import declared, gradient_from_code, to_code
    values, cell = declared(decl, decl["cell"]), decl["cell"]

    def forward_(*inputs, **kw):
        return forward(*(to_code(n, v, values, cell) for n, v in zip(names, inputs)),
                       *inputs[len(names):], **kw)

    def backward_(*douts_and_cache):
        grads = backward(*douts_and_cache)
        if not isinstance(grads, (tuple, list)):
            return grads
        return (tuple(gradient_from_code(n, g, values, cell) for n, g in zip(names, grads))
                + tuple(grads[len(names):]))

    forward_.label = (f"{getattr(forward, '__module__', '?')}."
                      f"{getattr(forward, '__qualname__', repr(forward))} (declared "
                      f"{', '.join(f'{k}={v}' for k, v in decl.items() if k != 'cell')})")
    return forward_, backward_


def _givable_state(decl):
    """A layer check gives the RNN its state: UsageError for code that cannot take it."""
    if decl.get("carries_state") and not _state_attrs(decl):
        raise UsageError("adapter", "carries_state", "a cell that keeps its own state is "
                         "checked by itself only with \"state\": {\"h0\": ATTRIBUTE, "
                         "\"dh0\": ATTRIBUTE}: where it takes h0 and leaves dh0")
    if decl.get("h0") == "zeros":
        raise UsageError("adapter", "h0", "code that starts every window from a zero state "
                         "cannot be given the state a layer check gives it")
