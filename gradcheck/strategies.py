"""Hypothesis strategies for gradcheck configurations: sweep your own implementation with them.

    from hypothesis import given
    import gradcheck
    from gradcheck.strategies import SETTINGS, configs

    @SETTINGS
    @given(configs())
    def test_my_bptt_passes_everywhere(options):
        report = gradcheck.check(my_loss_and_grads, **options)
        assert report.passed, report.format_table()

``configs()`` draws keyword arguments of ``gradcheck.check`` (and ``make_config``):
every size from 1 up, intervals from 1 up, sequence lengths of one or more windows
whose last window may be shorter, every loss with the activations it allows, both
reductions, both dtypes, and a seed. ``SETTINGS`` fits hypothesis to a check's cost.
Needs hypothesis (``pip install "gradcheck[test]"``).
"""
try:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
except ImportError as error:                                    # pragma: no cover
    raise ImportError("gradcheck.strategies needs hypothesis: "
                      "pip install hypothesis (or gradcheck's test extra)") from error

from .model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CELL, DTYPES, LOSSES, REDUCTIONS,
                    SIZE_OPTIONS, cell)

__all__ = ["SETTINGS", "configs", "sizes", "intervals", "models"]

# Defaults: sizes up to 16 and intervals up to 64 keep every JAX shape bucket
# (powers of two, at least 16 wide and 8 steps long) to 16 wide, so a sweep pays
# one compile per step bucket.
MAX_SIZE = 16
MAX_INTERVAL = 64
MAX_WINDOWS = 3

# Hypothesis settings for properties that run gradcheck.check (``@SETTINGS`` on the test;
# ``settings(SETTINGS, max_examples=...)`` to change one). No deadline: the first check
# in a process compiles the JAX model, and every new step or size bucket compiles
# again, far beyond hypothesis's default per-example deadline, while a warm check is
# quick; too_slow is suppressed for the same reason. 50 examples: every loss, both
# dtypes and reductions come up several times at a few compiles' cost.
SETTINGS = settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])


def sizes(max_size=MAX_SIZE):
    """B, I, H, R, O: a dict of five sizes, each from 1 to ``max_size``."""
    one = st.integers(1, max_size)
    return st.fixed_dictionaries({option: one for option in SIZE_OPTIONS})


@st.composite
def intervals(draw, max_interval=MAX_INTERVAL, max_windows=MAX_WINDOWS):
    """(interval, seq_len): 1 to ``max_windows`` windows, the last from 1 step to a full one."""
    # Small intervals are where most hand-written bugs show; long ones are drawn too.
    interval = draw(st.one_of(st.integers(1, min(8, max_interval)),
                              st.integers(1, max_interval)))
    windows = draw(st.integers(1, max_windows))
    last = draw(st.integers(1, interval))
    return interval, interval * (windows - 1) + last


@st.composite
def models(draw, losses=LOSSES, activations=ACTIVATIONS):
    """(loss, (f1, f2, f3)): losses on logits (ce, bce) get f3 = identity."""
    loss = draw(st.sampled_from(tuple(losses)))
    names = st.sampled_from(tuple(activations))
    f1, f2 = draw(names), draw(names)
    f3 = "identity" if LOSSES[loss].logits else draw(names)
    return loss, (f1, f2, f3)


@st.composite
def configs(draw, *, max_size=MAX_SIZE, max_interval=MAX_INTERVAL, max_windows=MAX_WINDOWS,
            losses=LOSSES, activations=ACTIVATIONS, reductions=REDUCTIONS, dtypes=DTYPES,
            cells=(DEFAULT_CELL,)):
    """Keyword arguments for ``gradcheck.check``: a whole configuration of one check.
    ``cells``: the cells to draw from (a cell other than the RNN keeps f2 = tanh when
    its nonlinearities are its own, and each of its options is drawn on or off)."""
    interval, seq_len = draw(intervals(max_interval, max_windows))
    loss, acts = draw(models(losses, activations))
    shape = draw(sizes(max_size))
    # a loss that needs more outputs (ce: a softmax over one class is constant) gets them
    shape["output_size"] = max(shape["output_size"], LOSSES[loss].min_outputs)
    drawn = dict(interval=interval, seq_len=seq_len, **shape, loss=loss,
                 activations=acts, reduction=draw(st.sampled_from(tuple(reductions))),
                 dtype=draw(st.sampled_from(tuple(dtypes))), seed=draw(st.integers(0, 2**16)))
    if tuple(cells) == (DEFAULT_CELL,):
        return drawn                     # (no further draw: the RNN's examples as before)
    name = draw(st.sampled_from(tuple(cells)))
    if name == DEFAULT_CELL:
        return drawn
    declared = cell(name)
    if declared.fixed_f2:
        drawn["activations"] = (acts[0], DEFAULT_ACTIVATIONS[1], acts[2])
    return dict(drawn, cell=name, **{o.name: draw(st.booleans()) for o in declared.options})
