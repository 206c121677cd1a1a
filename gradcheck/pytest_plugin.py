"""The pytest plugin (entry point ``pytest11``): a ready battery, a fixture and a marker.

    pytest --gradcheck-impl my_rnn.py:loss_and_grads
    pytest --gradcheck-impl my_lstm.py --gradcheck-cell lstm

adds one test per configuration of ``gradcheck.battery.BATTERY`` (named
``gradcheck::battery[loss_ce]`` and so on) that checks that implementation; a failure reads like
``gradcheck.testing.assert_bptt_correct``'s (the diagnosis first). For your own tests:

    def test_mine(bptt_check):                  # the fixture
        bptt_check(my_loss_and_grads, interval=4, loss="ce")

    @pytest.mark.gradcheck(interval=5, dtype="float32")   # the marker: default options
    def test_given_impl(bptt_check):
        bptt_check()                            # the --gradcheck-impl implementation

pytest loads this module in every run where gradcheck is installed, so at load it imports
only pytest: NumPy, JAX and the checker load when a gradcheck test runs.
"""
import os

import pytest

__all__ = ["GradcheckItem"]

_OPTION = "--gradcheck-impl"
_CELL = "--gradcheck-cell"


def _cell_flags():
    """{option name: CellOption} of every cell's options (--gradcheck-reset-after)."""
    from .model import cell, cell_names
    return {o.name: o for n in cell_names() for o in cell(n).options}


def pytest_addoption(parser):
    from .model import DEFAULT_CELL, cell_names
    group = parser.getgroup("gradcheck", "gradcheck (check a hand-written BPTT)")
    group.addoption(_OPTION, metavar="FILE.py[:FUNC]", default=None,
                    help="run gradcheck's ready battery of checks on this implementation "
                         "(FILE.py[:FUNC], FUNC defaults to loss_and_grads, or MODULE:FUNC), "
                         "one test per configuration")
    group.addoption(_CELL, metavar="CELL", default=DEFAULT_CELL,
                    help=f"the cell of the {_OPTION} implementation: "
                         f"{', '.join(cell_names())} (default {DEFAULT_CELL}; each cell's "
                         f"contract: see README)")
    for name, option in _cell_flags().items():
        group.addoption(f"--gradcheck-{name.replace('_', '-')}", action="store_true",
                        dest=f"gradcheck_{name}", help=option.help)


def _cell(config):
    """The check options of the cell named on the command line: {} for the RNN."""
    from .model import DEFAULT_CELL, cell_names
    name = config.getoption(_CELL, default=DEFAULT_CELL)
    if name not in cell_names():
        raise pytest.UsageError(f"{_CELL} {name}: expected one of {', '.join(cell_names())}")
    flags = {n: True for n in _cell_flags() if config.getoption(f"gradcheck_{n}", False)}
    return {} if name == DEFAULT_CELL and not flags else dict(flags, cell=name)


def _for_cell(options, cell_options):
    """A battery configuration for the chosen cell: a cell whose f2 is its own keeps tanh
    there (the other activations and options as the configuration has them)."""
    if not cell_options:
        return options
    from .model import DEFAULT_ACTIVATIONS, cell
    options = dict(options, **cell_options)
    acts = options.get("activations")
    if cell(cell_options["cell"]).fixed_f2 and acts is not None:
        options["activations"] = (acts[0], DEFAULT_ACTIVATIONS[1], acts[2])
    return options


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gradcheck(**options): default options of gradcheck.check for the "
                   "bptt_check fixture in this test")


def _spec(config):
    spec = config.getoption(_OPTION, default=None)
    if spec is not None and ":" not in spec and spec.endswith(".py"):
        spec = f"{spec}:loss_and_grads"      # the contract's name, as --impl FILE.py
    if spec is not None and (":" not in spec or not spec.rpartition(":")[2].isidentifier()):
        raise pytest.UsageError(f"{_OPTION} {spec}: expected FILE.py[:FUNC] or MODULE:FUNC "
                                "naming a function")
    where = None if spec is None else spec.rpartition(":")[0]
    if where is not None and where.endswith(".py") and not os.path.isfile(where):
        raise pytest.UsageError(f"{_OPTION} {spec}: no such file {where!r}")
    return spec


class GradcheckItem(pytest.Item):
    """One configuration of the battery, checked on the --gradcheck-impl implementation."""

    def __init__(self, *, spec, options, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.options = spec, options

    def runtest(self):
        from .testing import NotSupported, assert_bptt_correct
        counts = _outcomes(self.config)
        try:
            assert_bptt_correct(self.spec, **self.options)
        except NotSupported as exc:      # the code declines this configuration (e.g. ce)
            counts["declined"] += 1
            pytest.skip(str(exc))
        counts["passed"] += 1

    def repr_failure(self, excinfo):
        from .errors import UsageError
        if isinstance(excinfo.value, (AssertionError, UsageError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.nodeid} ({self.spec})"


class _Battery(pytest.Collector):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self):
        from .battery import BATTERY
        cell_options = _cell(self.config)
        for name, options in BATTERY.items():
            yield GradcheckItem.from_parent(self, name=f"battery[{name}]", spec=self.spec,
                                            options=_for_cell(options, cell_options))


@pytest.hookimpl(tryfirst=True)          # before -k / -m deselect among the items
def pytest_collection_modifyitems(session, config, items):
    spec = _spec(config)
    if spec is None:
        return
    battery = _Battery.from_parent(session, name="gradcheck", nodeid="gradcheck", spec=spec)
    added = list(battery.collect())
    items.extend(added)
    # Collected here, after pytest's own collection: reported like any collector's items,
    # so that "collected N items" (and -k's "N deselected") counts them too.
    config.hook.pytest_collectreport(report=pytest.CollectReport(
        battery.nodeid, "passed", None, added))


_OUTCOMES = pytest.StashKey[dict]()


def _outcomes(config):
    """How many of the battery's configurations passed, how many were declined."""
    if _OUTCOMES not in config.stash:
        config.stash[_OUTCOMES] = {"passed": 0, "declined": 0}
    return config.stash[_OUTCOMES]


def _nothing_checked(config):
    counts = _outcomes(config)
    return counts["declined"] > 0 and counts["passed"] == 0


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """A battery whose every configuration the code declined checked nothing: the run
    fails (a skip is not a pass)."""
    if _nothing_checked(session.config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _nothing_checked(config):
        terminalreporter.write_line(
            f"gradcheck: the implementation declined every configuration of the battery "
            f"that ran ({_outcomes(config)['declined']}): nothing was checked, which fails "
            f"the run", red=True)


@pytest.fixture
def bptt_check(request):
    """``bptt_check(impl=None, **options)``: assert_bptt_correct on ``impl`` (default: the
    --gradcheck-impl implementation; the test is skipped when neither is given), with the
    options of a ``@pytest.mark.gradcheck(...)`` marker as defaults."""
    marker = request.node.get_closest_marker("gradcheck")
    defaults = dict(marker.kwargs) if marker else {}

    def run(impl=None, **options):
        __tracebackhide__ = True
        from .testing import assert_bptt_correct
        given = impl
        impl = impl if impl is not None else _spec(request.config)
        if impl is None:
            pytest.skip(f"no implementation: pass one to bptt_check or {_OPTION}")
        cell = _cell(request.config) if given is None else {}   # the --gradcheck-impl's cell
        assert_bptt_correct(impl, **{**cell, **defaults, **options})
    return run
