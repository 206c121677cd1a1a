"""Tests of gradcheck.cli.skeleton: every entry point handles bad usage, --help, seconds
and size options the same way, and the code keeps the command line apart."""
import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

from gradcheck.cli import SUBCOMMANDS, main
from gradcheck.cli.skeleton import BadUsage, Parser
from gradcheck.errors import ExitCode

PACKAGE = Path(__file__).resolve().parents[1] / "gradcheck"
ENTRY_POINTS = {"gradcheck": [], **{name: [name] for name in SUBCOMMANDS}}
REQUIRED = {"layer": ["rnn"], "grade": ["x.py"]}      # their positional arguments


def _run(argv):
    """(exit code, stdout, stderr) of main(argv); a SystemExit escaping main fails here."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("prefix", ENTRY_POINTS.values(), ids=list(ENTRY_POINTS))
def test_an_unknown_flag_is_one_line_naming_it_and_exit_2(prefix):
    code, out, err = _run([*prefix, *REQUIRED.get("".join(prefix), []), "--bogus"])
    assert code == ExitCode.USAGE
    assert out == ""
    prog = " ".join(["gradcheck", *prefix])
    assert err == f"{prog}: error: unrecognized arguments: --bogus (see {prog} --help)\n"


@pytest.mark.parametrize("prefix", ENTRY_POINTS.values(), ids=list(ENTRY_POINTS))
def test_help_exits_0_and_states_the_exit_codes(prefix):
    code, out, _ = _run([*prefix, "--help"])
    assert code == ExitCode.OK
    assert "Exit codes: 0" in out


def _parsers():
    import importlib
    yield "gradcheck", importlib.import_module("gradcheck.cli").build_parser()
    for name, module in SUBCOMMANDS.items():
        yield name, importlib.import_module(module).build_parser()


@pytest.mark.parametrize(("name", "parser"), list(_parsers()), ids=list(ENTRY_POINTS))
def test_every_option_has_help(name, parser):
    assert isinstance(parser, Parser)
    for action in parser._actions:          # argparse keeps no public list
        assert action.help, f"gradcheck {name}: {action.option_strings or action.dest}"


def test_an_option_without_help_is_refused_when_declared():
    with pytest.raises(ValueError, match="--quiet: every option has help"):
        Parser(prog="p", description="d").add_argument("--quiet", action="store_true")


def test_the_main_usage_lists_the_subcommands_and_the_required_interval():
    code, out, _ = _run(["--help"])
    usage = out.split("\n\n")[0]
    assert "gradcheck --interval K [options]" in usage
    assert "[--interval" not in usage
    for name in SUBCOMMANDS:
        assert name in usage


def test_the_layer_is_named_as_the_positional_it_is(capsys):
    assert main(["layer"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == ("gradcheck layer: error: the following arguments are required: LAYER "
                   "(see gradcheck layer --help)\n")


SECONDS_AND_SIZES = [
    pytest.param(["--timeout", "-1"], "--timeout -1: expected a number of seconds > 0",
                 id="timeout"),
    pytest.param(["--timeout", "nan"], "--timeout nan: expected a number of seconds > 0",
                 id="timeout-nan"),
    pytest.param(["--memory-limit", "4X"], "--memory-limit 4X: expected a size such as 512M",
                 id="memory-limit"),
]


@pytest.mark.parametrize(("flags", "message"), SECONDS_AND_SIZES)
@pytest.mark.parametrize("prefix", [["--interval", "3", "--impl", "m.py"], ["grade", "m.py"]],
                         ids=["gradcheck", "grade"])
def test_seconds_and_sizes_are_read_by_one_rule(prefix, flags, message):
    code, _, err = _run([*prefix, *flags])
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and re.search(f": error: {re.escape(message)}", err), err


def test_a_kind_is_read_after_parsing_and_defaults_that_are_not_text_are_kept():
    p = Parser(prog="p", description="d")
    p.add_argument("--timeout", kind="seconds", default=10.0, help="h")
    p.add_argument("--memory-limit", kind="size", default="1G", help="h")
    args = p.parse_args([])
    assert (args.timeout, args.memory_limit) == (10.0, 1024 ** 3)
    assert p.parse_args(["--timeout", "2.5"]).timeout == 2.5


def _private_imports():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = (node.module or "").rsplit(".", 1)[-1]
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.add((path.relative_to(PACKAGE).as_posix(), module, alias.name))
    return found


def test_no_module_imports_another_modules_private_name():
    assert _private_imports() == set()


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "reference").rglob("*.py")])


def _unused_imports(path):
    """The names ``path`` imports (at any level; not those on a ``noqa`` line, kept on
    purpose) that it never reads nor lists in ``__all__``: pyflakes' rule, without it."""
    text = path.read_text(encoding="utf-8")
    tree, lines = ast.parse(text), text.splitlines()
    imported = {(a.asname or a.name.split(".")[0]) for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))
                and getattr(n, "module", None) != "__future__"
                and "noqa" not in lines[n.lineno - 1] for a in n.names} - {"*"}
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    listed = {c.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and any(getattr(t, "id", None) == "__all__" for t in n.targets)
              for c in ast.walk(n.value) if isinstance(c, ast.Constant)}
    return imported - read - listed


@pytest.mark.parametrize("path", SOURCES,
                         ids=[p.relative_to(PACKAGE.parent).as_posix() for p in SOURCES])
def test_no_module_imports_a_name_it_never_uses(path):
    assert _unused_imports(path) == set()


def test_library_modules_do_not_parse_arguments():
    """argparse only in the command-line modules (cli/, grade/cli.py) and the benches."""
    allowed = {"grade/cli.py", "bench.py", "bench_isolation.py", "grade/bench.py"}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/") or rel in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "argparse" not in imported, rel
        assert not any(isinstance(n, ast.FunctionDef) and n.name == "build_parser"
                       for n in ast.walk(tree)), rel


def test_parser_errors_are_bad_usage_not_systemexit():
    with pytest.raises(BadUsage, match="^unrecognized arguments: --nope"):
        Parser(prog="p", description="d").parse_args(["--nope"])
