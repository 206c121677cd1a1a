"""The CI regression check: recorded error figures of fixed configurations, compared with now.

    python -m gradcheck.regression            # the reference vs tests/regression_baseline.json
    python -m gradcheck.regression --update   # rewrite that baseline from the current code

    gradcheck regression --impl my_rnn.py:loss_and_grads --baseline mine.json --update
    gradcheck regression --impl my_rnn.py:loss_and_grads --baseline mine.json

The first pair is the project's own check (the reference over ``CONFIGS``, the baseline
committed in the source checkout's tests/, not shipped in the package); the second is the same check of a user's implementation over the battery
``IMPL_CONFIGS`` (gradcheck.battery), against a baseline file the user keeps: it fails
when a figure grows past the threshold even while every check still passes (1e-16 ->
1e-12 is a precision loss worth knowing about).

``measure()`` runs ``gradcheck.check`` on the implementation (the reference by default)
for every configuration and records, per result ``"{window}/{name}/{oracle}"``, whether it passed
and its error figure ``max_rel_err`` (rounded to 3 significant digits; no timings).
``compare(baseline, current)`` lists every regression, each naming the configuration,
its options and the result:

- a result that passed in the baseline and fails now (or a new result that fails);
- an error figure that grew more than ``GROWTH``-fold, measured from
  max(baseline figure, ``FLOORS[dtype][oracle]``);
- a configuration or result in the baseline that is missing now, a configuration
  whose options changed, or one whose check raised.

New configurations and new passing results are only notes (``notes()``): they
become part of the baseline at the next ``--update``.

The command line is ``gradcheck.cli.regression``. Exit codes: 0 no regression; 1 a
regression; 2 bad usage or an unreadable baseline.
"""
import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

from .battery import BATTERY
from .check import check
from .errors import UsageError
from .model import DEFAULT_ACTIVATIONS, DEFAULT_CELL
from .model import cell as model_cell

__all__ = ["CONFIGS", "IMPL_CONFIGS", "for_cell", "GROWTH", "FLOORS", "BASELINE", "measure", "compare",
           "regressions", "notes", "project_baseline", "load_baseline", "write_baseline", "main"]

# The reference's own baseline belongs to the project's source checkout (its tests), not to
# an installed package: nobody is asked to rewrite a file inside site-packages.
_CHECKOUT = Path(__file__).resolve().parents[1]
BASELINE = _CHECKOUT / "tests" / "regression_baseline.json"
FORMAT = 1

# An error figure may grow this many times before it is a regression. Figures move by
# a few times when the finite differences or the summation order change (rounding is
# rounding); a 100x growth is a lost digit or two of precision, which is a real change.
GROWTH = 100.0

# Error figures below the floor are noise of the computation itself, and a small one is
# luck: growth is measured from max(baseline figure, floor), so a figure that was 0 is
# a regression only above GROWTH * floor. Per dtype of the implementation under test
# and oracle:
# float64 vs JAX: rounding, whose value depends on the order in which BLAS and XLA sum
# (kernel, threads, CPU); an exact 0 on one machine is a few ulps on another. Every
# such figure in the baseline lies in [0, 8.5e-16] (0 to ~4 eps, eps = 2.2e-16). With
# 1e-15 a zero may grow to 1e-13 -- 100x above that noise -- and a float32
# intermediate leaking into a float64 computation (~1e-7) is still caught. (1e-17
# would flag at 1e-15, barely above the measured 8.5e-16: flaky across machines.)
# float64 vs finite differences: the engine's error is truncation only, ~FD_STEP^2
# * |f'''/f'| (oracle_fd.py works in difference form, so rounding stays relative to
# the perturbation). Baseline figures lie in [0, 1.5e-15], like JAX's: a few ulps.
# With 1e-14 a figure may grow to 1e-12 (as it would with a 30x larger step) before
# it is a regression: 5x above the worst figure, so reordering a sum is no alarm,
# while losing the difference form (~1e-10 here) or a 1000x step is.
# float32, either oracle: the implementation's float32 rounding against float64
# oracles dominates; baseline figures lie in [3.6e-8, 2.3e-7] (0.3 to 2 eps, eps =
# 1.2e-7). With 1e-7 a small figure may grow to 1e-5: 40x above that noise and still
# 10x below the float32 tolerance (1e-4).
FLOORS = {"float64": {"jax": 1e-15, "fd": 1e-14},
          "float32": {"jax": 1e-7, "fd": 1e-7}}

# Figures are recorded to this many significant digits: the 100x rule needs no more,
# and the committed file diffs readably.
_DIGITS = 3

# Small sizes for every configuration but the article's (B, I, H, R, O).
_SMALL = dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)

# Fixed configurations: keyword arguments of gradcheck.check (the rest at its defaults).
# Changing, adding or removing one needs ``--update`` (a changed one is a regression
# until then: its old figures no longer describe it). All together take a few seconds.
CONFIGS = {
    # The article: B=128, I=10, H=20, R=5, O=100, interval 3, l2, tanh,tanh,identity.
    "article": dict(interval=3),
    # Three windows, the last one step long: state carried across window boundaries.
    "windows_short_last": dict(interval=3, seq_len=7, **_SMALL),
    # l2 is the article's loss.
    "loss_ce": dict(interval=3, loss="ce", **_SMALL),
    "loss_bce": dict(interval=3, loss="bce", **_SMALL),
    "relu": dict(interval=3, activations=("relu", "relu", "identity"), **_SMALL),
    "sigmoid": dict(interval=3, activations=("sigmoid", "sigmoid", "sigmoid"), **_SMALL),
    "identity": dict(interval=3, activations=("identity", "identity", "identity"), **_SMALL),
    "reduction_sum": dict(interval=3, reduction="sum", **_SMALL),
    "float32": dict(interval=3, seq_len=5, dtype="float32", **_SMALL),
    "batch_1": dict(interval=3, **dict(_SMALL, batch=1)),
    # Every size 1, interval 1: two one-step windows.
    "all_sizes_1": dict(interval=1, seq_len=2, batch=1, input_size=1, hidden_size=1,
                        state_size=1, output_size=1),
    "long_interval": dict(interval=32, **_SMALL),
    # The cells: their reference against their own oracles (the LSTM carries c too).
    "lstm_windows": dict(interval=3, seq_len=7, cell="lstm", **_SMALL),
    "lstm_ce_float32": dict(interval=3, seq_len=5, cell="lstm", loss="ce", dtype="float32",
                            **_SMALL),
    "gru_windows": dict(interval=3, seq_len=7, cell="gru", **_SMALL),
    "gru_reset_after_bce": dict(interval=3, seq_len=5, cell="gru", reset_after=True,
                                loss="bce", **_SMALL),
}

# The configurations a user's implementation (--impl) is measured over.
IMPL_CONFIGS = BATTERY


def for_cell(configs, cell=DEFAULT_CELL, **cell_options):
    """``configs`` for an implementation of ``cell`` (its options on by name): each with
    the cell, leaving out those whose f2 a cell with its own nonlinearities cannot take."""
    if cell == DEFAULT_CELL and not cell_options:
        return configs
    fixed = model_cell(cell).fixed_f2
    return {name: dict(options, cell=cell, **cell_options) for name, options in configs.items()
            if not fixed or options.get("activations", DEFAULT_ACTIVATIONS)[1]
            == DEFAULT_ACTIVATIONS[1]}


def _figure(value):
    """An error figure as recorded: 3 significant digits, None for none (non-finite)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{_DIGITS}g}")


def _jsonable(options):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _measure_one(options, impl=None, path=None):
    entry = {"options": _jsonable(options), "config": None, "passed": False, "error": None,
             "results": {}}
    try:
        report = check(impl, **options, **({} if path is None else {"path": path}))
    except UsageError as e:
        if e.option == "impl":    # an implementation that cannot be loaded: bad usage
            raise
        entry["error"] = f"{type(e).__name__}: {e}"
        return entry
    except Exception as e:        # recorded, and reported by compare() with the config's name
        entry["error"] = f"{type(e).__name__}: {e}"
        return entry
    entry["config"] = report.config
    entry["passed"] = report.passed
    for r in report.results:
        key = f"{r.window}/{r.name}/{r.oracle}"
        figure, passed = _figure(r.max_rel_err), bool(r.passed)
        seen = entry["results"].get(key)
        if seen is not None:           # two contract problems of one array: keep the worse
            figures = [f for f in (figure, seen["max_rel_err"]) if f is not None]
            figure = max(figures) if figures else None
            passed = passed and seen["passed"]
        entry["results"][key] = {"passed": passed, "max_rel_err": figure}
    return entry


def measure(configs=None, impl=None, path=None):
    """Check ``impl`` under every named config; the document the baseline stores.

    ``configs`` maps a name to keyword arguments of ``gradcheck.check`` (default
    ``CONFIGS``); ``impl`` is what ``gradcheck.check`` takes (None: the reference; a
    ``FILE.py:FUNC`` spec is recorded under "impl"); ``path``: its package's root
    (``gradcheck.check``'s ``path``; not recorded, so the baseline does not depend on
    where the package lies). Deterministic: the same code gives the same document. Raises
    UsageError when ``impl`` cannot be loaded.
    """
    configs = CONFIGS if configs is None else configs
    if impl is None:
        about = ("Error figures of gradcheck.check on the reference, per configuration and "
                 "result window/array/oracle. Written by python -m gradcheck.regression "
                 "--update; compared by python -m gradcheck.regression in CI.")
    else:
        about = (f"Error figures of gradcheck.check on {_label(impl)}, per configuration and "
                 "result window/array/oracle. Written by gradcheck regression --impl ... "
                 "--baseline FILE --update; compared by the same without --update.")
    doc = {"about": about, "format": FORMAT,
           "configs": {name: _measure_one(options, impl, path)
                       for name, options in configs.items()}}
    if impl is not None:
        doc["impl"] = _label(impl)
    return doc


def _label(impl):
    if isinstance(impl, str):
        return impl
    return f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', repr(impl))}"


def _value(v):
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _describe(options):
    """``interval=3 seq_len=7 batch=4 ...`` in the order given; lists as a,b,c."""
    return " ".join(f"{k}={_value(v)}" for k, v in options.items())


def _num(v):
    """An error figure in a message: 4.3e-11, 0, none."""
    if v is None:
        return "none"
    return "0" if v == 0 else f"{v:.1e}"


def _dtype(entry):
    if entry.get("config"):
        return entry["config"]["dtype"]
    return entry.get("options", {}).get("dtype", "float64")


def _changes(old, new):
    """``batch 128 -> 64, ...``: how a config's options (as given, or as check() resolved
    them: a changed default) differ between two entries; "" when they do not."""
    out, seen = [], set()
    for field in ("config", "options"):
        a, b = old[field], new[field]
        if a is None or b is None:      # a check that raised resolved no config
            continue
        for k in [*a, *(k for k in b if k not in a)]:
            if a.get(k) != b.get(k) and k not in seen:
                seen.add(k)
                out.append(f"{k} {_value(a.get(k, '-'))} -> {_value(b.get(k, '-'))}")
    return ", ".join(out)


def _floor(dtype, key):
    """The floor of result ``key`` (``window/name/oracle``) in a config of ``dtype``."""
    floors = FLOORS[dtype]
    return floors.get(key.rsplit("/", 1)[-1], min(floors.values()))


def _result_problem(key, old, new, floor, growth):
    """What is wrong with one result now, or None."""
    figures = f"max_rel_err {_num(old['max_rel_err'])} -> {_num(new['max_rel_err'])}"
    if old["passed"] and not new["passed"]:
        return f"{key} passed -> FAILED ({figures})"
    b, c = old["max_rel_err"], new["max_rel_err"]
    if b is None:                       # no figure to grow from (non-finite in the baseline)
        return None
    if c is None:
        return f"{key} {figures} (non-finite now)"
    start = max(b, floor)
    if c > growth * start:
        base = "" if b >= floor else f" the floor {floor:g}"
        return f"{key} {figures} ({c / start:.0f}x{base}, limit {growth:g}x)"
    return None


def project_baseline():
    """The reference's baseline file when running from a source checkout, else None."""
    if (_CHECKOUT / "pyproject.toml").is_file() and BASELINE.parent.is_dir():
        return BASELINE
    return None


class Regressed(NamedTuple):
    """One configuration's regressions: what went wrong (one text per result) and the
    configuration's options (``interval=3 batch=4 ...``)."""
    problems: list
    options: str


def compare(baseline, current, growth=GROWTH):
    """Every regression of ``current`` against ``baseline`` (documents of ``measure``).

    One message per regression, each naming the configuration and its options::

        article: 1/W1/fd max_rel_err 4.3e-11 -> 9.1e-08 (2116x, limit 100x)  config: interval=3

    An empty list means no regression. New configurations and results that pass
    are not regressions (see ``notes``).
    """
    return [f"{name}: {text}  config: {r.options}"
            for name, r in regressions(baseline, current, growth).items()
            for text in r.problems]


def regressions(baseline, current, growth=GROWTH):
    """``{configuration name: Regressed}`` for each configuration that regressed."""
    out = {}
    now = current["configs"]
    for name, old in baseline["configs"].items():
        new = now.get(name)
        where = _describe((new or old)["options"])
        if new is None:
            out[name] = Regressed(["configuration missing now"], where)
            continue
        changed = _changes(old, new)
        if changed:
            out[name] = Regressed([f"options changed ({changed}); the baseline's figures no "
                                   "longer describe it (run --update if intended)"], where)
            continue
        if new["error"] is not None:
            out[name] = Regressed([f"check raised {new['error']}"], where)
            continue
        dtype = _dtype(new)
        found = []
        for key, result in old["results"].items():
            if key not in new["results"]:
                found.append(f"{key} missing now")
                continue
            problem = _result_problem(key, result, new["results"][key],
                                      _floor(dtype, key), growth)
            if problem:
                found.append(problem)
        for key, result in new["results"].items():
            if key not in old["results"] and not result["passed"]:
                found.append(f"{key} new and FAILED (max_rel_err {_num(result['max_rel_err'])})")
        if not found and old["passed"] and not new["passed"]:
            found.append("passed -> FAILED")
        if found:
            out[name] = Regressed(found, where)
    return out


def notes(baseline, current):
    """What ``current`` has that ``baseline`` lacks, and is not a regression."""
    out = []
    old_configs = baseline["configs"]
    for name, new in current["configs"].items():
        old = old_configs.get(name)
        if old is None:
            out.append(f"{name}: new configuration, not in the baseline "
                       f"({len(new['results'])} results)  config: {_describe(new['options'])}")
            continue
        fresh = [k for k, r in new["results"].items() if k not in old["results"] and r["passed"]]
        if fresh:
            out.append(f"{name}: {len(fresh)} new result(s) not in the baseline: "
                       f"{', '.join(fresh)}  config: {_describe(new['options'])}")
    return out


def load_baseline(path=None):
    """A baseline document (the project's, ``BASELINE``, by default)."""
    path = BASELINE if path is None else Path(path)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "configs" not in doc:
        raise UsageError("baseline", str(path), f"expected a format-{FORMAT} document written "
                         "by python -m gradcheck.regression --update")
    return doc


def write_baseline(doc, path=None):
    """Write ``doc`` as strict JSON: sorted keys, indent 1, a final newline."""
    path = BASELINE if path is None else Path(path)
    text = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def main(argv=None):
    """``python -m gradcheck.regression``: the command line (gradcheck.cli.regression)."""
    from .cli.regression import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
