"""The command line of ``gradcheck grade``."""
import concurrent.futures
import os
import secrets

from ..cli.skeleton import BadUsage, Outcome, Parser, flag, integer, stdout_to_stderr
from ..cli.skeleton import run as run_command
from ..config import OPTIONS
from ..errors import ExitCode, UsageError
from ..model import (ACTIVATIONS, DEFAULT_ACTIVATIONS, DEFAULT_DTYPE, DEFAULT_LOSS,
                     DEFAULT_REDUCTION, SIZES)
from .battery import (DEFAULT_BATTERY, DEFAULT_FEEDBACK, FEEDBACK_LEVELS, load_battery,
                      make_test)
from .formats import FORMATS, render
from .bundle import PLATFORMS
from .honesty import FORBIDDEN
from .runner import TIMEOUT_FACTOR, TIMEOUT_FLOOR

__all__ = ["main", "build_parser", "run"]

# Beside --output FILE while grade runs: FILE + this, the results of the submissions
# graded so far, rewritten whole after each one and removed once FILE is written.
PARTIAL_SUFFIX = ".partial"
DEFAULT_MEMORY = "1G"           # of a worker (isolation's RLIMIT_DATA): Python + NumPy ~100M


def build_parser():
    p = Parser(prog="gradcheck grade", description=(
        "Grade hand-written BPTT submissions against JAX autodiff and finite differences. "
        "A SUBMISSION is FILE.py[:FUNC] (FUNC defaults to loss_and_grads) or a folder "
        "holding the student's file (the only .py file in it, or the only one defining "
        "FUNC; --entry NAME names it)."),
        epilog="Exit codes: 0 every submission was graded (scores in the output); 2 bad usage.")
    p.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                   help="required (but with --bundle): FILE.py[:FUNC] or a folder, one or more")
    p.add_argument("--battery", metavar="FILE.toml", help="the tests, from a TOML file "
                   "(default: the built-in battery; see the README)")
    g = p.add_argument_group("one configuration instead of the battery (the check's flags)")
    g.add_argument("--interval", type=integer, metavar="K",
                   help="BPTT interval: steps per window (required with these flags)")
    g.add_argument("--seq-len", type=integer, metavar="T",
                   help="sequence length, cut into windows of K (default K)")
    for size in SIZES:
        g.add_argument(flag(size.option), type=integer, metavar=size.letter,
                       help=f"{size.meaning} (default {size.default})")
    g.add_argument("--loss", help=f"default {DEFAULT_LOSS}")
    g.add_argument("--activations", metavar="F1,F2,F3",
                   help=f"each of {', '.join(ACTIVATIONS)} (default "
                        f"{','.join(DEFAULT_ACTIVATIONS)})")
    g.add_argument("--reduction", help=f"default {DEFAULT_REDUCTION}")
    g.add_argument("--dtype", help=f"default {DEFAULT_DTYPE}")
    g.add_argument("--mode", help="full or projections")
    p.add_argument("--seed", type=integer, metavar="N", help="the data's seed (default: a fresh "
                   "random one, recorded in the output, so not the seed students saw)")
    p.add_argument("--jobs", type=integer, metavar="N", default=None,
                   help="submissions graded at once (default: the number of cores)")
    p.add_argument("--timeout", kind="seconds", default=None, metavar="SECONDS",
                   help=f"the most one call of a submission may take, in the time it runs "
                        f"or sleeps (not the time it waits for a CPU); loading it too "
                        f"(default: {TIMEOUT_FACTOR:g} times the reference's own time for "
                        f"the test on this machine, at least {TIMEOUT_FLOOR:g})")
    p.add_argument("--memory-limit", kind="size", default=DEFAULT_MEMORY, metavar="SIZE",
                   help=f"memory of each submission's process, e.g. 768M, 4G "
                        f"(default {DEFAULT_MEMORY})")
    p.add_argument("--format", default="table", help=f"one of {', '.join(FORMATS)} "
                   "(default table)")
    p.add_argument("--output", metavar="FILE", help="write there instead of stdout (while "
                   "it runs, FILE.partial holds the submissions graded so far)")
    p.add_argument("--entry", metavar="NAME", help="the file to grade inside a folder")
    p.add_argument("--require-isolation", action="store_true",
                   help="refuse to grade (exit 2) where a worker would run as your own "
                        "user without namespaces (see README, Isolation)")
    p.add_argument("--bundle", nargs=2, metavar=("PLATFORM", "DIR"),
                   help=f"instead of grading: write a ready autograder for PLATFORM "
                        f"({', '.join(PLATFORMS)}) into DIR, grading each submission with "
                        f"this battery and these flags (and a seed drawn now, unless --seed)")
    p.add_argument("--feedback", default=DEFAULT_FEEDBACK, metavar="LEVEL",
                   help=f"what a student's text of a test says: full (the diagnosis), hint "
                        f"(the arrays, steps and kind of mistake, no formula) or score (pass "
                        f"or fail); a battery test's own 'feedback' wins (default "
                        f"{DEFAULT_FEEDBACK}); the JSON, CSV and summary keep everything")
    p.add_argument("--allow-import", action="append", default=[], metavar="NAME",
                   help=f"let submissions import NAME (forbidden: {', '.join(FORBIDDEN[:-1])})")
    return p


def _battery(args):
    given = {o: getattr(args, o, None) for o in OPTIONS
             if o != "seed" and getattr(args, o, None) is not None}
    if args.battery is not None and given:
        raise BadUsage(f"--battery and {flag(next(iter(given)))}: give the "
                             f"configuration in the battery file or on the command line")
    if args.battery is not None:
        return load_battery(args.battery)
    if not given:
        return DEFAULT_BATTERY
    if "interval" not in given:
        raise BadUsage("--interval is required with the configuration flags: an "
                             "integer >= 1 (or leave them all out for the default battery)")
    if "activations" in given:
        given["activations"] = tuple(given["activations"].split(","))
    return (make_test("custom", given, about="the configuration given on the command line"),)


def _check(args):
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("jobs", args.jobs, "expected an integer >= 1")
    if args.feedback not in FEEDBACK_LEVELS:
        raise UsageError("feedback", args.feedback,
                         f"expected one of {', '.join(FEEDBACK_LEVELS)}")
    if args.format not in FORMATS:
        raise UsageError("format", args.format, f"expected one of {', '.join(FORMATS)}")
    unknown = [n for n in args.allow_import if n not in FORBIDDEN]
    if unknown:
        raise UsageError("allow_import", unknown[0], f"expected one of {', '.join(FORBIDDEN)}")
    if args.output is not None:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError("output", args.output, "cannot write there (no such folder, "
                                                    "or not writable)")
    if args.seed is not None and args.seed < 0:
        raise UsageError("seed", args.seed, "expected an integer >= 0")


def _cores():
    """The cores this process may run on (a container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(args, memory=None, progress=None):
    """Grade every submission: (SubmissionGrades in the order given, battery, seed).
    ``memory``: bytes per worker (default: --memory-limit, as the parser read it);
    ``progress(grades, battery, seed)``: called with those graded so far, in the order
    given, each time one more is."""
    from ..isolation import start_fork_server
    start_fork_server()              # it loads NumPy while this process computes the oracles
    from .mark import failed_to_grade, grade_submission
    from .prepare import prepare
    from .runner import Limits
    from .submission import resolve
    battery = _battery(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    allowed = set(args.allow_import)
    if "gradcheck" in allowed:           # the checker loads its reference (zoo, oracles)
        allowed.add("reference")
    if "reference" in allowed:           # ... under this private name
        allowed.add("_gradcheck_reference")
    forbid = tuple(n for n in FORBIDDEN if n not in allowed)
    subs = [resolve(s, args.entry) for s in args.submissions]
    prepared = [prepare(t, seed + i) for i, t in enumerate(battery)]
    limits = Limits(args.timeout, args.memory_limit if memory is None else memory,
                    args.require_isolation)
    jobs = args.jobs or _cores()

    def one(sub):
        try:
            return grade_submission(sub, prepared, limits, forbid, args.feedback)
        except UsageError:           # --require-isolation on a platform without it
            raise
        except Exception as exc:     # the grader's own failure: the others still get graded
            return failed_to_grade(sub, prepared, f"the grader could not grade it "
                                   f"({type(exc).__name__}: {exc}); please report this",
                                   feedback=args.feedback)

    grades = [None] * len(subs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(one, sub): i for i, sub in enumerate(subs)}
        for done in concurrent.futures.as_completed(running):
            grades[running[done]] = done.result()
            if progress is not None:
                progress([g for g in grades if g is not None], battery, seed)
    from ..isolation import sweep
    sweep()             # every worker has ended, and all they started, before the results
    return grades, battery, seed


def _bundle(args):
    """--bundle PLATFORM DIR: the autograder, written; an Outcome listing its files."""
    platform, folder = args.bundle
    if platform not in PLATFORMS:
        raise UsageError("bundle", platform, f"expected one of {', '.join(PLATFORMS)}")
    if args.submissions:
        raise BadUsage(f"--bundle writes an autograder that grades one submission on the "
                       f"platform: give no SUBMISSION with it (got {args.submissions[0]})")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError("bundle", folder, "is a file; expected a folder (made if missing)")
    from ..isolation import format_size
    from .bundle import write_bundle
    battery = _battery(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    flags = ["--seed", str(seed), "--feedback", args.feedback,
             "--memory-limit", format_size(args.memory_limit)]
    if args.timeout is not None:
        flags += ["--timeout", f"{args.timeout:g}"]
    for name in args.allow_import:
        flags += ["--allow-import", name]
    if args.entry is not None:
        flags += ["--entry", args.entry]
    if args.require_isolation:
        flags += ["--require-isolation"]
    try:
        written = write_bundle(platform, folder, battery, flags)
    except OSError as exc:
        raise UsageError("bundle", folder, f"cannot write there ({exc.strerror})") from None
    shown = [w for w in written if "vendor" not in w.split(os.sep)]
    return Outcome(ExitCode.OK, text=f"gradcheck grade: a {platform} autograder in {folder} "
                                     f"(seed {seed}): " + ", ".join(shown) + ", vendor/")


def body(args):
    if args.bundle is not None:
        _check(args)
        return _bundle(args)
    if not args.submissions:
        raise BadUsage("the following arguments are required: SUBMISSION (or --bundle)")
    _check(args)
    from ..atomic import write_atomic
    partial = None if args.output is None else args.output + PARTIAL_SUFFIX

    def progress(grades, battery, seed):
        # the results so far, whole, beside the output: what a run that is killed (as a
        # worker running as the same user can) leaves of its class
        try:
            write_atomic(partial, render(args.format, grades, battery, seed))
        except OSError:
            pass
    with stdout_to_stderr():         # stdout is the output's; what else prints goes to stderr
        grades, battery, seed = run(args, progress=None if partial is None else progress)
    text = render(args.format, grades, battery, seed)
    if args.output is None:
        return Outcome(ExitCode.OK, text=text.rstrip("\n"))
    try:
        write_atomic(args.output, text)
    except OSError as exc:
        raise UsageError("output", args.output, f"cannot write it ({exc.strerror})") from None
    try:
        os.unlink(partial)
    except OSError:
        pass
    return Outcome(ExitCode.OK)


def main(argv=None):
    return run_command("gradcheck grade", build_parser, body, argv)
