"""A user's own ``reference.py`` or ``reference/`` in the working folder never replaces the
project's reference: not for the command line, ``python -m gradcheck``, the API or pytest."""
import os
import subprocess
import sys
import textwrap

import pytest

# A user's module of the same name that would be noticed if gradcheck used it.
_HOSTILE = "raise RuntimeError('the user reference was imported')\n"
_SMALL = ["--interval", "2", "--batch", "2", "--input-size", "2", "--hidden-size", "2",
          "--state-size", "2", "--output-size", "2"]


@pytest.fixture(params=["module", "package"])
def user_folder(request, tmp_path):
    if request.param == "module":
        (tmp_path / "reference.py").write_text(_HOSTILE)
    else:
        (tmp_path / "reference").mkdir()
        (tmp_path / "reference" / "__init__.py").write_text(_HOSTILE)
    return tmp_path


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(cwd))         # the user's folder first on sys.path
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_python_m_gradcheck_uses_the_projects_reference(user_folder):
    done = _run([sys.executable, "-m", "gradcheck", *_SMALL], user_folder)
    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stdout


def test_api_uses_the_projects_reference(user_folder):
    code = textwrap.dedent("""
        import gradcheck
        report = gradcheck.check(interval=2, batch=2, input_size=2, hidden_size=2,
                                 state_size=2, output_size=2)
        print(report.passed)
    """)
    done = _run([sys.executable, "-c", code], user_folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_pytest_in_a_folder_with_its_own_reference(user_folder):
    (user_folder / "test_mine.py").write_text(textwrap.dedent("""
        import gradcheck

        def test_reference_passes():
            assert gradcheck.check(interval=2, batch=2, input_size=2, hidden_size=2,
                                   state_size=2, output_size=2).passed
    """))
    done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "test_mine.py"], user_folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
