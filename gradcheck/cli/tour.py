"""``gradcheck tour``: the article's four questions answered by running the reference
(``gradcheck.tour``)."""
import os

from .. import tour
from ..errors import ExitCode, UsageError
from .skeleton import Outcome, Parser, needs_matplotlib, run, wrote

__all__ = ["build_parser", "main"]


def build_parser():
    p = Parser(prog="gradcheck tour", description=(
        "Answer the article's four questions by running the reference."),
        epilog="Exit codes: 0 the tour ran; 2 bad usage.")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw cache bytes against the interval (needs matplotlib)")
    return p


def body(args):
    if args.plot is not None:           # checked before the tour runs, not after
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not args.plot.lower().endswith(".png") or not os.path.isdir(folder):
            raise UsageError("plot", args.plot, "expected a FILE.png in an existing folder")
        needs_matplotlib("plot", args.plot)
    m = tour.measure()
    if args.plot is not None:
        tour.write_figure(m, args.plot)
        wrote("the figure", args.plot)
    return Outcome(ExitCode.OK, text=tour.format_tour(m))


def main(argv=None):
    return run("gradcheck tour", build_parser, body, argv)
