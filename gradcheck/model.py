"""The model's names, in one place: its arrays, state, sizes, layers, losses, activations.

Plain data, read by everything in the checker that speaks of the model (the CLI's flags
and help, config validation, data, the untrusted boundary, strategies, report,
diagnosis, zoo). The two oracles and ``reference/`` keep their own maths and names on
purpose (independent implementations are the point); ``tests/test_model.py`` proves
that each of them covers every name here. The equations are ``../shared/design/bptt.md``:

    z1_t = x_t W1 + b1          a_t = f1(z1_t)          [B, H]
    z2_t = a_t W2 + h_{t-1} U + b2;  h_t = f2(z2_t)     [B, R]
    z3_t = h_t W3 + b3          yhat_t = f3(z3_t)       [B, O]

Dimension letters: T (time steps of a window), B, I, H, R, O (the sizes below).

The middle layer is a **cell**, chosen with ``--cell`` (``cell=``): the vanilla RNN above
(``rnn``, the default) or a cell declared in a module of its own (``CELL_MODULES``), which
calls ``register_cell`` with its arrays, its extra states, its options and its kinds.
``describe(cell, **options)`` is the whole model for one cell: everything that speaks of
the model's arrays reads it; the module-level names below are the RNN's.
"""
import importlib
from typing import NamedTuple

__all__ = [
    "Size", "SIZES", "SIZE_OPTIONS", "DEFAULT_SIZES", "DEFAULT_INTERVAL", "Array", "ARRAYS",
    "PARAM_NAMES", "GRAD_NAMES", "INPUT_NAME", "STATE_NAME", "STATE_OUT_NAME", "LOSS_NAME",
    "OUTPUT_NAMES", "Layer", "LAYERS", "UPSTREAM_OF_STATE", "Loss", "LOSSES", "ACTIVATIONS", "DEFAULT_ACTIVATIONS",
    "REDUCTIONS", "DEFAULT_LOSS", "DEFAULT_REDUCTION", "DTYPES", "DEFAULT_DTYPE",
    "array", "shape_of", "layer_of", "Cell", "CellOption", "Model", "CELL_MODULES",
    "DEFAULT_CELL", "register_cell", "cell", "cell_names", "describe", "ordered_names", "side",
    "LayerSpec", "cell_layers", "layer_spec",
]


class Size(NamedTuple):
    """One dimension of the model: its letter in shape comments, its option name."""
    letter: str
    option: str          # keyword of gradcheck.check; --option-name on the command line
    default: int         # the article's value
    meaning: str


SIZES = (
    Size("B", "batch", 128, "examples per batch"),
    Size("I", "input_size", 10, "input features"),
    Size("H", "hidden_size", 20, "first dense layer width"),
    Size("R", "state_size", 5, "RNN state width"),
    Size("O", "output_size", 100, "output width"),
)
SIZE_OPTIONS = tuple(s.option for s in SIZES)
DEFAULT_SIZES = {s.option: s.default for s in SIZES}
DEFAULT_INTERVAL = 3                  # the article's BPTT interval (steps per window)


class Array(NamedTuple):
    """An array the implementation is given and returns a gradient of.

    ``letters``: its shape, one dimension letter each (T for the window's steps).
    ``role``: "param" (shared by every step), "input" (one slice per step) or "state"
    (the state entering the window). ``fan_in``: the letter of the size it is summed
    over in the forward (weights), or None (biases, inputs, state). ``blocks``: how many
    gate blocks lie side by side along its last dimension (an LSTM's Wx is [H, 4R])."""
    name: str
    letters: str
    role: str
    fan_in: str = None
    blocks: int = 1


ARRAYS = (
    Array("W1", "IH", "param", fan_in="I"),
    Array("b1", "H", "param"),
    Array("W2", "HR", "param", fan_in="H"),
    Array("U", "RR", "param", fan_in="R"),
    Array("b2", "R", "param"),
    Array("W3", "RO", "param", fan_in="R"),
    Array("b3", "O", "param"),
    Array("x", "TBI", "input"),
    Array("h0", "BR", "state"),
)
PARAM_NAMES = tuple(a.name for a in ARRAYS if a.role == "param")   # W1 b1 W2 U b2 W3 b3
GRAD_NAMES = tuple(a.name for a in ARRAYS)                          # ... and x, h0
INPUT_NAME = "x"
STATE_NAME = "h0"                     # the state entering a window
STATE_OUT_NAME = "h_last"             # the state after its last step, shape BR
LOSS_NAME = "loss"
OUTPUT_NAMES = (LOSS_NAME, STATE_OUT_NAME)   # what the forward returns besides gradients


class Layer(NamedTuple):
    """A layer of the network, input side first; ``activation``: its index in (f1, f2, f3)."""
    name: str
    arrays: tuple
    activation: int
    meaning: str


LAYERS = (
    Layer("dense1", ("W1", "b1", "x"), 0, "first dense layer: z1 = x W1 + b1, a = f1(z1)"),
    Layer("rnn", ("W2", "U", "b2", "h0"), 1,
          "vanilla RNN: z2 = a W2 + h_{t-1} U + b2, h = f2(z2)"),
    Layer("dense2", ("W3", "b3"), 2, "last dense layer: z3 = h W3 + b3, yhat = f3(z3)"),
)

# Every array the state's derivative reaches on its way back (all but the last layer's).
UPSTREAM_OF_STATE = tuple(n for n in GRAD_NAMES if n not in LAYERS[-1].arrays)


class Loss(NamedTuple):
    """A loss on z3, per time step and example, and what it needs.

    ``target``: "values" (any floats), "class_ids" (integers 0..O-1) or "probabilities"
    (floats in [0, 1]); ``target_letters``: the shape of y; ``logits``: it works on z3
    itself, so it needs f3 = identity; ``min_outputs``: the least O it makes sense for,
    and why (completing "loss <name> ...")."""
    name: str
    formula: str
    target: str
    target_letters: str
    logits: bool
    min_outputs: int = 1
    min_outputs_why: str = ""


LOSSES = {
    "l2": Loss("l2", "0.5 * sum over o of (f3(z3) - y)^2", "values", "TBO", False),
    "ce": Loss("ce", "logsumexp(z3) - z3[y] (softmax cross-entropy on logits)", "class_ids",
               "TB", True, min_outputs=2,
               min_outputs_why="is a softmax over the outputs, constant (0) for one class"),
    "bce": Loss("bce", "sum over o of softplus(z3) - y * z3 (sigmoid cross-entropy on logits)",
                "probabilities", "TBO", True),
}
DEFAULT_LOSS = "l2"
ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
DEFAULT_ACTIVATIONS = ("tanh", "tanh", "identity")      # f1, f2, f3
REDUCTIONS = {"mean": "the window's loss divided by B", "sum": "the window's loss as summed"}
DEFAULT_REDUCTION = "mean"
DTYPES = ("float64", "float32")       # of the implementation under test
DEFAULT_DTYPE = "float64"

_BY_NAME = {a.name: a for a in ARRAYS}


def array(name):
    """The Array called ``name`` (KeyError for a name the model does not have)."""
    return _BY_NAME[name]


def shape_of(name, sizes, steps=None):
    """The shape of array ``name`` (or "h_last", or a loss's "y" given as ``loss:y``)
    for ``sizes`` ({letter: n} or {option: n}); ``steps`` is T, needed for x and y."""
    dims = dict(sizes)
    for s in SIZES:
        if s.option in dims:
            dims[s.letter] = dims[s.option]
    if steps is not None:
        dims["T"] = steps
    blocks = 1
    if name == STATE_OUT_NAME:
        letters = array(STATE_NAME).letters
    elif name.endswith(":y"):
        letters = LOSSES[name[:-2]].target_letters
    else:
        a = _BY_NAME.get(name) or _any_cell_array(name)
        letters, blocks = a.letters, a.blocks
    shape = [dims[c] for c in letters]
    shape[-1] *= blocks
    return tuple(shape)


def layer_of(name):
    """The Layer that array ``name`` belongs to."""
    return next(layer for layer in LAYERS if name in layer.arrays)


# ------------------------------------------------------------------------ cells

class CellOption(NamedTuple):
    """An option a cell declares (``--reset-after``): a boolean flag, off by default.
    ``arrays``: the cell's further parameters when it is on (appended to its own)."""
    name: str              # keyword of gradcheck.check; --name-with-dashes on the command line
    help: str
    arrays: tuple = ()


class LayerSpec(NamedTuple):
    """A layer checked by itself (``gradcheck layer NAME``): its contract, as data.

        *outputs, cache = forward(*inputs, **options)     # activation=f (when ``activation``)
        grads = backward(*douts, cache)                    # one dout per output;
                                                           # grads: one per input, in order

    ``inputs``: Arrays, the forward's positional arguments in order (role "input": one
    slice per step when its letters start with T; "state": a state entering; "param":
    weights); ``outputs``: Arrays, what the forward returns before its cache;
    ``activation``: the index in (f1, f2, f3) of the activation it takes as keyword
    ``activation``, or None (a cell's own nonlinearities are fixed); ``cell``: the cell
    it belongs to (None: a dense layer, the loss); ``step``: for a cell's layer over a
    window, the layer of one step that it repeats (its states carried from step to step)."""
    name: str
    inputs: tuple
    outputs: tuple
    activation: object
    meaning: str
    cell: object = None
    step: object = None

    @property
    def output(self):
        """(name, letters) of the first output."""
        return self.outputs[0].name, self.outputs[0].letters

    @property
    def input_names(self):
        return tuple(a.name for a in self.inputs)


class Cell(NamedTuple):
    """The middle layer of the network, declared once.

    ``arrays``: its own parameters (between the first and the last dense layer's);
    ``states``: (incoming, outgoing) name pairs, the first always ("h0", "h_last"), the
    ones after it the cell's extra states (an LSTM's ("c0", "c_last")), each [B, R];
    ``equations``: what it computes (the layer's meaning, --help);
    ``contract``: the loss_and_grads signature and return, in words;
    ``fixed_f2``: why f2 (the state's activation) cannot be chosen, or "" when it can;
    ``options``: CellOption flags; ``kinds``: the diagnosis kinds its module registers;
    ``conventions``: {adapter key: cells.conventions.Convention}, how hand-written code of
    the cell commonly differs from the contract without being wrong;
    ``sides``: {side: module} for each side that has its own maths: "reference" (a
    module of reference/), "jax", "fd", "zoo" (modules of gradcheck), "layer_reference"
    (the module of reference/ with each layer's ``NAME_forward``, ``NAME_backward``),
    "layer_jax" (the module with each layer's JAX function of one step, written from
    the equations: ``step_function(layer)``), "layer_zoo" (the module whose
    ``layer_candidate`` names the cell's mistakes that reproduce a layer check's
    numbers), the coverage test's list;
    ``layers``: its LayerSpecs for ``gradcheck layer``, the step first (an option's
    arrays, such as the GRU's bh, are appended to their inputs when it is on);
    ``label``: its name in sentences ("LSTM")."""
    name: str
    arrays: tuple
    states: tuple
    equations: str
    contract: str
    fixed_f2: str = ""
    options: tuple = ()
    kinds: tuple = ()
    sides: dict = {}
    conventions: dict = {}
    label: str = ""
    layers: tuple = ()


DEFAULT_CELL = "rnn"
# Every cell's declaration module ("rnn" is declared here, below). Adding a cell is adding
# its module to this table.
CELL_MODULES = {"rnn": __name__, "lstm": "gradcheck.cells.lstm", "gru": "gradcheck.cells.gru"}
_CELLS = {}


def register_cell(declared):
    """Add a Cell to the registry (called by its own module); the same name twice is a
    programming error."""
    if declared.name in _CELLS:
        raise ValueError(f"cell {declared.name!r} is registered twice")
    if declared.states[0] != (STATE_NAME, STATE_OUT_NAME):
        raise ValueError(f"cell {declared.name!r}: its first state must be "
                         f"({STATE_NAME!r}, {STATE_OUT_NAME!r})")
    _CELLS[declared.name] = declared
    return declared


def cell_names():
    """The names --cell accepts, the default first."""
    return tuple(CELL_MODULES)


def cell(name):
    """The Cell called ``name``, its module imported on first use (KeyError for an
    unknown name)."""
    if name not in _CELLS:
        importlib.import_module(CELL_MODULES[name])
    return _CELLS[name]


def _any_cell_array(name):
    for n in CELL_MODULES:
        c = cell(n)
        for a in c.arrays + tuple(a for o in c.options for a in o.arrays):
            if a.name == name:
                return a
        for s, _ in c.states[1:]:
            if s == name:
                return Array(name, "BR", "state")
    raise KeyError(name)


class Model(NamedTuple):
    """The whole network for one cell and its options: dense -> cell -> dense.

    ``arrays``: every Array in the contract's order (params, then x, then the states);
    the name tuples below are views of it. ``options``: the cell's option values."""
    cell: Cell
    options: dict
    arrays: tuple
    param_names: tuple
    grad_names: tuple
    state_names: tuple            # h0 (and the extra states' incoming names)
    state_out_names: tuple        # h_last (and the extra states' outgoing names)
    output_names: tuple           # loss, h_last, ...: what the forward returns besides grads
    layers: tuple

    @property
    def extra_states(self):
        """The (incoming, outgoing) pairs after h0's: () for the RNN and the GRU."""
        return self.cell.states[1:]

    def array(self, name):
        return next(a for a in self.arrays if a.name == name)

    def shape_of(self, name, sizes, steps=None):
        """The shape of ``name`` (an array, a state's outgoing name, or ``loss:y``)."""
        outgoing = dict((o, i) for i, o in self.cell.states)
        if name in outgoing:
            name = outgoing[name]
        if name.endswith(":y"):
            return shape_of(name, sizes, steps)
        a = self.array(name)
        dims = dict(sizes)
        for s in SIZES:
            if s.option in dims:
                dims[s.letter] = dims[s.option]
        if steps is not None:
            dims["T"] = steps
        shape = [dims[c] for c in a.letters]
        shape[-1] *= a.blocks
        return tuple(shape)


def describe(cell_name=DEFAULT_CELL, **options):
    """The Model for cell ``cell_name`` with its ``options`` (each a CellOption's name;
    left out: off). KeyError for an unknown cell, TypeError for an option it has not."""
    c = cell(cell_name)
    known = {o.name: o for o in c.options}
    unknown = [n for n in options if n not in known]
    if unknown:
        raise TypeError(f"cell {cell_name!r} has no option {unknown[0]!r}")
    values = {n: bool(options.get(n, False)) for n in known}
    own = c.arrays + tuple(a for n, o in known.items() if values[n] for a in o.arrays)
    first, last = LAYERS[0], LAYERS[-1]
    dense = {a.name: a for a in ARRAYS}
    params = tuple(dense[n] for n in first.arrays if dense[n].role == "param") + own + tuple(
        dense[n] for n in last.arrays)
    states = (dense[STATE_NAME],) + tuple(Array(i, "BR", "state") for i, _ in c.states[1:])
    arrays = params + (dense[INPUT_NAME],) + states
    layers = (first, Layer(c.name, tuple(a.name for a in own) + tuple(a.name for a in states),
                           1, c.equations), last)
    outs = tuple(o for _, o in c.states)
    return Model(c, values, arrays, tuple(a.name for a in params),
                 tuple(a.name for a in arrays), tuple(a.name for a in states), outs,
                 (LOSS_NAME,) + outs, layers)


def ordered_names():
    """Every cell's outputs and gradients in one order that is each model's own order
    (loss, h_last, c_last, W1, b1, Wx, ..., x, h0, c0): results are listed by it."""
    names = []
    for n in cell_names():
        c = cell(n)
        model = describe(n, **{o.name: True for o in c.options})
        previous = None
        for name in model.output_names + model.grad_names:
            if name not in names:
                names.insert(names.index(previous) + 1 if previous else 0, name)
            previous = name
    return tuple(names)


def cell_layers():
    """{name: LayerSpec} of every cell's layers, the default cell's first."""
    return {spec.name: spec for n in cell_names() for spec in cell(n).layers}


def layer_spec(spec, **options):
    """``spec`` with its cell's ``options`` applied (each on option's arrays appended to
    its inputs); TypeError for an option its cell has not."""
    known = {o.name: o for o in (cell(spec.cell).options if spec.cell else ())}
    unknown = [n for n in options if n not in known]
    if unknown:
        raise TypeError(f"layer {spec.name!r} has no option {unknown[0]!r}")
    on = [n for n in known if options.get(n)]
    if not on:
        return spec
    return spec._replace(inputs=spec.inputs + tuple(a for n in on for a in known[n].arrays),
                         meaning=f"{spec.meaning}; with {', '.join(on)}")


def side(cell_name, what):
    """The module of cell ``cell_name``'s side ``what`` ("jax", "fd", "reference", ...)."""
    return importlib.import_module(cell(cell_name).sides[what])


_RNN_WEIGHTS = tuple(a for a in ARRAYS if a.name in LAYERS[1].arrays and a.role == "param")
register_cell(Cell(
    "rnn", arrays=_RNN_WEIGHTS,
    states=((STATE_NAME, STATE_OUT_NAME),), equations=LAYERS[1].meaning,
    contract="loss_and_grads(params, x, y, h0, *, loss, activations, reduction) -> "
             "(loss, grads, h_last)",
    sides={"reference": "network", "jax": "gradcheck.oracle_jax",
           "fd": "gradcheck.oracle_fd", "zoo": "gradcheck.zoo", "layer_reference": "layers",
           "layer_jax": "gradcheck.layer_oracles", "layer_zoo": "gradcheck.layer_candidates"},
    layers=(LayerSpec("rnn_step", (Array("a_t", "BH", "input"), Array("h_prev", "BR", "state"))
                      + _RNN_WEIGHTS, (Array("h_t", "BR", "state"),), 1,
                      "one RNN step: h_t = f2(a_t W2 + h_prev U + b2)", "rnn"),
            LayerSpec("rnn", (Array("a", "TBH", "input"), Array("h0", "BR", "state"))
                      + _RNN_WEIGHTS, (Array("h", "TBR", "state"),), 1,
                      "the RNN over a window of T steps", "rnn", step="rnn_step")),
    label="RNN"))
