"""A check's report as text, the answer first: the verdict and the diagnosis, one line per
failing array (every oracle on that line, its windows and steps grouped), the
configuration, then notes; the table of every comparison (``table``) on request.

The command line prints ``answer(report)`` (``--verbose``: with the table); the pytest
assertion uses the same array lines. Everything is rendered from the report's data
(``report.diagnosis`` is the diagnosis sentence); nothing here decides a verdict.
"""
from .model import SIZES
from .tolerances import ROUNDING_CAP, ROUNDING_MARGIN

__all__ = ["answer", "array_lines", "comparisons", "config_line", "notes", "table",
           "verdict"]

_COLUMNS = ("win", "array", "oracle", "checked", "max abs err", "max rel err", "err/tol",
            "worst at", "impl", "oracle value", "")


def _num(v, fmt=".2e"):
    return "-" if v is None else format(v, fmt)


def config_line(report):
    """``gradcheck: IMPL  interval 3, seq-len 3, B=128 ..., seed 0`` (after IMPL, the cell
    and its options that are on when the cell is not the RNN: ``lstm,``, ``gru reset_after,``)."""
    c = report.config
    sizes = " ".join(f"{s.letter}={c[s.option]}" for s in SIZES)
    cell = ""
    if "cell" in c:                      # (config.to_dict names a cell other than the RNN)
        on = [k for k, v in c.items() if v is True]
        cell = " ".join([c["cell"]] + on) + ", "
    return (f"gradcheck: {report.impl}  {cell}interval {c['interval']}, seq-len {c['seq_len']}, "
            f"{sizes}, {c['loss']}, {','.join(c['activations'])}, {c['reduction']}, "
            f"{c['dtype']}, seed {c['seed']}")


def verdict(report):
    """``PASSED: ...``, ``FAILED: k of n comparisons disagree`` or ``NOT SUPPORTED: ...``."""
    n = len(report.results)
    if report.unsupported is not None:
        return f"NOT SUPPORTED: {report.unsupported}"
    if report.passed:
        judged = [r for r in report.results if r.ratio is not None]
        if not judged:
            return f"PASSED: all {n} comparisons agree"
        worst = max(judged, key=lambda r: r.ratio)
        return (f"PASSED: all {n} comparisons agree (the largest error is {worst.ratio:.2g} "
                f"of the allowed: {worst.name}, {worst.oracle})")
    return f"FAILED: {len(report.failures)} of {n} comparisons disagree"


def _ranges(numbers):
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out, run = [], []
    for k in sorted(set(numbers)):
        if run and k == run[-1] + 1:
            run.append(k)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [k]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(out)


def _worst_values(results):
    """'worst element [i]: impl v, jax w, fd w, 1.8e+07x the allowed' over the oracles."""
    by_oracle = {}
    for r in results:
        best = by_oracle.get(r.oracle)
        if best is None or (r.ratio or 0) > (best.ratio or 0):
            by_oracle[r.oracle] = r
    worst = max(by_oracle.values(), key=lambda r: r.ratio or 0)
    same = [r for r in by_oracle.values() if r.window == worst.window
            and r.worst_index == worst.worst_index and r.impl_value == worst.impl_value]
    values = ", ".join(f"{r.oracle} {_num(r.oracle_value, '.6g')}" for r in same)
    where = "" if len({r.window for r in results}) == 1 else f" (window {worst.window})"
    text = (f"worst element {list(worst.worst_index)}{where}: impl "
            f"{_num(worst.impl_value, '.6g')}, {values}, {worst.ratio:.3g}x the allowed")
    for r in by_oracle.values():
        if r not in same:
            text += (f"; {r.oracle}'s worst {list(r.worst_index)} (window {r.window}): impl "
                     f"{_num(r.impl_value, '.6g')}, {r.oracle} {_num(r.oracle_value, '.6g')}, "
                     f"{r.ratio:.3g}x")
    return text


def array_lines(report):
    """One line per failing array (in the report's order): the windows it fails in, the
    worst element with the implementation's value and every oracle's, and the time steps
    that disagree; a problem without values (a missing key, NaN) is its message."""
    by_name = {}
    for r in report.failures:
        by_name.setdefault(r.name, []).append(r)
    lines = []
    for name, results in by_name.items():
        windows = sorted({r.window for r in results})
        where = f"window{'s' if len(windows) > 1 else ''} {_ranges(windows)}"
        valued = [r for r in results if r.impl_value is not None and r.oracle_value is not None
                  and r.worst_index is not None and r.ratio is not None]
        if valued:
            what = _worst_values(valued)
        else:
            messages = list(dict.fromkeys(r.message for r in results))
            oracles = ", ".join(dict.fromkeys(r.oracle for r in results))
            what = f"{messages[0]} ({oracles})" + (f"; {len(messages) - 1} more problem(s)"
                                                   if len(messages) > 1 else "")
        steps = sorted({s for r in results for s in (r.steps or [])})
        tail = f"; steps that disagree: {steps}" if steps else ""
        lines.append(f"  {name} ({where}): {what}{tail}")
    return lines


def notes(report):
    """What the verdict leaves out: rounding allowances, relu kinks, skipped arrays and
    calls. One paragraph each."""
    c = report.config
    out = []
    raised = {}
    for r in report.results:
        if r.rounding is not None:
            raised.setdefault(r.window, {})[r.name] = r.rounding
    for w, names in sorted(raised.items()):
        worst = max(names.values())
        out.append(f"rounding: in window {w} the reference itself, in {c['dtype']}, is up "
                   f"to {worst:.1e} (relative) from itself in float64 in {', '.join(names)}; "
                   f"those comparisons allow {ROUNDING_MARGIN:g}x their reference's error"
                   + (f", up to an allowance of {ROUNDING_CAP:g}; beyond it they are "
                      f"not judged" if worst * ROUNDING_MARGIN > ROUNDING_CAP else ""))
    kinks = sum(r.excluded for r in report.results if r.oracle == "fd")
    if kinks:
        out.append(f"relu kinks: {kinks} element{'s' if kinks > 1 else ''} excluded from the "
                   "finite-difference comparison (the loss is not differentiable there)")
    if report.skipped:
        out.append(f"skipped (not compared, not passed): {', '.join(report.skipped)}")
    out += [f"skipped: {note}" for note in report.skipped_calls]
    return out


def comparisons(report):
    """The table of every comparison: a header line, then one row per window, array and
    oracle (figures, worst element, ok/FAIL)."""
    rows = [_COLUMNS]
    for r in report.results:
        if r.oracle == "contract":
            continue
        rows.append((str(r.window), r.name, r.oracle,
                     f"{r.checked}" + (f" (-{r.excluded} kink)" if r.excluded else ""),
                     _num(r.max_abs_err), _num(r.max_rel_err), _num(r.ratio, ".2f"),
                     "" if r.worst_index is None else str(list(r.worst_index)),
                     _num(r.impl_value, ".6g"), _num(r.oracle_value, ".6g"),
                     "ok" if r.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _diagnosis_lines(report):
    """The diagnosis sentence, and a second finding's (``report.finding.second``) if any."""
    if not report.diagnosis:
        return []
    lines = [f"diagnosis: {report.diagnosis}"]
    finding = getattr(report, "finding", None)
    if finding is not None and finding.second is not None:
        lines.append(f"second finding: {finding.second.text}")
    return lines


def _mode_line(report):
    return f"mode: {report.mode} ({report.mode_reason})"


def _isolation_lines(report):
    """The worker's sandbox (gradcheck.sandbox), and its warning if any: none in-process."""
    iso = report.isolation
    lines = []
    if iso.get("mechanism"):
        lines.append(f"isolation: {iso['mechanism']} ({'; '.join(iso.get('guarantees', []))})")
    if iso.get("warning"):
        lines.append(f"warning: {iso['warning']}")
    return lines


def answer(report, verbose=False, more="--verbose"):
    """The verdict first. Failing: the diagnosis, one line per failing array, the
    configuration, notes, and (``verbose``) the table of every comparison, else a pointer
    to it (``more``). Passing: the verdict, the configuration and the notes."""
    lines = [verdict(report), *_diagnosis_lines(report)]
    failing = array_lines(report)
    if failing:
        lines += ["", "failing arrays (worst element of each):", *failing]
    lines += ["", config_line(report), _mode_line(report), *_isolation_lines(report)]
    for note in notes(report):
        lines += ["", note]
    if verbose:
        lines += ["", *comparisons(report)]
    elif failing and more:
        lines += ["", f"(every comparison, in a table: {more})"]
    return "\n".join(lines)


def table(report):
    """Every comparison in a table, each failure's message, the notes, the diagnosis and
    the verdict last (``Report.format_table``)."""
    lines = [config_line(report), _mode_line(report), *_isolation_lines(report), "",
             *comparisons(report)]
    problems = report.failures
    if problems:
        lines.append("")
        for r in problems:
            steps = f" [steps that disagree: {r.steps}]" if r.steps else ""
            lines.append(f"FAIL window {r.window} {r.name} ({r.oracle}): {r.message}{steps}")
    for note in notes(report):
        lines += ["", note]
    if report.diagnosis:
        lines += ["", *_diagnosis_lines(report)]
    lines += ["", verdict(report) if not report.passed or report.unsupported else
              f"PASSED: all {len(report.results)} comparisons agree"]
    return "\n".join(lines)
