"""``gradcheck grade --bundle gradescope|prairielearn DIR``: a ready autograder for the
platforms that run one container per submission.

Both bundles carry the same things: a copy of gradcheck and its reference (``vendor/``,
put first on ``PYTHONPATH``), the battery as TOML (``battery.toml``: the hidden tests),
the Python packages gradcheck needs (``requirements.txt``), and ``run_autograder``,
which grades the one submission it finds and writes the platform's
``results/results.json``. The seed is drawn when the bundle is made and written into
``run_autograder``: every student of the class is graded on the same data, which none
of them has seen. When grading itself fails, ``run_autograder`` still writes a results
file (no marks, saying the grader failed) rather than none.

- gradescope: ``setup.sh`` (Gradescope runs it once when it builds the image: Python
  3.11 and the packages into ``/autograder/venv``), ``run_autograder`` (it reads
  ``/autograder/submission``, writes ``/autograder/results/results.json``), the rest in
  ``/autograder/source``; ``autograder.zip`` holds them all, to upload as is.
- prairielearn: the external grader. ``tests/`` is the question's ``tests`` folder
  (mounted at ``/grade/tests``); ``run_autograder`` reads ``/grade/student`` and writes
  ``/grade/results/results.json``; ``Dockerfile`` builds the grading image and
  ``externalGradingOptions.json`` is the part of the question's ``info.json`` that uses it.
"""
import json
import os
import shlex
import shutil
import stat
import zipfile

from .._reference import REFERENCE_DIR

__all__ = ["PLATFORMS", "write_bundle", "battery_toml"]

PLATFORMS = ("gradescope", "prairielearn")
PYTHON = "python3.11"            # tomllib, the oldest Python gradcheck supports
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))      # gradcheck/

# Where each platform puts things, relative to the folder that holds run_autograder
# (Gradescope copies it to /autograder; PrairieLearn runs it from /grade/tests).
_LAYOUT = {
    "gradescope": dict(root='"$(cd "$(dirname "$0")" && pwd)"', source="$ROOT/source",
                       submission="$ROOT/submission", results="$ROOT/results",
                       python="$ROOT/venv/bin/python", format="gradescope"),
    "prairielearn": dict(root='"$(cd "$(dirname "$0")/.." && pwd)"', source="$ROOT/tests",
                         submission="$ROOT/student", results="$ROOT/results",
                         python="python3", format="prairielearn"),
}
_FAILED = {
    "gradescope": {"score": 0.0, "output": "The autograder could not grade this submission; "
                                           "your instructor will look at it."},
    "prairielearn": {"gradable": False, "score": 0.0,
                     "message": "The autograder could not grade this submission; your "
                                "instructor will look at it."},
}


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return json.dumps(",".join(map(str, v)))
    return json.dumps(str(v))                    # a TOML basic string is a JSON string


def battery_toml(battery):
    """The battery as a TOML file that ``load_battery`` reads back to the same tests."""
    lines = ["# The tests of this autograder (gradcheck grade --battery); students do not",
             "# see this file."]
    for t in battery:
        lines += ["", "[[test]]", f"name = {_toml_value(t.name)}",
                  f"points = {_toml_value(t.points)}",
                  f"visibility = {_toml_value(t.visibility)}"]
        if t.about:
            lines.append(f"about = {_toml_value(t.about)}")
        if t.feedback:
            lines.append(f"feedback = {_toml_value(t.feedback)}")
        lines += [f"{k} = {_toml_value(v)}" for k, v in t.options.items()]
    return "\n".join(lines) + "\n"


def _requirements():
    import jax
    import numpy
    return (f"# what gradcheck needs (made with numpy {numpy.__version__}, "
            f"jax {jax.__version__})\n"
            f"numpy>={numpy.__version__.rsplit('.', 1)[0]}\n"
            f"jax>={jax.__version__.rsplit('.', 1)[0]}\n")


def _run_autograder(platform, flags):
    where = _LAYOUT[platform]
    failed = json.dumps(_FAILED[platform])
    command = " ".join(["\"$PYTHON\" -m gradcheck grade \"$SUBMISSION\"",
                        "--battery \"$SOURCE/battery.toml\"", f"--format {where['format']}",
                        "--output \"$RESULTS/results.json\"", "--jobs 1"]
                       + [shlex.quote(f) for f in flags])
    return f"""#!/usr/bin/env bash
# Made by `gradcheck grade --bundle {platform}`: grades the submission and writes
# results/results.json for {platform}.
set -u
ROOT={where['root']}
if [ "$(basename "$ROOT")" = source ]; then ROOT="$(dirname "$ROOT")"; fi
SOURCE="{where['source']}"
SUBMISSION="{where['submission']}"
RESULTS="{where['results']}"
PYTHON="${{GRADCHECK_PYTHON:-{where['python']}}}"
if ! [ -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null 2>&1; then PYTHON=python3; fi
export PYTHONPATH="$SOURCE/vendor${{PYTHONPATH:+:$PYTHONPATH}}"
mkdir -p "$RESULTS"
rm -f "$RESULTS/results.json"
{command} 2>"$RESULTS/grader-stderr.txt"
status=$?
if [ $status -ne 0 ] || ! [ -s "$RESULTS/results.json" ]; then
    echo "gradcheck grade ended with status $status:" >&2
    cat "$RESULTS/grader-stderr.txt" >&2
    cat > "$RESULTS/results.json" <<'JSON'
{failed}
JSON
fi
exit 0
"""


_SETUP = f"""#!/usr/bin/env bash
# Made by `gradcheck grade --bundle gradescope`: Gradescope runs this once, as root, when it
# builds the autograder's image. gradcheck itself is in source/vendor (no install).
set -euo pipefail
if ! command -v {PYTHON} >/dev/null 2>&1; then
    apt-get update
    apt-get install -y {PYTHON} {PYTHON}-venv
fi
{PYTHON} -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install -r /autograder/source/requirements.txt
"""

_DOCKERFILE = """# Made by `gradcheck grade --bundle prairielearn`: the external grader's image.
# docker build -t YOUR_NAME/gradcheck-grader . && docker push YOUR_NAME/gradcheck-grader
FROM python:3.11-slim
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
"""


def _executable(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _vendor(folder):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(_PACKAGE_DIR, os.path.join(folder, "vendor", "gradcheck"), ignore=ignore,
                    dirs_exist_ok=True)
    shutil.copytree(REFERENCE_DIR, os.path.join(folder, "vendor", "reference"), ignore=ignore,
                    dirs_exist_ok=True)


def write_bundle(platform, folder, battery, flags):
    """Write the ``platform``'s autograder into ``folder`` (made if missing): the
    ``battery`` (battery.Test) and the ``flags`` of ``gradcheck grade`` each submission
    is graded with (``--seed N`` among them). Returns the paths written, relative."""
    os.makedirs(folder, exist_ok=True)
    source = folder if platform == "gradescope" else os.path.join(folder, "tests")
    os.makedirs(source, exist_ok=True)
    with open(os.path.join(source, "battery.toml"), "w", encoding="utf-8") as f:
        f.write(battery_toml(battery))
    _vendor(source)
    _executable(os.path.join(source, "run_autograder"), _run_autograder(platform, flags))
    with open(os.path.join(folder, "requirements.txt"), "w", encoding="utf-8") as f:
        f.write(_requirements())
    if platform == "gradescope":
        _executable(os.path.join(folder, "setup.sh"), _SETUP)
        _zip(folder)
    else:
        with open(os.path.join(folder, "Dockerfile"), "w", encoding="utf-8") as f:
            f.write(_DOCKERFILE)
        options = {"externalGradingOptions": {
            "enabled": True, "image": "YOUR_NAME/gradcheck-grader",
            "entrypoint": "/grade/tests/run_autograder", "timeout": 600}}
        with open(os.path.join(folder, "externalGradingOptions.json"), "w",
                  encoding="utf-8") as f:
            f.write(json.dumps(options, indent=2) + "\n")
    written = []
    for where, _, files in os.walk(folder):
        written += [os.path.relpath(os.path.join(where, n), folder) for n in files]
    return sorted(written)


def _zip(folder):
    """autograder.zip: everything at its root, as Gradescope wants it."""
    path = os.path.join(folder, "autograder.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for where, _, files in os.walk(folder):
            for name in sorted(files):
                full = os.path.join(where, name)
                if full == path:
                    continue
                info = zipfile.ZipInfo.from_file(full, os.path.relpath(full, folder))
                with open(full, "rb") as f:
                    z.writestr(info, f.read(), zipfile.ZIP_DEFLATED)
