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
"""
from typing import NamedTuple

__all__ = [
    "Size", "SIZES", "SIZE_OPTIONS", "DEFAULT_SIZES", "DEFAULT_INTERVAL", "Array", "ARRAYS",
    "PARAM_NAMES", "GRAD_NAMES", "INPUT_NAME", "STATE_NAME", "STATE_OUT_NAME", "LOSS_NAME",
    "OUTPUT_NAMES", "Layer", "LAYERS", "UPSTREAM_OF_STATE", "Loss", "LOSSES", "ACTIVATIONS", "DEFAULT_ACTIVATIONS",
    "REDUCTIONS", "DEFAULT_LOSS", "DEFAULT_REDUCTION", "DTYPES", "DEFAULT_DTYPE",
    "array", "shape_of", "layer_of",
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
    over in the forward (weights), or None (biases, inputs, state)."""
    name: str
    letters: str
    role: str
    fan_in: str = None


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
    if name == STATE_OUT_NAME:
        letters = array(STATE_NAME).letters
    elif name.endswith(":y"):
        letters = LOSSES[name[:-2]].target_letters
    else:
        letters = array(name).letters
    return tuple(dims[c] for c in letters)


def layer_of(name):
    """The Layer that array ``name`` belongs to."""
    return next(layer for layer in LAYERS if name in layer.arrays)
