"""The report as one self-contained HTML page: verdict, diagnosis, figure, failures, table;
each said once (the table holds the figures, the failures the sentences, the notes once).

Everything is inline (the figure as an embedded PNG, styles in the page): the file can be
mailed, attached to a CI run or opened offline; it loads nothing from the network.
Every string from the report is escaped (the implementation's name and messages can
hold anything).
"""
import base64
import html

from .text import comparisons, config_line, notes, verdict

__all__ = ["html_report", "write_html"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
.verdict { font-size: 1.4em; font-weight: bold; padding: .3em .6em; display: inline-block; }
.passed { background: #d7f2d7; } .failed { background: #f6d2d2; }
.diagnosis { font-size: 1.1em; margin: .8em 0; }
img { max-width: 100%; border: 1px solid #ccc; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: left; }
"""


def _failures_table(report):
    rows = []
    for r in report.failures:                # the message names the worst element already
        rows.append("<tr>" + "".join(
            f"<td>{html.escape(str(v))}</td>" for v in (
                r.window, r.name, r.oracle, "" if not r.steps else r.steps, r.message))
            + "</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("window", "array", "oracle",
                                              "steps that disagree", "what"))
    return f"<h2>Failures</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def html_report(report, png=None):
    """The page as a string. ``png``: the figure's bytes (default: drawn from the report's
    trace when it has one; without a trace the page has no figure)."""
    if png is None and getattr(report, "trace", None) is not None:
        from .figure import figure_png
        png = figure_png(report)
    status = "passed" if report.passed else "failed"
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>gradcheck: {html.escape(report.impl)} {status.upper()}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>gradcheck: {html.escape(report.impl)}</h1>",
        f"<div class=\"verdict {status}\">{html.escape(verdict(report))}</div>",
    ]
    finding = report.finding
    if report.diagnosis:
        label, kind = (("Diagnosis", "") if finding is None else
                       (f"Diagnosis ({finding.title})", finding.kind))
        parts.append(f"<p class=\"diagnosis\" data-kind=\"{kind}\"><b>{html.escape(label)}:</b> "
                     f"{html.escape(report.diagnosis)}</p>")
    if finding is not None and finding.second is not None:
        parts.append(f"<p class=\"diagnosis\" data-kind=\"{finding.second.kind}\"><b>Second "
                     f"finding ({html.escape(finding.second.title)}):</b> "
                     f"{html.escape(finding.second.text)}</p>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append("<h2>Where in time</h2>"
                     f"<img alt=\"per-step errors, state derivative and V curve\" "
                     f"src=\"data:image/png;base64,{data}\">")
    parts.append(_failures_table(report))
    parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in notes(report)]
    table = "\n".join([config_line(report), *comparisons(report)])
    parts.append(f"<h2>Every comparison</h2><pre>{html.escape(table)}</pre>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_html(report, path, png=None):
    """Write ``html_report(report, png)`` to ``path`` (UTF-8)."""
    from .atomic import write_atomic
    write_atomic(path, html_report(report, png))
