"""The README's Python examples run as written, each in a fresh process, on a correct
implementation: the reference, bound to the one name the README leaves to the user,
``my_loss_and_grads``.

Every ```python block runs, unless the line before its fence is ``<!-- not run -->``
(for a fragment that cannot run on its own; say why next to it). What a block defines as
``test_*`` is called, as pytest would; a ``report`` it leaves must have passed; a block
that calls ``gradcheck.check`` must have called it at least once. The only change to a
block's world is the number of examples of ``gradcheck.strategies.SETTINGS`` (fewer,
derandomized: this test's speed; every other setting is the shipped one).
"""
import json
import os
import pathlib
import re
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


_DRIVER = """
import json, sys

from gradcheck._reference import reference

code, where, examples = sys.argv[1], sys.argv[2], int(sys.argv[3])
namespace = {"__name__": "readme_example", "my_loss_and_grads": reference.loss_and_grads}
calls = 0
if "gradcheck" in code:
    import gradcheck

    check = gradcheck.check

    def counting_check(*args, **kwargs):
        global calls
        calls += 1
        return check(*args, **kwargs)
    gradcheck.check = counting_check
if "SETTINGS" in code:
    from hypothesis import settings

    import gradcheck.strategies as strategies
    strategies.SETTINGS = settings(strategies.SETTINGS, max_examples=examples,
                                   derandomize=True, database=None)
exec(compile(code, where, "exec"), namespace)
tests = [name for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
for name in tests:
    namespace[name]()
report = namespace.get("report")
print(json.dumps({"tests": tests, "checks": calls,
                  "report_passed": None if report is None else bool(report.passed)}))
"""


@pytest.mark.parametrize("line, code", [pytest.param(line, code, id=f"line{line}")
                                        for line, code in _blocks()])
def test_readme_python_block_runs_as_written(line, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    out = subprocess.run([sys.executable, "-c", _DRIVER, code, f"README.md, block at line {line}",
                          str(EXAMPLES)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    if re.search(r"\bgradcheck\.check\(", code):
        assert seen["checks"] >= 1, seen
    if re.search(r"^report = ", code, re.MULTILINE):          # a module-level report
        assert seen["report_passed"] is True, seen


def test_the_readme_has_the_hypothesis_example():
    """The block this file exists for is found (a renamed fence would silently skip it)."""
    assert any("@given(configs(" in code and "SETTINGS" in code for _, code in _blocks())
