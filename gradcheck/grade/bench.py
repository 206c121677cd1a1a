"""The pace of ``gradcheck grade``, measured in one run: ``python -m gradcheck.grade.bench``.

Grades 30 submissions (the 23 bugs of the zoo and 7 correct ones) with the default
battery, as an instructor would, in a fresh process (``python -m gradcheck grade``), with
``--jobs 2`` and with ``--jobs 1``. Prints, for each: the wall time of the whole command
(what the instructor waits for: start-up, the oracles of every test, every submission),
the median seconds a submission took (its own worker, calls, judging and diagnosis;
none of these hits the time limit) and the same per submission of wall time.
The target is a median <= 2 s per submission with 2 jobs on 2 cores.
"""
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["N_SUBMISSIONS", "main"]

N_SUBMISSIONS = 30
TARGET_MEDIAN = 2.0


def _write_submissions(folder):
    from ..zoo import BUGS
    paths = []
    for name in sorted(BUGS):
        p = folder / f"{name}.py"
        p.write_text(f"from gradcheck.zoo import BUGS\nloss_and_grads = BUGS[{name!r}].make()\n")
        paths.append(p)
    for i in range(N_SUBMISSIONS - len(paths)):
        p = folder / f"correct_{i}.py"
        p.write_text("from gradcheck.zoo import ArticleBPTT\nloss_and_grads = ArticleBPTT()\n")
        paths.append(p)
    return paths


def _run(paths, jobs):
    cmd = [sys.executable, "-m", "gradcheck", "grade", *map(str, paths), "--format", "json",
           "--jobs", str(jobs), "--allow-import", "gradcheck", "--seed", "0"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    doc = json.loads(proc.stdout)
    seconds = [s["seconds"] for s in doc["submissions"] if s["problem"] != "timeout"]
    return wall, statistics.median(seconds), max(seconds), doc


def main(argv=None):
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_submissions(Path(tmp))
        print(f"gradcheck grade: {len(paths)} submissions (23 zoo bugs, "
              f"{len(paths) - 23} correct), the default battery, fresh process each")
        for jobs in (2, 1):
            wall, median, worst, doc = _run(paths, jobs)
            ok = "meets" if median <= TARGET_MEDIAN else "misses"
            print(f"  --jobs {jobs}: whole command {wall:6.2f} s ({wall / len(paths):.2f} s "
                  f"per submission); per submission median {median:.2f} s, worst "
                  f"{worst:.2f} s ({ok} the target <= {TARGET_MEDIAN:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
