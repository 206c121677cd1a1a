"""The command line: ``gradcheck --interval 3`` (see ``gradcheck --help``)."""
import argparse
import contextlib
import json
import os
import sys
import time

from .config import OPTIONS
from .errors import ExitCode, UsageError
from .model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_CELL, DEFAULT_DTYPE,
                    DEFAULT_LOSS, DEFAULT_REDUCTION, DTYPES, LOSSES, REDUCTIONS, SIZES, cell,
                    cell_names)

__all__ = ["build_parser", "main"]


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):          # one line, our exit code, no usage dump
        raise _ArgumentError(message)


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _flag(option):
    return option.replace("_", "-")


def build_parser():
    p = _Parser(prog="gradcheck", description=(
        "Check a hand-written BPTT (the reference, or yours with --impl) against JAX "
        "autodiff and central finite differences, element by element. "
        f"Subcommands: gradcheck {{{','.join(SUBCOMMANDS)}}} --help."),
        epilog="Exit codes: 0 everything agrees; 1 a verdict against the implementation; "
               "2 bad usage.")
    p.add_argument("--interval", type=_int, metavar="K", help="BPTT interval: steps per window")
    p.add_argument("--cell", default=DEFAULT_CELL, help="the middle layer: " + "; ".join(
        f"{n}: {cell(n).equations}" for n in cell_names()) + f" (default {DEFAULT_CELL}); "
        f"its contract: see README")
    for name, option in cell_options().items():
        p.add_argument(f"--{_flag(name)}", action="store_true", help=option.help)
    p.add_argument("--seq-len", type=_int, metavar="T",
                   help="sequence length, cut into windows of K (default K)")
    for size in SIZES:
        p.add_argument(f"--{_flag(size.option)}", type=_int, default=size.default,
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
    p.add_argument("--seed", type=_int, default=0, metavar="N", help="every random draw")
    p.add_argument("--impl", metavar="FILE.py:FUNC|MODULE:FUNC",
                   help="check this implementation instead of the reference")
    p.add_argument("--in-process", action="store_true",
                   help="run --impl inside the checker's own process, without limits: it "
                        "then trusts the code (for debuggers); by default --impl runs in a "
                        "worker process of its own")
    p.add_argument("--timeout", default=None, metavar="SECONDS",
                   help="the most one call of --impl may take (default 60)")
    p.add_argument("--require-isolation", action="store_true",
                   help="refuse to run --impl (exit 2) where its worker would run as your "
                        "own user without namespaces (see README, Isolation)")
    p.add_argument("--time-budget", default=None, metavar="SECONDS",
                   help="the most all calls of --impl may take together (default 3x "
                        "--timeout); the extra calls that locate a failure stop when it is spent")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="the most memory --impl's process may use, e.g. 512M, 4G "
                        "(default 4G, or half this machine's memory if less)")
    p.add_argument("--adapter", metavar="STYLE|FILE.json|JSON",
                   help="--impl names a module written in another shape: a style (course, "
                        "textbook, cell, function) or a declaration (see README, Adapters)")
    p.add_argument("--skip", metavar="NAMES", default="",
                   help="gradients the code does not compute, e.g. x,h0 (reported as "
                        "skipped, never compared)")
    p.add_argument("--mode", default=None, help="full (every element) or projections")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report "
                   "(the figure embedded); costs extra calls of the implementation")
    p.add_argument("--plot", metavar="FILE.png", help="also write the figure: per-step errors, "
                   "the state derivative per step, the V curve of the worst element")
    p.add_argument("--list-bugs", action="store_true",
                   help="list the zoo of deliberately wrong implementations and exit")
    p.add_argument("--bug", metavar="NAME",
                   help="check one zoo implementation (with its demonstration options "
                        "unless given on the command line), as a demonstration")
    return p


def cell_options():
    """{name: CellOption} of every cell's options (each a flag of its own)."""
    return {o.name: o for n in cell_names() for o in cell(n).options}


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to stdout (Python or C level) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = old
        os.dup2(saved, 1)
        os.close(saved)


def _list_bugs():
    from . import zoo
    width = max(len(b.name) for b in zoo.list_bugs())
    for bug in zoo.list_bugs():
        print(f"{bug.name.ljust(width)}  {bug.doc}")
    return ExitCode.OK


class _Progress:
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


def _run(args, given):
    options = {name: getattr(args, name) for name in OPTIONS}
    impl = None
    if args.bug is not None:
        from . import zoo
        if args.impl is not None:
            raise _ArgumentError("--bug and --impl: choose one implementation to check")
        if args.bug not in zoo.BUGS:
            raise UsageError("bug", args.bug, "expected one of the names --list-bugs prints")
        bug = zoo.BUGS[args.bug]
        impl = bug.make()
        demo = {k: v for k, v in bug.config.items() if k not in given}
        options.update(demo)
        if options["interval"] is None:
            options["interval"] = 3
    if options["interval"] is None:
        raise _ArgumentError("--interval is required: an integer >= 1 (try --interval 3)")
    limits, extra = {}, {}
    if args.impl is not None:
        impl = args.impl
        limits = _limits(args)
        if not args.in_process:
            from .isolation import start_fork_server
            start_fork_server()          # loads NumPy while this process loads JAX
    elif any(v is not None for v in (args.timeout, args.time_budget, args.memory_limit)):
        raise _ArgumentError("--timeout, --time-budget and --memory-limit apply to --impl")
    if args.adapter is not None:
        if args.impl is None:
            raise _ArgumentError("--adapter needs --impl naming the module to check")
        from .adapters import read_declaration, sizes, supported
        decl = extra["adapter"] = read_declaration(args.adapter)
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
    progress = None
    if not args.json and sys.stderr.isatty():
        progress = _Progress(sys.stderr)
    pictures = _pictures(args)
    from .check import check          # imports the oracles: only when a check runs
    from .exe_cache import cli_cache
    from .oracle_fd import keep_freed_memory
    keep_freed_memory()              # this process's malloc (never set on import gradcheck)
    try:
        with cli_cache():                # the compiled oracle, kept for the next process
            report = check(impl, progress=progress, trace=bool(pictures), **limits, **options,
                           **extra)
        _write_pictures(report, pictures)
        return report
    finally:
        if progress is not None:
            progress.close()


def _limits(args):
    """check()'s keyword arguments for how --impl runs, validated: UsageError names a bad one."""
    from .isolation import DEFAULT_TIMEOUT, parse_size
    if args.in_process:
        if args.require_isolation:
            raise _ArgumentError("--require-isolation and --in-process: choose one")
        return {"in_process": True}
    out = {"require_isolation": True} if args.require_isolation else {}
    for name in ("timeout", "time_budget"):
        text = getattr(args, name)
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > 0 and value != float("inf")):
            raise UsageError(name, text, "expected a number of seconds > 0")
        out[name] = value
    out.setdefault("timeout", DEFAULT_TIMEOUT)
    if args.memory_limit is not None:
        out["memory_limit"] = parse_size(args.memory_limit)
    return out


def _show_output(report):
    """What the implementation printed, on stderr (never in the --json document)."""
    text = report.format_output()
    if text:
        print(text, file=sys.stderr)


def _pictures(args):
    """{"html"/"plot": path} asked for, checked before the check runs (UsageError)."""
    import importlib.util
    asked = {k: getattr(args, k) for k in ("html", "plot") if getattr(args, k)}
    for option, path in asked.items():
        folder = os.path.dirname(os.path.abspath(path))
        if option == "plot" and not path.lower().endswith(".png"):
            raise UsageError(option, path, "expected a file name ending in .png")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(option, path, f"expected a file in a writable folder; "
                             f"{folder} is not one")
    if asked and importlib.util.find_spec("matplotlib") is None:
        raise UsageError(next(iter(asked)), asked[next(iter(asked))],
                         "the figure needs matplotlib: pip install 'gradcheck[plot]'")
    return asked


def _write_pictures(report, pictures):
    if not pictures:
        return
    from .figure import figure_png
    png = figure_png(report)
    if "plot" in pictures:
        with open(pictures["plot"], "wb") as f:
            f.write(png)
    if "html" in pictures:
        from .html import write_html
        write_html(report, pictures["html"], png)


def _given(argv):
    """The option names spelled out on the command line."""
    argv = sys.argv[1:] if argv is None else argv
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}


# `gradcheck NAME ...`: a subcommand is a module with main(argv) -> exit code, imported
# only when named (the plain `gradcheck --interval 3` is the check itself).
SUBCOMMANDS = {
    "regression": "gradcheck.regression",
    "layer": "gradcheck.layer_check",
    "tour": "gradcheck.tour",
    "grade": "gradcheck.grade",
}


def _interrupted(signum, frame):
    """Ctrl-C as the command: kill any worker, say so, exit 130 at once. (Raising
    KeyboardInterrupt instead can unwind through JAX's C++ while it initialises, which
    aborts or crashes the process.)"""
    from . import isolation
    isolation.kill_all()
    os.write(2, b"gradcheck: interrupted\n")
    os._exit(ExitCode.INTERRUPTED)


def _exit_on_ctrl_c():
    import signal
    if _is_main_thread():
        signal.signal(signal.SIGINT, _interrupted)


def _is_main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def main(argv=None):
    """Run the command line; return the exit code (ExitCode)."""
    if argv is None:
        _exit_on_ctrl_c()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except SystemExit as exc:          # --help
        return exc.code
    if args.list_bugs:
        return _list_bugs()
    given = _given(argv)
    try:
        if args.json:
            with _stdout_to_stderr():
                report = _run(args, given)
                _show_output(report)
            print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        else:
            report = _run(args, given)
            _show_output(report)
            print(report.format_table())
    except KeyboardInterrupt:          # the worker, if any, is already killed (check's finally)
        print("gradcheck: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except _ArgumentError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UsageError as exc:
        print(f"gradcheck: error: {exc.cli_message()}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:            # `gradcheck ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    return ExitCode.OK if report.passed else ExitCode.FAILED
