"""The command line: ``gradcheck --interval 3`` checks a BPTT window; ``gradcheck NAME ...``
runs a subcommand. Every entry point is built on ``skeleton`` (the same parser
conventions, exit codes, ``--json``, Ctrl-C and seconds/size options); each module here
only declares its options and calls its library function."""
import importlib
import sys

from . import check as _check_command
from .skeleton import run

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# `gradcheck NAME ...`: a subcommand is a module with main(argv) -> exit code, imported
# only when named (the plain `gradcheck --interval 3` is the check itself).
SUBCOMMANDS = {
    "layer": "gradcheck.cli.layer",
    "regression": "gradcheck.cli.regression",
    "tour": "gradcheck.cli.tour",
    "grade": "gradcheck.grade.cli",
}

build_parser = _check_command.build_parser


def main(argv=None):
    """Run the command line; return the exit code (ExitCode)."""
    words = sys.argv[1:] if argv is None else list(argv)
    if words and words[0] in SUBCOMMANDS:
        if argv is None:
            from .skeleton import adopt_orphans, exit_on_ctrl_c
            exit_on_ctrl_c()
            adopt_orphans()
        return importlib.import_module(SUBCOMMANDS[words[0]]).main(words[1:])
    return run("gradcheck", build_parser,
               lambda args: _check_command.body(args, words), argv)
