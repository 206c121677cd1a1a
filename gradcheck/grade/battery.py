"""The battery a class is graded with: named tests, each one configuration of the check
worth some points, and the marking scheme.

Marking: a test's points are split equally among its ITEMS, the forward (the loss
and h_last, and not writing into the inputs) and each of the nine gradients
(W1 b1 W2 U b2 W3 b3 x h0); for a test of another cell (``cell = "lstm"``), the items of
that cell's contract (``items``: an LSTM's forward also has c_last, its gradients Wx Wh b
and c0). An item earns its share when it agrees with every oracle
(JAX, and finite differences for gradients) in every window of the test; a window whose
call failed (an exception, a wrong return value, the time limit) fails every item.

The default battery (``DEFAULT_BATTERY``) is chosen so that every bug class of the zoo
loses marks (tests/test_grade.py proves it): several windows with a short last one (state
carried between windows: accumulators not reset, a stale h0), relu kinks and a
saturating sigmoid, each activation in each layer but identity in the first two, each
loss with a mean over the batch and l2 and ce with a sum too, float32, batch 1, and
always a random non-zero incoming state. Small sizes keep a submission's calls cheap.

A battery file (TOML) gives hidden configurations::

    [defaults]                 # optional, applies to every test
    batch = 6
    [[test]]
    name = "ce_long"           # unique; the test's name in every output
    points = 10                # optional, default 10
    interval = 4               # the check's options (flags with _ for -); seq_len, sizes,
    seq_len = 9                # loss, activations ("f1,f2,f3" or a list), reduction,
    loss = "ce"                # dtype, mode; seed (optional: fixed data for this test);
    cell = "gru"               # cell (rnn, lstm, gru; default rnn) and its own options
    reset_after = true         # (a GRU's reset_after)
    visibility = "visible"     # Gradescope: visible, hidden, after_due_date, after_published
    feedback = "hint"          # optional: full, hint or score (default: --feedback's)
    precision_credit = 0.9     # optional: the share of the points a precision-only finding keeps

Precision: a test whose only finding is float32-level rounding in a float64 check (the
diagnosis's kind is of the ``precision`` group) keeps ``precision_credit`` of its points
(default DEFAULT_PRECISION_CREDIT), and whatever its value, precision findings across the
whole battery cost at most PRECISION_CAP of the battery's smallest item (a tenth of its
smallest test): less than any conceptual bug, which loses at least one item.
"""
import tomllib
from typing import NamedTuple, Optional

from ..config import OPTIONS, make_config
from ..errors import UsageError
from ..model import DEFAULT_CELL, GRAD_NAMES, cell, cell_names

__all__ = ["Test", "ITEMS", "FORWARD", "DEFAULT_BATTERY", "DEFAULT_POINTS", "load_battery",
           "make_test", "VISIBILITIES", "FEEDBACK_LEVELS", "DEFAULT_FEEDBACK",
           "DEFAULT_PRECISION_CREDIT", "PRECISION_CAP", "precision_loss", "items"]

FORWARD = "forward"
ITEMS = (FORWARD,) + GRAD_NAMES
DEFAULT_POINTS = 10.0
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# What a student's text of a test says (grade.mark): the diagnosis in full, a hint without
# the formula, or only pass or fail. The instructor's outputs always keep everything.
FEEDBACK_LEVELS = ("full", "hint", "score")
DEFAULT_FEEDBACK = "full"
# The share of a test's points that a precision-only finding keeps, unless the battery
# says otherwise: a float32 cast is a real slip, but not a misunderstanding of BPTT.
DEFAULT_PRECISION_CREDIT = 0.9
# Precision findings across a battery cost at most this share of its smallest item.
PRECISION_CAP = 0.5


class Test(NamedTuple):
    """One named configuration of the check. ``options``: keyword arguments of
    ``make_config`` (seed omitted unless fixed by the battery)."""
    name: str
    points: float
    options: dict
    visibility: str = "visible"
    about: str = ""
    feedback: Optional[str] = None      # one of FEEDBACK_LEVELS; None: the command line's
    precision_credit: float = DEFAULT_PRECISION_CREDIT   # share kept by a precision finding


# Small sizes (one JAX shape bucket) keep the battery cheap; O >= 2 for ce.
_SMALL = dict(batch=6, input_size=4, hidden_size=6, state_size=5, output_size=4)

_DEFAULT = (
    ("l2_tanh_windows", dict(interval=3, seq_len=7),
     "l2, tanh RNN, three windows (3, 3, 1 steps): the state is carried between windows"),
    ("relu_kinks_sigmoid", dict(interval=4, seq_len=8, reduction="sum",
                                activations=("relu", "relu", "sigmoid")),
     "l2 summed over the batch, relu layers (kinks) and a sigmoid output, two windows"),
    ("sigmoid_ce_sum", dict(interval=3, seq_len=5, loss="ce", reduction="sum",
                            activations=("sigmoid", "tanh", "identity")),
     "softmax cross-entropy, sum reduction, sigmoid first layer, windows of 3 and 2"),
    ("bce_relu_rnn", dict(interval=4, seq_len=4, loss="bce",
                          activations=("tanh", "relu", "identity")),
     "sigmoid cross-entropy, relu RNN, one window"),
    ("float32", dict(interval=3, seq_len=6, dtype="float32", loss="ce"),
     "softmax cross-entropy averaged over the batch, tanh, in float32, two windows"),
    ("batch_1", dict(interval=2, seq_len=5, batch=1, activations=("tanh", "sigmoid", "tanh")),
     "one example per batch, sigmoid RNN, tanh output, windows of 2, 2 and 1"),
)


def make_test(name, options, points=DEFAULT_POINTS, visibility="visible", about="",
              feedback=None, precision_credit=DEFAULT_PRECISION_CREDIT):
    """A Test, its options validated now (UsageError naming the option)."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError("battery", name, "each test needs a non-empty name")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
        raise UsageError("battery", points, f"test {name}: points must be a number > 0")
    if visibility not in VISIBILITIES:
        raise UsageError("battery", visibility,
                         f"test {name}: visibility must be one of {', '.join(VISIBILITIES)}")
    if feedback is not None and feedback not in FEEDBACK_LEVELS:
        raise UsageError("battery", feedback,
                         f"test {name}: feedback must be one of {', '.join(FEEDBACK_LEVELS)}")
    if isinstance(precision_credit, bool) or not isinstance(precision_credit, (int, float)) \
            or not 0 <= precision_credit <= 1:
        raise UsageError("battery", precision_credit, f"test {name}: precision_credit must be "
                                                      f"a number from 0 to 1 (the share kept)")
    cell_opts = {o.name for c in cell_names() for o in cell(c).options}
    unknown = sorted(set(options) - set(OPTIONS) - cell_opts)
    if unknown:
        raise UsageError("battery", unknown[0], f"test {name}: not an option of the check "
                                                f"(allowed: {', '.join(OPTIONS)})")
    if options.get("cell", DEFAULT_CELL) not in cell_names():
        raise UsageError("battery", options["cell"], f"test {name}: cell must be one of "
                                                     f"{', '.join(cell_names())}")
    for k in sorted(cell_opts & set(options)):
        if not isinstance(options[k], bool):
            raise UsageError("battery", options[k], f"test {name}: {k} must be true or false")
    opts = {k: v for k, v in options.items() if k not in cell_opts}
    on = tuple(sorted(k for k in cell_opts & set(options) if options[k] is True))
    if on:                           # a cell's own options (reset_after = true): by name
        opts["cell_options"] = on
    if isinstance(opts.get("activations"), str):
        opts["activations"] = tuple(opts["activations"].split(","))
    elif isinstance(opts.get("activations"), list):
        opts["activations"] = tuple(opts["activations"])
    try:
        make_config(**dict(opts, seed=opts.get("seed", 0)))
    except UsageError as exc:
        raise UsageError("battery", exc.value, f"test {name}: {exc}") from None
    except TypeError as exc:
        raise UsageError("battery", name, f"test {name}: {exc}") from None
    return Test(name, float(points), opts, visibility, about, feedback, float(precision_credit))


DEFAULT_BATTERY = tuple(make_test(name, dict(_SMALL, **opts), about=about)
                        for name, opts, about in _DEFAULT)


def load_battery(path):
    """The tests of a TOML battery file; UsageError (option ``battery``) when it is wrong."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise UsageError("battery", path, f"cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError("battery", path, f"not valid TOML ({exc})") from None
    defaults = doc.get("defaults", {})
    tests = doc.get("test")
    extra = sorted(set(doc) - {"defaults", "test"})
    if extra:
        raise UsageError("battery", path, f"unknown table {extra[0]!r}: expected [defaults] "
                                          f"and [[test]] entries")
    if not isinstance(defaults, dict) or not isinstance(tests, list) or not tests:
        raise UsageError("battery", path, "expected at least one [[test]] entry")
    out, names = [], set()
    for entry in tests:
        entry = dict(defaults, **entry)
        name = entry.pop("name", None)
        points = entry.pop("points", DEFAULT_POINTS)
        visibility = entry.pop("visibility", "visible")
        about = entry.pop("about", "")
        feedback = entry.pop("feedback", None)
        credit = entry.pop("precision_credit", DEFAULT_PRECISION_CREDIT)
        test = make_test(name, entry, points, visibility, str(about), feedback, credit)
        if test.name in names:
            raise UsageError("battery", test.name, "two tests have this name; names must differ")
        names.add(test.name)
        out.append(test)
    return tuple(out)


def items(test):
    """The ITEMS of ``test``: the forward and each gradient of its cell's contract (an
    LSTM's also c0, whose forward also returns c_last)."""
    return (FORWARD,) + make_config(**dict(test.options, seed=0)).model.grad_names


def precision_loss(test, battery):
    """The most a precision-only finding may cost ``test`` of ``battery``: its own share
    (1 - precision_credit), and its part of the battery's cap (PRECISION_CAP of the
    smallest item, split equally among the tests), whichever is less."""
    smallest_item = min(t.points / len(items(t)) for t in battery)
    return min((1 - test.precision_credit) * test.points,
               PRECISION_CAP * smallest_item / len(battery))
