"""``gradcheck --interval 3``: the whole-window check's command line (``gradcheck --help``)."""
import difflib
import os
import sys
import time

from ..config import OPTIONS
from ..errors import ExitCode, UsageError
from ..model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_DTYPE,
                     DEFAULT_LOSS, DEFAULT_REDUCTION, DTYPES, LOSSES, REDUCTIONS, SIZES, cell,
                     cell_names)
from ..text import answer
from .skeleton import (PATH_HELP, BadUsage, Outcome, Parser, flag, integer, needs_matplotlib,
                       wrote)

__all__ = ["build_parser", "body", "Progress", "USAGE"]

USAGE = """gradcheck --interval K [options]        check the reference, or --impl FILE.py[:FUNC]
       gradcheck --bug NAME | --list-bugs     the zoo of wrong implementations
       gradcheck {layer,regression,tour,grade} --help     the subcommands"""


def build_parser():
    p = Parser(prog="gradcheck", usage=USAGE, description=(
        "Check a hand-written BPTT (the reference, or yours with --impl) against JAX "
        "autodiff and central finite differences, element by element. Subcommands: "
        "layer (one layer by itself), regression (error figures against a baseline), "
        "tour (the article's four questions), grade (a class of submissions); "
        "gradcheck SUBCOMMAND --help."))
    p.add_argument("--interval", type=integer, metavar="K",
                   help="BPTT interval: steps per window (required, except with --bug or "
                        "--list-bugs)")
    p.add_argument("--cell", default=DEFAULT_CELL, help="the middle layer: " + "; ".join(
        f"{n}: {cell(n).equations}" for n in cell_names()) + f" (default {DEFAULT_CELL}); "
        f"its contract: see README")
    for name, option in cell_options().items():
        p.add_argument(flag(name), action="store_true", help=option.help)
    p.add_argument("--seq-len", type=integer, metavar="T",
                   help="sequence length, cut into windows of K (default K)")
    for size in SIZES:
        p.add_argument(flag(size.option), type=integer, default=size.default,
                       metavar=size.letter, help=f"{size.meaning} (default {size.default})")
    p.add_argument("--loss", default=DEFAULT_LOSS, help="; ".join(
        f"{n}: {loss.formula}" for n, loss in LOSSES.items()) + f" (default {DEFAULT_LOSS})")
    p.add_argument("--activations", default=",".join(DEFAULT_ACTIVATIONS), metavar="F1,F2,F3",
                   help=f"each of {', '.join(ACTIVATIONS)} "
                        f"(default {','.join(DEFAULT_ACTIVATIONS)})")
    p.add_argument("--reduction", default=DEFAULT_REDUCTION, help="; ".join(
        f"{n}: {what}" for n, what in REDUCTIONS.items()) + f" (default {DEFAULT_REDUCTION})")
    p.add_argument("--dtype", default=DEFAULT_DTYPE, help=f"{' or '.join(DTYPES)}, of the "
                   f"implementation under test (default {DEFAULT_DTYPE})")
    p.add_argument("--seed", type=integer, default=0, metavar="N", help="every random draw")
    p.add_argument("--impl", metavar="FILE.py[:FUNC]|MODULE:FUNC",
                   help="check this implementation instead of the reference")
    p.add_argument("--path", metavar="DIR", kind="folder", help="with --impl: " + PATH_HELP)
    p.add_argument("--in-process", action="store_true",
                   help="run --impl inside the checker's own process, without limits: it "
                        "then trusts the code (for debuggers); by default --impl runs in a "
                        "worker process of its own")
    p.add_argument("--timeout", default=None, metavar="SECONDS", kind="seconds",
                   help="the most one call of --impl may take (default 60)")
    p.add_argument("--require-isolation", action="store_true",
                   help="refuse to run --impl (exit 2) where its worker would run as your "
                        "own user without namespaces (see README, Isolation)")
    p.add_argument("--time-budget", default=None, metavar="SECONDS", kind="seconds",
                   help="the most all calls of --impl may take together (default 3x "
                        "--timeout); the extra calls that locate a failure stop when it is spent")
    p.add_argument("--memory-limit", default=None, metavar="SIZE", kind="size",
                   help="the most memory --impl's process may use, e.g. 512M, 4G "
                        "(default 4G, or half this machine's memory if less)")
    p.add_argument("--adapter", metavar="STYLE|FILE.json|JSON", action="append",
                   help="--impl names a module written in another shape: a style (course, "
                        "textbook, cell, function) or a declaration (see README, Adapters); "
                        "given again, merged over the earlier (a .json file, then overrides)")
    p.add_argument("--skip", metavar="NAMES", default="",
                   help="gradients the code does not compute, e.g. x,h0 (reported as "
                        "skipped, never compared)")
    p.add_argument("--mode", default=None, help="full (every element) or projections")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also the table of every comparison (window, array, oracle)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report "
                   "(the figure embedded); costs extra calls of the implementation")
    p.add_argument("--plot", metavar="FILE.png", help="also write the figure: per-step errors, "
                   "the state derivative per step, the V curve of the worst element")
    p.add_argument("--list-bugs", action="store_true",
                   help="list the zoo of deliberately wrong implementations (of --cell's cell) "
                        "and exit")
    p.add_argument("--bug", metavar="NAME",
                   help="check one zoo implementation (with its demonstration options "
                        "unless given on the command line), as a demonstration")
    return p


def cell_options():
    """{name: CellOption} of every cell's options (each a flag of its own)."""
    return {o.name: o for n in cell_names() for o in cell(n).options}


def _zoo_bugs(cell_name):
    """{name: bug} of ``cell_name``'s zoo (each with ``doc`` and ``make()``; a cell's bug
    also names the cell options of the form it is a mistake of)."""
    from ..model import side
    return side(cell_name, "zoo").BUGS


def _list_bugs(cell_name):
    bugs = [b for _, b in sorted(_zoo_bugs(cell_name).items())]
    width = max(len(b.name) for b in bugs)
    return "\n".join(f"{bug.name.ljust(width)}  {bug.doc}" + "".join(
        f" (--{o.replace('_', '-')})" for o in getattr(bug, "options", ())) for bug in bugs)


class Progress:
    """'window i/n' on stderr once a check has run ~2 s; only to a terminal."""
    AFTER_SECONDS = 2.0

    def __init__(self, stream):
        self.stream, self.started, self.shown = stream, time.perf_counter(), False

    def __call__(self, done, total):
        elapsed = time.perf_counter() - self.started
        if elapsed >= self.AFTER_SECONDS and done < total:
            self.stream.write(f"\rgradcheck: window {done}/{total} checked ({elapsed:.0f} s)")
            self.stream.flush()
            self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")


def _unknown_bug(name, cell_name, bugs):
    """What to say of a --bug that is not in the cell's zoo: the cell whose zoo has it,
    or the name meant (a diagnosis kind is the bug's name after the cell's prefix:
    lstm_no_dc_next), or the closest name."""
    cell_flag = "" if cell_name == DEFAULT_CELL else f"--cell {cell_name} "
    others = [c for c in cell_names() if c != cell_name and name in _zoo_bugs(c)]
    if others:
        zoos = " or ".join(f"--cell {c}" for c in others)
        return f"in the zoo of {zoos}, not of --cell {cell_name} (give {zoos})"
    close = difflib.get_close_matches(name.removeprefix(f"{cell_name}_"), bugs, n=1)
    return (f"expected one of the names {cell_flag}--list-bugs prints"
            + (f" (did you mean {close[0]}?)" if close else ""))


def _run(args, given):
    options = {name: getattr(args, name) for name in OPTIONS}
    impl = None
    bug_form = None                      # a cell bug's options: the form it is a mistake of
    if args.bug is not None:
        bugs = _zoo_bugs(args.cell)
        if args.impl is not None:
            raise BadUsage("--bug and --impl: choose one implementation to check")
        if args.bug not in bugs:
            raise UsageError("bug", args.bug, _unknown_bug(args.bug, args.cell, bugs))
        bug = bugs[args.bug]
        impl = bug.make()
        bug_form = set(getattr(bug, "options", ()))
        demo = {k: v for k, v in bug.config.items() if k not in given}
        options.update(demo)
        if options["interval"] is None:
            options["interval"] = 3
    if options["interval"] is None:
        raise BadUsage("--interval is required: an integer >= 1 (try --interval 3)")
    limits, extra = {}, {}
    if args.impl is not None:
        impl = args.impl
        limits = _limits(args)
        if not args.in_process:
            from ..isolation import start_fork_server
            start_fork_server()          # loads NumPy while this process loads JAX
    elif any(v is not None for v in (args.timeout, args.time_budget, args.memory_limit)):
        raise BadUsage("--timeout, --time-budget and --memory-limit apply to --impl")
    if args.path is not None:
        if args.impl is None:
            raise BadUsage("--path needs --impl: it is where --impl's own package is found")
        extra["path"] = args.path
    if args.adapter is not None:
        if args.impl is None:
            raise BadUsage("--adapter needs --impl naming the module to check")
        from ..adapters import read_declaration, sizes, supported
        decl = extra["adapter"] = read_declaration(args.adapter, options.get("cell"))
        extra["adapter_defaults"] = False  # options not given: what the adapter's code computes
        computed = dict(zip(("loss", "activations", "reduction"), supported(decl)))
        computed.update(sizes(decl, {"batch": None, "hidden_size": None,
                                     "input_size": options["input_size"]}))
        for name, value in computed.items():
            if name not in given and value is not None and name in options:
                options[name] = value
    if args.skip:
        extra["skip"] = args.skip
    extra.update({n: True for n in cell_options() if getattr(args, n)})
    if bug_form is not None:
        for name in (o.name for o in cell(args.cell).options):   # others: refused below
            if name in given and (name in extra) != (name in bug_form):
                flag = "--" + name.replace("_", "-")
                raise BadUsage(f"{flag}: --bug {args.bug} is a mistake of the form "
                               f"{'with' if name in bug_form else 'without'} {flag}")
        extra.update({n: True for n in bug_form})
    progress = None
    if not args.json and sys.stderr.isatty():
        progress = Progress(sys.stderr)
    pictures = _pictures(args)
    from ..check import check         # imports the oracles: only when a check runs
    from ..exe_cache import cli_cache
    from ..oracle_fd import keep_freed_memory
    keep_freed_memory()              # this process's malloc (never set on import gradcheck)
    try:
        with cli_cache():                # the compiled oracle, kept for the next process
            report = check(impl, progress=progress, trace=bool(pictures), **limits, **options,
                           **extra)
        if args.impl is not None and not args.in_process:
            from ..isolation import sweep
            sweep()                      # nothing it started outlives the check's outputs
        _write_pictures(report, pictures)
        return report
    finally:
        if progress is not None:
            progress.close()


def _limits(args):
    """check()'s keyword arguments for how --impl runs (the parser has read the values)."""
    from ..isolation import DEFAULT_TIMEOUT
    if args.in_process:
        if args.require_isolation:
            raise BadUsage("--require-isolation and --in-process: choose one")
        return {"in_process": True}
    out = {name: getattr(args, name) for name in ("timeout", "time_budget", "memory_limit")
           if getattr(args, name) is not None}
    if args.require_isolation:
        out["require_isolation"] = True
    out.setdefault("timeout", DEFAULT_TIMEOUT)
    return out


def _show_output(report):
    """What the implementation printed, on stderr (never in the --json document)."""
    text = report.format_output()
    if text:
        print(text, file=sys.stderr)


def _pictures(args):
    """{"html"/"plot": path} asked for, checked before the check runs (UsageError)."""
    asked = {k: getattr(args, k) for k in ("html", "plot") if getattr(args, k)}
    for option, path in asked.items():
        folder = os.path.dirname(os.path.abspath(path))
        if option == "plot" and not path.lower().endswith(".png"):
            raise UsageError(option, path, "expected a file name ending in .png")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(option, path, f"expected a file in a writable folder; "
                             f"{folder} is not one")
        needs_matplotlib(option, path)
    return asked


def _write_pictures(report, pictures):
    if not pictures:
        return
    from ..figure import figure_png
    png = figure_png(report)
    if "plot" in pictures:
        from ..atomic import write_atomic
        write_atomic(pictures["plot"], png)
        wrote("the figure", pictures["plot"])
    if "html" in pictures:
        from ..html import write_html
        write_html(report, pictures["html"], png)
        wrote("the HTML report", pictures["html"])


def given_options(argv):
    """The option names spelled out on the command line."""
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}


def body(args, argv):
    """The check the arguments ask for: an Outcome (the table, or the JSON document)."""
    if args.list_bugs:
        return Outcome(ExitCode.OK, text=_list_bugs(args.cell))
    report = _run(args, given_options(argv))
    _show_output(report)
    code = ExitCode.OK if report.passed else ExitCode.FAILED
    if args.json:
        return Outcome(code, document=report.to_dict())
    return Outcome(code, text=answer(report, verbose=args.verbose))
