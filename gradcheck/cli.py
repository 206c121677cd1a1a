"""The command line: ``gradcheck --interval 3`` (see ``gradcheck --help``)."""
import argparse
import contextlib
import json
import os
import sys

from .check import check
from .errors import ExitCode, UsageError
from .untrusted import load_impl

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


def build_parser():
    p = _Parser(prog="gradcheck", description=(
        "Check a hand-written BPTT (the reference, or yours with --impl) against JAX "
        "autodiff and central finite differences, element by element."),
        epilog="Exit codes: 0 everything agrees; 1 a verdict against the implementation; "
               "2 bad usage.")
    p.add_argument("--interval", type=_int, metavar="K", help="BPTT interval: steps per window")
    p.add_argument("--seq-len", type=_int, metavar="T",
                   help="sequence length, cut into windows of K (default K)")
    p.add_argument("--batch", type=_int, default=128, metavar="B")
    p.add_argument("--input-size", type=_int, default=10, metavar="I")
    p.add_argument("--hidden-size", type=_int, default=20, metavar="H")
    p.add_argument("--state-size", type=_int, default=5, metavar="R")
    p.add_argument("--output-size", type=_int, default=100, metavar="O")
    p.add_argument("--loss", default="l2", help="l2, ce or bce (default l2)")
    p.add_argument("--activations", default="tanh,tanh,identity", metavar="F1,F2,F3",
                   help="each of tanh, sigmoid, relu, identity (default tanh,tanh,identity)")
    p.add_argument("--reduction", default="mean", help="mean or sum (default mean)")
    p.add_argument("--dtype", default="float64", help="float64 or float32, of the "
                   "implementation under test (default float64)")
    p.add_argument("--seed", type=_int, default=0, metavar="N", help="every random draw")
    p.add_argument("--impl", metavar="FILE.py:FUNC|MODULE:FUNC",
                   help="check this implementation instead of the reference")
    p.add_argument("--mode", default=None, help="full (every element) or projections")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return p


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to stdout (Python or C level) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield os.fdopen(os.dup(saved), "w")
    finally:
        sys.stdout.flush()
        sys.stdout = old
        os.dup2(saved, 1)
        os.close(saved)


def _run(args):
    if args.interval is None:
        raise _ArgumentError("--interval is required: an integer >= 1 (try --interval 3)")
    impl = load_impl(args.impl) if args.impl is not None else None
    return check(impl, interval=args.interval, seq_len=args.seq_len, batch=args.batch,
                 input_size=args.input_size, hidden_size=args.hidden_size,
                 state_size=args.state_size, output_size=args.output_size, loss=args.loss,
                 activations=args.activations, reduction=args.reduction, dtype=args.dtype,
                 seed=args.seed, mode=args.mode)


def main(argv=None):
    """Run the command line; return the exit code (ExitCode)."""
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except SystemExit as exc:          # --help
        return exc.code
    try:
        if args.json:
            with _stdout_to_stderr() as real_stdout:
                report = _run(args)
                with real_stdout:
                    json.dump(report.to_dict(), real_stdout, indent=2, allow_nan=False)
                    real_stdout.write("\n")
        else:
            report = _run(args)
            print(report.format_table())
    except _ArgumentError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UsageError as exc:
        print(f"gradcheck: error: {exc.cli_message()}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:            # `gradcheck ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    return ExitCode.OK if report.passed else ExitCode.FAILED
