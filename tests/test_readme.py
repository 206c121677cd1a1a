"""The README's Python examples run as written, in a fresh process, on a correct
implementation: the reference, bound to the one name the README leaves to the user,
``my_loss_and_grads``.

Every ```python block runs, unless the line before its fence is ``<!-- not run -->``
(for a fragment that cannot run on its own; say why next to it). Each block becomes a
test file in a temporary folder and one pytest process runs them all (so the blocks
share JAX's compiles): a block that defines ``test_*`` functions is such a file as it
stands, and every test in it must pass; any other block is executed by one test, and a
``report`` it leaves must have passed, and a block that calls ``gradcheck.check`` must
have called it. The only change to a block's world is the number of examples of
``gradcheck.strategies.SETTINGS`` (fewer, derandomized: this test's speed; every other
setting is the shipped one).
"""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest


README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARK = "<!-- not run -->"
# Enough to draw configurations that need a few JAX compiles (which the shipped
# SETTINGS must allow), few enough to keep this test quick.
EXAMPLES = 4


def _blocks():
    """(line number of the fence, code) of every ```python block meant to run."""
    lines = README.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            while lines[i].strip() != "```":
                i += 1
            if not (start > 0 and lines[start - 1].strip() == SKIP_MARK):
                blocks.append((start + 1, "\n".join(lines[start + 1:i]) + "\n"))
        i += 1
    return blocks


# Fewer hypothesis examples, every other setting as shipped (conftest of the temporary folder).
_CONFTEST = """
from hypothesis import settings

import gradcheck.strategies as strategies
strategies.SETTINGS = settings(strategies.SETTINGS, max_examples={examples},
                               derandomize=True, database=None)
"""

_BIND = ("from gradcheck._reference import reference as _reference\n"
         "my_loss_and_grads = _reference.loss_and_grads\n")

# A block that is not a test file: executed by one test, which judges what it left.
_SCRIPT = """
import gradcheck

CODE = {code!r}


def test_block_runs(monkeypatch):
    calls = []
    check = gradcheck.check
    monkeypatch.setattr(gradcheck, "check", lambda *a, **k: calls.append(1) or check(*a, **k))
    namespace = {{"__name__": "readme_example", "my_loss_and_grads": my_loss_and_grads}}
    exec(compile(CODE, {where!r}, "exec"), namespace)
    if {calls_check!r}:
        assert calls, "the block never called gradcheck.check"
    if "report" in namespace:
        assert namespace["report"].passed, namespace["report"].format_table()
"""


def _test_file(line, code):
    """The text of the test file that runs the block at ``line``."""
    if re.search(r"^def test_", code, re.MULTILINE):
        return _BIND + code
    return _BIND + _SCRIPT.format(code=code, where=f"README.md, block at line {line}",
                                  calls_check=bool(re.search(r"\bgradcheck\.check\(", code)))


# The user's own modules that README blocks import, each a correct implementation written
# in that style (tests/impls/styles), placed in the folder the blocks run from.
_USER_MODULES = {"my_cells.py": "cell.py"}


def test_readme_python_blocks_run_as_written(tmp_path):
    blocks = _blocks()
    (tmp_path / "conftest.py").write_text(_CONFTEST.format(examples=EXAMPLES))
    styles = pathlib.Path(__file__).resolve().parent / "impls" / "styles"
    for name, source in _USER_MODULES.items():
        shutil.copy(styles / source, tmp_path / name)
    for line, code in blocks:
        (tmp_path / f"test_readme_line{line}.py").write_text(_test_file(line, code))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "."], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "SKIPPED" not in out.stdout, out.stdout
    for line, _ in blocks:                            # every block ran at least one test
        assert f"PASSED test_readme_line{line}.py::" in out.stdout, (line, out.stdout)


def test_the_readme_has_the_hypothesis_example():
    """The block this file exists for is found (a renamed fence would silently skip it)."""
    assert any("@given(configs(" in code and "SETTINGS" in code for _, code in _blocks())


# ------------------------------------------------ the README's sample output is real

# Figures below this are rounding noise (an error ratio of 1e-8 on one machine is 4e-8 on
# another: BLAS and XLA sum in different orders); any two such figures match.
NOISE = 1e-6
# Figures above it are compared to the three significant digits they are printed with.
DIGITS_RTOL = 5e-3
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _samples():
    """(command, expected output) of every ``` block whose first line is ``$ gradcheck``."""
    text = README.read_text()
    return [(m.group(1), m.group(2)) for m in re.finditer(
        r"^```\n\$ (gradcheck[^\n]*)\n(.*?)\n```$", text, re.MULTILINE | re.DOTALL)]


def _same_figures(expected, actual):
    a, b = _NUMBER.findall(expected), _NUMBER.findall(actual)
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual) or len(a) != len(b):
        return False
    for x, y in zip(map(float, a), map(float, b)):
        if abs(x) < NOISE and abs(y) < NOISE:
            continue
        if abs(x - y) > DIGITS_RTOL * max(abs(x), abs(y)):
            return False
    return True


def test_the_readme_shows_samples():
    commands = [c for c, _ in _samples()]
    assert "gradcheck --interval 3" in commands and "gradcheck --bug no_dh_next" in commands


@pytest.mark.parametrize(("command", "expected"), _samples(), ids=[c for c, _ in _samples()])
def test_readme_sample_output_is_the_real_output(command, expected, capsys):
    from gradcheck.cli import main
    main(shlex.split(command)[1:])
    actual = capsys.readouterr().out.rstrip("\n")
    assert _same_figures(expected, actual), f"README:\n{expected}\n\nnow:\n{actual}"


@pytest.mark.parametrize(("expected", "actual", "same"), [
    pytest.param("error 7.6e-08 x", "error 3.1e-08 x", True, id="noise-matches-noise"),
    pytest.param("impl -0.879276, 2.44e+07x", "impl -0.879276, 2.45e+07x", True,
                 id="printed-digits"),
    pytest.param("impl -0.879276", "impl -0.979276", False, id="a-different-value"),
    pytest.param("error 7.6e-08 x", "error 7.6e-03 x", False, id="noise-vs-figure"),
    pytest.param("FAILED: 14 of 20", "FAILED: 14 of 20 (and more)", False, id="other-words"),
])
def test_sample_comparison_can_fail(expected, actual, same):
    assert _same_figures(expected, actual) is same


def test_the_readmes_links_resolve_in_a_clone():
    """Relative links name files of the repository (nothing outside the checkout)."""
    root = README.parent.resolve()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not re.match(r"^[a-z]+:", link)]
    assert local, "no relative link found: the pattern is wrong"
    for link in local:
        target = (root / link).resolve()
        assert target.exists() and root in target.parents, link
