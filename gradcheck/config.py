"""The options of one check, validated once, and the memory they need."""
import dataclasses
import os

from .errors import UsageError
from .model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_DTYPE,
                    DEFAULT_INTERVAL, DEFAULT_LOSS, DEFAULT_REDUCTION, DEFAULT_SIZES, DTYPES,
                    LOSSES, REDUCTIONS, SIZE_OPTIONS, cell_names, describe)
from .model import cell as cell_of

__all__ = ["Config", "make_config", "MODES", "DTYPES", "OPTIONS"]

MODES = ("full", "projections")
# A check keeps ~this many float64 copies of every activation array at once (the
# reference's caches, the JAX model's, the finite-difference batches' chunks and
# the gradients); measured at the article config, rounded up.
_COPIES = 24


@dataclasses.dataclass(frozen=True)
class Config:
    interval: int
    seq_len: int
    batch: int = DEFAULT_SIZES["batch"]
    input_size: int = DEFAULT_SIZES["input_size"]
    hidden_size: int = DEFAULT_SIZES["hidden_size"]
    state_size: int = DEFAULT_SIZES["state_size"]
    output_size: int = DEFAULT_SIZES["output_size"]
    loss: str = DEFAULT_LOSS
    activations: tuple = DEFAULT_ACTIVATIONS
    reduction: str = DEFAULT_REDUCTION
    dtype: str = DEFAULT_DTYPE
    seed: int = 0
    mode: str = None
    cell: str = DEFAULT_CELL
    cell_options: tuple = ()     # the names of the cell's options that are on

    @property
    def model(self):
        """The model.Model of this check's cell and its options."""
        return describe(self.cell, **dict.fromkeys(self.cell_options, True))

    @property
    def model_options(self):
        """The keyword arguments of ``loss_and_grads`` (and of the oracles) for this model."""
        return dict(loss=self.loss, activations=self.activations, reduction=self.reduction)

    @property
    def windows(self):
        """(start, stop) of every window; the last may be shorter."""
        k = self.interval
        return [(s, min(s + k, self.seq_len)) for s in range(0, self.seq_len, k)]

    @property
    def sizes(self):
        """{option: n} of the five sizes (batch, input_size, ...)."""
        return {n: getattr(self, n) for n in SIZE_OPTIONS}

    @property
    def n_params(self):
        m = self.model
        return sum(_size(m.shape_of(n, self.sizes)) for n in m.param_names)

    @property
    def n_elements(self):
        """Elements checked per sequence: every parameter per window, plus x and the
        incoming states (h0, and an LSTM's c0) of every window."""
        B, I, R = self.batch, self.input_size, self.state_size
        states = len(self.model.state_names)
        return (self.n_params * len(self.windows) + self.seq_len * B * I
                + states * len(self.windows) * B * R)

    def memory_estimate(self):
        """Bytes a check of this config needs at its peak (an estimate, rounded up)."""
        B, I, H, R, O = (getattr(self, n) for n in SIZE_OPTIONS)
        gates = max(a.blocks for a in self.model.arrays)     # an LSTM's 4 blocks of R per step
        per_step = B * (I + 2 * H + 3 * R * gates + 2 * O)
        return 8 * _COPIES * (self.interval * per_step + self.seq_len * B * (I + O) + self.n_params)

    def to_dict(self):
        """The options as JSON data. ``cell`` and the cell's options (each by name, on or
        off) appear for a cell other than the default rnn: an RNN check's document, and
        the baselines kept of it, stay as they were before there were cells."""
        d = dataclasses.asdict(self)
        d["activations"] = list(self.activations)
        del d["cell_options"]
        if self.cell == DEFAULT_CELL:
            del d["cell"]
        d.update(self.model.options)
        return d


def _size(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _int_option(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(name, value, f"expected an integer >= {minimum}")
    return value


def _choice(name, value, allowed):
    if value not in allowed:
        raise UsageError(name, value, f"expected one of {', '.join(allowed)}")
    return value


def _memory_limit():
    """Half of the machine's physical memory, in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


# The options of one check, in the order of gradcheck.check's signature.
OPTIONS = ("interval", "seq_len") + SIZE_OPTIONS + ("loss", "activations", "reduction", "dtype",
                                                   "seed", "mode", "cell")


def make_config(*, interval=DEFAULT_INTERVAL, seq_len=None, batch=DEFAULT_SIZES["batch"],
                input_size=DEFAULT_SIZES["input_size"], hidden_size=DEFAULT_SIZES["hidden_size"],
                state_size=DEFAULT_SIZES["state_size"], output_size=DEFAULT_SIZES["output_size"],
                loss=DEFAULT_LOSS, activations=DEFAULT_ACTIVATIONS, reduction=DEFAULT_REDUCTION,
                dtype=DEFAULT_DTYPE, seed=0, mode=None, cell=DEFAULT_CELL, cell_options=()):
    """Validate every option; raise UsageError naming the first bad one.

    ``cell_options``: the names of the cell's options that are on (``("reset_after",)``)."""
    _int_option("interval", interval, 1)
    _choice("cell", cell, cell_names())
    declared = {o.name for o in cell_of(cell).options}
    cell_options = tuple(sorted(set(cell_options)))
    for name in cell_options:
        if name not in declared:
            owners = [c for c in cell_names() if name in {o.name for o in cell_of(c).options}]
            if not owners:
                raise UsageError(name, True, "not an option of any cell")
            raise UsageError(name, True, f"only for --cell {' or '.join(owners)} "
                                         f"(this check's cell is {cell})")
    if seq_len is None:
        seq_len = interval
    _int_option("seq_len", seq_len, 1)
    sizes = dict(batch=batch, input_size=input_size, hidden_size=hidden_size,
                 state_size=state_size, output_size=output_size)
    for name, value in sizes.items():
        _int_option(name, value, 1)
    _choice("loss", loss, LOSSES)
    if isinstance(activations, str):
        activations = tuple(activations.split(","))
    if (not isinstance(activations, (tuple, list)) or len(activations) != 3
            or any(not isinstance(a, str) or a not in ACTIVATIONS for a in activations)):
        raise UsageError("activations", activations if isinstance(activations, str) else
                         ",".join(map(str, activations)) if isinstance(activations, (tuple, list))
                         else activations,
                         f"expected three names f1,f2,f3, each one of {', '.join(ACTIVATIONS)}")
    activations = tuple(activations)
    why = cell_of(cell).fixed_f2
    if why and activations[1] != DEFAULT_ACTIVATIONS[1]:
        raise UsageError("activations", ",".join(activations),
                         f"--cell {cell} keeps f2 = {DEFAULT_ACTIVATIONS[1]}: {why}")
    spec = LOSSES[loss]
    if spec.logits and activations[2] != "identity":
        raise UsageError("activations", ",".join(activations),
                         f"loss {loss} works on logits and needs f3 = identity")
    if output_size < spec.min_outputs:
        raise UsageError("output_size", output_size,
                         f"loss {loss} {spec.min_outputs_why}: use an output size >= "
                         f"{spec.min_outputs}")
    _choice("reduction", reduction, REDUCTIONS)
    _choice("dtype", dtype, DTYPES)
    _int_option("seed", seed, 0)
    if mode is not None:
        _choice("mode", mode, MODES)
    config = Config(interval=interval, seq_len=seq_len, loss=loss, activations=activations,
                    reduction=reduction, dtype=dtype, seed=seed, mode=mode, cell=cell,
                    cell_options=cell_options, **sizes)
    need, limit = config.memory_estimate(), _memory_limit()
    if need > limit:
        grown = dict(sizes, interval=interval, seq_len=seq_len)
        defaults = dict(DEFAULT_SIZES, interval=DEFAULT_INTERVAL, seq_len=interval)
        worst = max(grown, key=lambda n: grown[n] / defaults[n])   # the size that grew most
        raise UsageError(worst, grown[worst],
                         f"these sizes need about {need / 2**30:.1f} GiB; this machine allows "
                         f"{limit / 2**30:.1f} GiB (half its memory): use smaller sizes")
    return config
