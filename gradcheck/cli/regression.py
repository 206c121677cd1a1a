"""``gradcheck regression``: error figures of fixed configurations against a baseline
(``gradcheck.regression``). Output: a one-line summary (how many configurations
regressed), then one line per regressed configuration."""
import sys
from pathlib import Path

from .. import regression
from ..errors import ExitCode, UsageError
from ..model import DEFAULT_CELL
from .check import cell_options
from .skeleton import PATH_HELP, BadUsage, Outcome, Parser, flag, run

__all__ = ["build_parser", "main"]

SHOWN = 2    # regressions named on a configuration's line; the rest are counted


def build_parser():
    p = Parser(prog="gradcheck regression", description=(
        "Compare the error figures of fixed configurations with a baseline; a regression "
        "is a pass turned fail, a figure grown more than "
        f"{regression.GROWTH:g}-fold, or a configuration or result gone. With --impl and "
        "--baseline: your implementation over gradcheck's battery, against your file. "
        "Without either: the reference against the project's own baseline "
        "(a source checkout's tests/regression_baseline.json)."),
        epilog="Exit codes: 0 no regression; 1 a regression; 2 bad usage or an unreadable "
               "baseline.")
    p.add_argument("--impl", metavar="FILE.py[:FUNC]|MODULE:FUNC",
                   help="measure this implementation over gradcheck's battery of "
                        "configurations (required with --baseline)")
    p.add_argument("--baseline", type=Path, default=None, metavar="FILE",
                   help="your baseline file (required with --impl)")
    p.add_argument("--path", metavar="DIR", kind="folder", help="with --impl: " + PATH_HELP)
    p.add_argument("--cell", default=DEFAULT_CELL,
                   help=f"the implementation's cell (default {DEFAULT_CELL}; with --impl): "
                        f"the battery's configurations that the cell can run, with it")
    for name, option in cell_options().items():
        p.add_argument(flag(name), action="store_true", help=option.help)
    p.add_argument("--update", action="store_true",
                   help="rewrite the baseline from the current code instead of comparing")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="name every regressed result on its configuration's line")
    p.add_argument("--json", action="store_true",
                   help="one JSON document on stdout: the configurations that regressed, "
                        "with their problems")
    return p


def _target(args):
    """(the baseline file, the implementation) the arguments name; BadUsage otherwise."""
    if args.impl is not None and args.baseline is None:
        raise BadUsage("--impl needs --baseline FILE: the file that keeps your "
                       "implementation's figures (create it with --update)")
    if args.baseline is not None and args.impl is None:
        raise BadUsage("--baseline needs --impl naming the implementation it measures "
                       "(without both: the reference against the project's own baseline)")
    if args.path is not None and args.impl is None:
        raise BadUsage("--path needs --impl: it is where --impl's own package is found")
    if args.impl is not None:
        return args.baseline, args.impl
    path = regression.project_baseline()
    if path is None:
        raise BadUsage("the reference's baseline is kept in gradcheck's source checkout "
                       "(tests/regression_baseline.json), not in an installed package; "
                       "for your implementation: --impl FILE.py --baseline FILE")
    return path, None


def _update_command(args):
    if args.impl is None:
        return "python -m gradcheck.regression --update"
    path = "" if args.path is None else f" --path {args.path}"
    return f"gradcheck regression --impl {args.impl}{path} --baseline {args.baseline} --update"


def _count(doc):
    return len(doc["configs"]), sum(len(c["results"]) for c in doc["configs"].values())


def _line(name, found, verbose):
    if verbose or len(found.problems) <= SHOWN:
        shown, more = found.problems, ""
    else:
        shown, more = found.problems[:SHOWN], f"; and {len(found.problems) - SHOWN} more"
    return f"{name}: {'; '.join(shown)}{more}  config: {found.options}"


def _cell(args):
    """(cell, {its options that are on}) of the arguments; UsageError naming the option."""
    on = {n: True for n in cell_options() if getattr(args, n)}
    if args.cell == DEFAULT_CELL and not on:
        return DEFAULT_CELL, {}
    if args.impl is None:
        raise BadUsage(f"--cell {args.cell} needs --impl and --baseline: the project's own "
                       f"baseline is the reference's RNN")
    from ..config import make_config             # UsageError naming --cell or the option
    make_config(interval=1, cell=args.cell, cell_options=tuple(on))
    return args.cell, on


def body(args):
    path, impl = _target(args)
    cell, on = _cell(args)
    configs = regression.CONFIGS if impl is None else regression.for_cell(
        regression.IMPL_CONFIGS, cell, **on)
    if not args.update:
        try:
            baseline = regression.load_baseline(path)
        except (OSError, ValueError) as e:      # missing, unreadable, not JSON, wrong format
            raise BadUsage(f"--baseline {path}: cannot read the baseline ({e}); create it "
                           f"with: {_update_command(args)}") from None
    current = regression.measure(configs, impl, path=args.path)
    n, m = _count(current)
    if args.update:
        try:
            regression.write_baseline(current, path)
        except OSError as e:
            raise UsageError("baseline", str(path), f"cannot write it: {e.strerror or e}") \
                from None
        bad = [name for name, c in current["configs"].items() if not c["passed"]]
        if bad:
            print(f"warning: failing on the current code, so the baseline cannot catch them "
                  f"failing: {', '.join(bad)}", file=sys.stderr)
        return Outcome(ExitCode.OK, text=f"regression baseline: wrote {path}: {n} "
                                         f"configurations, {m} results",
                       document={"wrote": str(path), "configurations": n, "results": m})
    lines = []
    if baseline.get("impl") != current.get("impl"):
        lines.append(f"note: the baseline was recorded from "
                     f"{baseline.get('impl', 'the reference')}; now measuring "
                     f"{current.get('impl', 'the reference')}")
    found = regression.regressions(baseline, current)
    notes = [f"note: {line}" for line in regression.notes(baseline, current)]
    document = {"passed": not found, "configurations": n, "results": m,
                "regressed": {name: {"problems": r.problems, "options": r.options}
                              for name, r in found.items()},
                "notes": [*lines, *notes]}
    if not found:
        summary = f"regression check: {n} configurations, {m} results, no regression"
        return Outcome(ExitCode.OK, text="\n".join([summary, *lines, *notes]),
                       document=document)
    total = sum(len(r.problems) for r in found.values())
    summary = (f"regression check: {len(found)} of {n} configurations regressed "
               f"({total} result(s)); if intended, run {_update_command(args)} and commit "
               f"{path}")
    per_config = [_line(name, r, args.verbose) for name, r in found.items()]
    return Outcome(ExitCode.FAILED, text="\n".join([summary, *per_config, *lines, *notes]),
                   document=document)


def main(argv=None):
    """Compare (or with --update, rewrite) the baseline; returns an ExitCode."""
    if "--impl" not in (sys.argv[1:] if argv is None else argv):
        return run("gradcheck regression", build_parser, body, argv)
    from ..isolation import fork_server
    with fork_server():                  # one for every configuration's isolated check
        return run("gradcheck regression", build_parser, body, argv)
