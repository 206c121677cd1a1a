"""The one command-line skeleton: every entry point (``gradcheck``, ``gradcheck layer``,
``regression``, ``tour``, ``grade``) builds its parser here and runs through ``run``.

An entry point declares its options on a ``Parser`` and writes a body that calls its
library function and returns an ``Outcome``; this module does the rest the same way for
all of them: bad usage is one line on stderr naming the real option and exit 2 (never a
SystemExit out of ``main``, never a traceback), ``--help`` exits 0, ``--json`` keeps
stdout for one strict JSON document (whatever else is printed meanwhile goes to stderr),
Ctrl-C is one line and exit 130, a reader that leaves (``| head``) ends quietly, and
seconds and size options are read and checked by one rule each.
"""
import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import sys

from ..errors import ExitCode, UsageError

__all__ = ["BadUsage", "Outcome", "Parser", "PATH_HELP", "integer", "flag", "needs_matplotlib",
           "stdout_to_stderr", "wrote", "adopt_orphans", "run"]

EXIT_CODES = ("Exit codes: 0 everything agrees; 1 a verdict against the implementation; "
              "2 bad usage; 130 interrupted (Ctrl-C).")


class BadUsage(Exception):
    """Bad usage found by the command line itself: the message names the option."""


@dataclasses.dataclass
class Outcome:
    """What a command's body hands back: its exit code, the text for stdout, and the
    document printed instead of the text under ``--json``."""
    code: int
    text: str = None
    document: dict = None


def flag(option):
    """``hidden_size`` -> ``--hidden-size``."""
    return "--" + option.replace("_", "-")


def integer(text):
    """An argparse type: an integer, or the one-line reason."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _seconds(option, text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise UsageError(option, text, "expected a number of seconds > 0")
    return value


def _size(option, text):
    from ..isolation import parse_size          # UsageError names memory_limit
    try:
        return parse_size(text)
    except UsageError as exc:
        raise UsageError(option, text, exc.allowed) from None


def _folder(option, text):
    """An existing folder, made absolute (the worker reads it from elsewhere)."""
    if not os.path.exists(text):
        raise UsageError(option, text, "no such folder")
    if not os.path.isdir(text):
        raise UsageError(option, text, "not a folder; expected the package's root folder")
    return os.path.abspath(text)


_READERS = {"seconds": _seconds, "size": _size, "folder": _folder}
PATH_HELP = ("a package's root folder, put first on the path of the code under test (a "
             "private copy of its .py files, in the worker), so that code importing its own "
             "package (from common.layers import ...) loads")


class Parser(argparse.ArgumentParser):
    """argparse with the skeleton's conventions: errors raise BadUsage (one line), the
    epilog states the exit codes, and ``add_argument(..., kind="seconds"|"size"|"folder")``
    reads a number of seconds > 0, a memory size (``512M``, ``4G``) or an existing folder
    after parsing, so that a bad value is reported as ``--timeout -1: expected a number of
    seconds > 0`` by every command alike. A default that is not a string is taken as already read."""

    def __init__(self, prog, description, epilog=EXIT_CODES, **kwargs):
        self.kinds = {}
        super().__init__(prog=prog, description=description, epilog=epilog, **kwargs)

    def add_argument(self, *names, kind=None, **kwargs):
        action = super().add_argument(*names, **kwargs)
        if kind is not None:
            if kind not in _READERS:
                raise ValueError(f"kind={kind!r}: expected one of {', '.join(_READERS)}")
            self.kinds[action.dest] = kind
        if not action.help and action.help is not argparse.SUPPRESS:
            raise ValueError(f"{names[0]}: every option has help")
        return action

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        plain = group.add_argument

        def add(*names, kind=None, **kw):
            action = plain(*names, **kw)
            if kind is not None:
                self.kinds[action.dest] = kind
            if not action.help:
                raise ValueError(f"{names[0]}: every option has help")
            return action
        group.add_argument = add
        return group

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        for dest, kind in self.kinds.items():
            value = getattr(ns, dest, None)
            if isinstance(value, str):
                setattr(ns, dest, _READERS[kind](dest, value))
        return ns

    def error(self, message):
        # argparse's "argument --x: ..." names the option already; "argument" is noise.
        if message.startswith("argument "):
            message = message[len("argument "):]
        raise BadUsage(f"{message} (see {self.prog} --help)")


def needs_matplotlib(option, value):
    """Check up front that an option that draws a figure can (UsageError otherwise)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(option, value, "the figure needs matplotlib: "
                                        "pip install 'gradcheck[plot]'")


def wrote(what, path):
    """Say where a file went (stderr: stdout may be a --json document)."""
    print(f"wrote {what}: {os.path.abspath(path)}", file=sys.stderr)


@contextlib.contextmanager
def stdout_to_stderr():
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


def _interrupted(signum, frame):
    """Ctrl-C as the command: kill any worker, say so, exit 130 at once. (Raising
    KeyboardInterrupt instead can unwind through JAX's C++ while it initialises, which
    aborts or crashes the process.)"""
    from .. import isolation
    isolation.kill_all()
    os.write(2, b"gradcheck: interrupted\n")
    os._exit(ExitCode.INTERRUPTED)


def exit_on_ctrl_c():
    """In a command's own process (not when ``main`` is called from Python): Ctrl-C ends
    it with one line and exit 130."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted)


def adopt_orphans():
    """In a command's own process: it adopts the orphans among its descendants
    (PR_SET_CHILD_SUBREAPER), so that a process the code under test left behind (a
    double fork, setsid) is still below it when isolation.sweep ends everything before
    the outputs are written."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):                    # pragma: no cover - not Linux
        pass


def _file_limit():
    """This process's soft limit on open files (None where there is none to read)."""
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):           # pragma: no cover - not POSIX
        return None


def _lowered_file_limit(before):
    """The one line to print when this process's open-file limit went below ``before``
    while it ran (prlimit by code under test running as the same user) and something
    failed for want of a descriptor; None when it was not lowered."""
    now = _file_limit()
    if before is None or now is None or now >= before:
        return None
    return (f"the checker's open-file limit was lowered from {before} to {now} while it ran "
            f"(the code under test runs as the same user and can do that); no verdict can "
            f"be trusted from this run")


def _usage(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run(prog, build_parser, body, argv=None):
    """Parse ``argv`` (the process's own arguments when None) with ``build_parser()``,
    call ``body(args)`` (an Outcome) and print it; return the exit code."""
    if argv is None:
        exit_on_ctrl_c()
        adopt_orphans()
        argv = sys.argv[1:]
    try:
        args = build_parser().parse_args(list(argv))
    except BadUsage as exc:
        return _usage(prog, exc)
    except UsageError as exc:
        return _usage(prog, exc.cli_message())
    except SystemExit as exc:          # --help: argparse printed it
        return exc.code or ExitCode.OK
    as_json = bool(getattr(args, "json", False))
    limit = _file_limit()
    try:
        if as_json:
            with stdout_to_stderr():
                outcome = body(args)
            if outcome.document is not None:
                print(json.dumps(outcome.document, indent=2, allow_nan=False))
        else:
            outcome = body(args)
            if outcome.text is not None:
                print(outcome.text)
        sys.stdout.flush()
    except KeyboardInterrupt:          # a worker, if any, is already killed (check's finally)
        print("gradcheck: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BadUsage as exc:
        return _usage(prog, exc)
    except UsageError as exc:
        return _usage(prog, exc.cli_message())
    except BrokenPipeError:            # `gradcheck ... | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return ExitCode.OK
    except Exception:
        lowered = _lowered_file_limit(limit)
        if lowered is None:
            raise
        print(f"{prog}: error: {lowered}", file=sys.stderr)
        return ExitCode.FAILED
    return outcome.code
