"""The grading results as documents: json, gradescope, prairielearn, csv, table.

Feedback quotes, for a failing array, the worst element (the submission's value and the
oracle's) and the steps that disagree; never an oracle's whole array.
"""
import csv
import io
import json
import os
import statistics

from .battery import items
from ..kinds import KINDS, Diagnosis, json_fields

__all__ = ["FORMATS", "summary", "render"]

FORMATS = ("json", "gradescope", "prairielearn", "csv", "table")


def _round(v):
    return round(float(v), 6)


# Kinds of these groups say how a submission was handled (it hung, crashed, could not be
# loaded, broke the honesty rules), not which arrays its maths gets wrong: they are kept
# out of the per-array and per-test counts.
_NOT_ARRAYS = ("honesty", "crash", "timeout", "memory", "packaging")


def _kinds_of(g):
    """The kinds of one submission, each once: those of its tests that lost points and
    the flags that cost nothing."""
    kinds = [t.kind for t in g.tests if t.score < t.max_score and t.kind]
    if any(t.score < t.max_score and not t.kind for t in g.tests):
        kinds.append("unclear")
    return list(dict.fromkeys(kinds + list(g.flags)))


def _counts_arrays(t):
    return t.score < t.max_score and (t.kind is None or t.kind not in KINDS
                                      or KINDS[t.kind].group not in _NOT_ARRAYS)


def _isolation(grades):
    """How the class's workers were isolated, and what that means for the checker's files:
    unreadable by OS means, or refused by the honesty hook only (the summary says so)."""
    try:
        from ..sandbox import STRONG
    except ImportError:                  # no OS-level isolation on this version
        STRONG = ()
    mechanisms = sorted({g.isolation for g in grades if g.isolation})
    strong = bool(mechanisms) and all(m in STRONG for m in mechanisms)
    return {"mechanisms": mechanisms, "checker_files": (
        "out of the workers' reach (OS-level isolation)" if strong else
        "refused by the honesty audit hook only: the workers ran as the grader's own user, "
        "so code that reaches below Python could read them")}


def summary(grades, battery, seed):
    """Across the class: scores; per kind of problem the count and the submissions (a
    submission counts once per kind); and, from the tests that lost points for their
    maths or the contract only, how many submissions fail each array and each test."""
    scores = [g.score for g in grades]
    arrays = dict.fromkeys((i for t in battery for i in items(t)), 0)   # every cell's
    tests = {t.name: 0 for t in battery}
    kinds = {}
    for g in grades:
        failing, failed = set(), set()
        for t in g.tests:
            if _counts_arrays(t):
                failing.update(t.failing)
                failed.add(t.name)
        for item in failing:
            arrays[item] += 1
        for name in failed:
            tests[name] += 1
        for kind in _kinds_of(g):
            kinds.setdefault(kind, []).append(g.submission)
    return {
        "submissions": len(grades),
        "max_score": _round(sum(t.points for t in battery)),
        "mean_score": _round(statistics.fmean(scores)) if scores else None,
        "median_score": _round(statistics.median(scores)) if scores else None,
        "full_marks": sum(g.passed for g in grades),
        "seed": seed,
        "scores": {g.submission: _round(g.score) for g in grades},
        "failing_arrays": arrays,
        "failing_tests": tests,
        "isolation": _isolation(grades),
        "kinds": {k: {"title": KINDS[k].title if k in KINDS else k,
                      "group": KINDS[k].group if k in KINDS else "unclear",
                      "count": len(subs), "submissions": subs}
                  for k, subs in sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "battery": [{"name": t.name, "points": t.points, "about": t.about,
                     "feedback": t.feedback,
                     "options": {k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in t.options.items()}} for t in battery],
    }


def _test_dict(t):
    return {"name": t.name, "score": _round(t.score), "max_score": _round(t.max_score),
            "passed": t.score >= t.max_score, "items": {k: _round(v) for k, v in t.items.items()},
            "failing": t.failing, "diagnosis": t.diagnosis,
            **_diagnosis_fields(t.kind, t.finding, t.diagnosis),
            "problem": t.problem, "output": t.output}


def _diagnosis_fields(kind, finding, text):
    """``"diagnosis_kind"`` (why points were lost, or null) and ``"diagnosis_detail"``:
    the check's own finding when it is of ``kind``, else ``kind``'s words without
    evidence."""
    if finding is None or finding.kind != kind:
        finding = Diagnosis(kind, text or "") if kind in KINDS else None
    return dict(json_fields(finding), diagnosis_kind=kind)


def _submission_fields(g):
    """The same keys for a submission: those of the test its diagnosis comes from."""
    t = next((t for t in g.tests if g.diagnosis is not None
              and g.diagnosis in (t.diagnosis, t.reason)), None)
    if t is None:
        return _diagnosis_fields(None, None, g.diagnosis)
    return _diagnosis_fields(t.kind, t.finding, g.diagnosis)


def _json(grades, battery, seed):
    return {"submissions": [{"submission": g.submission, "score": _round(g.score),
                             "max_score": _round(g.max_score), "passed": g.passed,
                             "diagnosis": g.diagnosis, **_submission_fields(g),
                             "problem": g.problem,
                             "reason": g.reason, "seconds": round(g.seconds, 3),
                             "kinds": _kinds_of(g), "honesty": g.honesty,
                             "tests": [_test_dict(t) for t in g.tests]} for g in grades],
            "summary": summary(grades, battery, seed)}


def _student_note(g):
    """What a student reads about the whole submission: why it got no marks, and the
    hints of flags that cost nothing (an unused banned import); never the diagnosis,
    which the tests' texts give at their feedback level."""
    notes = [g.reason] + [KINDS[f].hint for f in g.flags if f in KINDS]
    return "\n".join(n for n in notes if n)


def _gradescope(g):
    """Gradescope's results.json for one submission."""
    out = {"score": _round(g.score),
           "tests": [{"name": t.name, "score": _round(t.score), "max_score": _round(t.max_score),
                      "output": t.output, "visibility": t.visibility,
                      "status": "passed" if t.score >= t.max_score else "failed"}
                     for t in g.tests]}
    if _student_note(g):
        out["output"] = _student_note(g)
    return out


def _prairielearn(g):
    """PrairieLearn's external grader results for one submission."""
    return {"gradable": True, "score": _round(g.score / g.max_score) if g.max_score else 0.0,
            "message": _student_note(g),
            "tests": [{"name": t.name, "points": _round(t.score), "max_points": _round(t.max_score),
                       "message": t.output, "output": t.output} for t in g.tests]}


def _csv(grades, battery):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["submission", "score", "max_score", "passed"] + [t.name for t in battery]
               + ["problem", "diagnosis"])
    for g in grades:
        w.writerow([g.submission, f"{g.score:g}", f"{g.max_score:g}", g.passed]
                   + [f"{t.score:g}" for t in g.tests] + [g.problem or "", g.diagnosis or ""])
    return buf.getvalue()


def _table(grades, battery, seed):
    s = summary(grades, battery, seed)
    width = max([len("submission")] + [len(g.submission) for g in grades])
    lines = [f"gradcheck grade: {len(grades)} submissions, {len(battery)} tests, "
             f"seed {seed}", "",
             "submission".ljust(width) + "  score     " + "  ".join(t.name for t in battery)]
    for g in grades:
        cells = "  ".join(f"{t.score:g}".rjust(len(t.name)) for t in g.tests)
        lines.append(f"{g.submission.ljust(width)}  {g.score:5g}/{g.max_score:<4g}{cells}"
                     + (f"  [{g.problem}]" if g.problem else ""))
    lines += ["", f"full marks: {s['full_marks']} of {s['submissions']}; mean "
                  f"{s['mean_score']}, median {s['median_score']} of {s['max_score']:g}",
              "submissions failing each array: " + ", ".join(
                  f"{k} {v}" for k, v in s["failing_arrays"].items()),
              f"the checker's files: {s['isolation']['checker_files']}",
              "per kind of problem (each submission once):"]
    for k, v in s["kinds"].items():
        lines.append(f"  {v['title']} [{k}] {v['count']}: "
                     + ", ".join(_short(n) for n in v["submissions"]))
    if not s["kinds"]:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def _short(name):
    return os.path.basename(name.rstrip(os.sep)) or name


def render(fmt, grades, battery, seed):
    """The document of ``fmt`` as text. gradescope and prairielearn describe one
    submission each: with several, a JSON list of their documents in order."""
    if fmt == "json":
        return json.dumps(_json(grades, battery, seed), indent=2, allow_nan=False) + "\n"
    if fmt in ("gradescope", "prairielearn"):
        one = _gradescope if fmt == "gradescope" else _prairielearn
        docs = [one(g) for g in grades]
        return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(grades, battery)
    return _table(grades, battery, seed)
