"""Tests of the pictures: the per-step trace, the figure, the HTML page, --plot/--html,
and the page rendered in a real headless browser (chromium, where installed)."""
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from gradcheck import zoo
from gradcheck.check import check
from gradcheck.cli import main
from gradcheck.errors import ExitCode
from gradcheck.figure import FigureError, figure, figure_png, pyplot
from gradcheck.html import html_report
from gradcheck.report import Report
from gradcheck.trace import DH_ROW, ROWS, rows_of, state_row
from tests.helpers import SMALL

# interval 3 over 5 steps: windows [1, 3] and [4, 5]
OPTIONS = dict(SMALL, interval=3, seq_len=5)
LAST_STEPS = {3, 5}
SMALL_FLAGS = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def buggy():
    return check(zoo.BUGS["no_dh_next"].make(), trace=True, **OPTIONS)


@pytest.fixture(scope="module")
def correct():
    return check(None, trace=True, **OPTIONS)


@pytest.fixture(scope="module")
def buggy_png(buggy):
    return figure_png(buggy)


def _pixels(png):
    from matplotlib import image
    return image.imread(io.BytesIO(png), format="png")[..., :3]       # [H, W, RGB] in [0, 1]


# ------------------------------------------------------------------ the trace

def test_trace_shows_every_step_but_each_windows_last_wrong(buggy):
    t = buggy.trace
    assert t["steps"] == [1, 2, 3, 4, 5] and t["windows"] == [[1, 3], [4, 5]]
    for name in ("W1", "b1", "W2", "U", "b2", "x", DH_ROW):
        failing = {s for s, r in zip(t["steps"], t["errors"][name]) if r is None or r > 1}
        assert failing == set(t["steps"]) - LAST_STEPS, (name, t["errors"][name])
    for name in ("loss", "W3", "b3"):
        assert max(t["errors"][name]) < 1, (name, t["errors"][name])


def test_trace_of_the_reference_passes_everywhere_and_dh_matches(correct):
    t = correct.trace
    assert set(t["errors"]) == set(ROWS)
    assert all(r is not None and r < 1 for row in t["errors"].values() for r in row)
    impl, oracle = np.array(t["dh_norm"]["impl"]), np.array(t["dh_norm"]["oracle"])
    np.testing.assert_allclose(impl, oracle, rtol=1e-10)


def test_trace_dh_norms_differ_where_dh_next_is_dropped(buggy):
    t = buggy.trace
    for step, a, b in zip(t["steps"], t["dh_norm"]["impl"], t["dh_norm"]["oracle"]):
        assert (abs(a - b) <= 1e-10 * b) == (step in LAST_STEPS), (step, a, b)


def test_vcurve_puts_the_checks_step_at_the_bottom_of_the_engines_curve(correct):
    v = correct.trace["vcurve"]
    steps, engine, plain = np.array(v["steps"]), np.array(v["engine"]), np.array(v["plain"])
    at = int(np.argmin(np.abs(steps - v["check_step"])))
    assert engine[at] <= v["allowed"]
    # the bottom: no step does more than 10x better than the check's (a flat floor of
    # rounding relative to the perturbation), and large steps are worse (truncation)
    assert engine[at] <= 10 * max(engine.min(), 1e-17)
    assert engine[-1] > 100 * max(engine[at], 1e-17)
    # the textbook form is a V: its rounding error eps |L| / h dominates at tiny steps
    assert plain[0] > 100 * plain.min() and plain[-1] > 100 * plain.min()


def test_the_json_document_carries_the_trace_as_strict_json(buggy):
    doc = json.loads(json.dumps(buggy.to_dict(), allow_nan=False))
    assert doc["trace"]["rows"] == list(ROWS)


def test_no_trace_without_asking(tmp_path):
    report = check(None, interval=2, **SMALL)
    assert report.trace is None and "trace" not in report.to_dict()
    with pytest.raises(FigureError, match=r"trace=True"):
        figure_png(report)


# ------------------------------------------------------------ figure and page

def test_figure_is_a_png_that_shows_red_where_steps_fail(buggy_png, correct):
    bad, good = _pixels(buggy_png), _pixels(figure_png(correct))
    assert bad.shape[0] > 500 and bad.std() > 0.1

    def red(img):                  # the heatmap's failing colour: saturated red
        return int(np.sum((img[..., 0] > 0.6) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)))
    assert red(bad) > 20 * max(red(good), 100)


@pytest.fixture(scope="module")
def drawn(buggy):
    """The buggy report's figure, laid out (drawn once), closed afterwards."""
    fig = figure(buggy)
    fig.canvas.draw()
    yield fig
    pyplot().close(fig)


def test_no_legend_covers_its_panels_curves(drawn):
    """Each legend sits outside its axes' plotting area, or inside it clear of every
    line drawn there (in display pixels)."""
    renderer = drawn.canvas.get_renderer()
    for ax in drawn.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        for line in ax.get_lines():
            xy = line.get_transform().transform(line.get_xydata())
            xy = xy[np.isfinite(xy).all(axis=1)]
            inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1)
                      & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1))
            assert not inside.any(), (ax.get_title(), line.get_label())


def test_the_finite_difference_panels_legend_is_outside_its_axes(drawn):
    """Its curves can be anywhere (they depend on the implementation), so its long legend
    is drawn outside the plotting area, where no curve can be."""
    renderer = drawn.canvas.get_renderer()
    (ax,) = [a for a in drawn.axes if a.get_title().startswith("finite-difference error")]
    box, area = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.y1 <= area.y0 or box.x0 >= area.x1, (box, area)


def test_labels_are_rendered_as_maths_not_raw_subscripts(drawn):
    texts = [t for ax in drawn.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title)]
    texts += [t for ax in drawn.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    for t in texts:
        raw = t.get_text()
        outside_maths = raw.split("$")[::2]           # the parts between $...$ pairs
        assert raw.count("$") % 2 == 0, raw
        assert not any("_{" in part or "||" in part for part in outside_maths), raw
    ylabels = [ax.yaxis.label.get_text() for ax in drawn.axes]
    assert r"$\Vert\partial L / \partial h_{t-1} \Vert$" in ylabels


def test_html_says_each_thing_once(buggy, buggy_png):
    page = html_report(buggy, buggy_png)
    body = page.split("<body>", 1)[1]
    assert body.count(html_escape(buggy.diagnosis)) == 1
    assert body.count("comparisons disagree") == 1
    assert "worst element</th>" not in body      # the message names the worst element
    for r in buggy.failures:
        assert body.count(html_escape(r.message)) == 1, r.message
    assert "FAIL window" not in body


def html_escape(text):
    import html
    return html.escape(text)


def test_html_is_self_contained_and_escaped(buggy, buggy_png):
    page = html_report(buggy, buggy_png)
    assert page.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert buggy.diagnosis.split(":")[0] in page
    # the diagnosis is labelled with its kind's title, and marked with its kind
    assert f"Diagnosis ({buggy.finding.title}):" in page
    assert f'data-kind="{buggy.finding.kind}"' in page
    hostile = Report(config=buggy.config, impl="<script>alert(1)</script>", mode="full",
                     mode_reason="", windows=buggy.windows, results=buggy.results,
                     diagnosis="a < b & c")
    page = html_report(hostile)
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &lt; b &amp; c" in page


def test_cli_writes_html_and_png_and_says_where(tmp_path, capsys):
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    code = main(["--bug", "no_dh_next", "--interval", "3", "--seq-len", "5", *SMALL_FLAGS,
                 "--html", str(html), "--plot", str(png)])
    assert code == ExitCode.FAILED
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "data:image/png;base64," in html.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert f"wrote the figure: {png}\n" in err and f"wrote the HTML report: {html}\n" in err


@pytest.mark.parametrize(("flag", "path", "message"), [
    pytest.param("--plot", "{tmp}/r.jpg", "--plot {tmp}/r.jpg: expected a file name ending "
                 "in .png", id="plot-not-png"),
    pytest.param("--plot", "{tmp}/no/r.png", "--plot {tmp}/no/r.png: expected a file in a "
                 "writable folder", id="plot-no-folder"),
    pytest.param("--html", "{tmp}/no/r.html", "--html {tmp}/no/r.html: expected a file in a "
                 "writable folder", id="html-no-folder"),
])
def test_cli_rejects_bad_picture_paths(flag, path, message, tmp_path, capsys):
    path, message = (s.replace("{tmp}", str(tmp_path)) for s in (path, message))
    assert main(["--interval", "2", *SMALL_FLAGS, flag, path]) == ExitCode.USAGE
    assert message in capsys.readouterr().err


@pytest.fixture
def no_matplotlib(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))


def test_cli_without_matplotlib_is_a_usage_error(tmp_path, capsys, no_matplotlib):
    assert main(["--interval", "2", *SMALL_FLAGS, "--plot", str(tmp_path / "r.png")]) == \
        ExitCode.USAGE
    assert "pip install 'gradcheck[plot]'" in capsys.readouterr().err


def test_tour_without_matplotlib_says_so_before_the_tour_runs(tmp_path, capsys, no_matplotlib,
                                                              monkeypatch):
    from gradcheck import tour
    monkeypatch.setattr(tour, "measure", lambda: pytest.fail("the tour ran first"))
    assert main(["tour", "--plot", str(tmp_path / "t.png")]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == (f"gradcheck tour: error: --plot {tmp_path / 't.png'}: the figure needs "
                   "matplotlib: pip install 'gradcheck[plot]'\n")


# ------------------------------------------------------------ a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's "
                                             "chromium; apt-get install chromium)")
def test_html_renders_in_a_headless_browser(buggy, buggy_png, tmp_path):
    page, shot = tmp_path / "r.html", tmp_path / "shot.png"
    page.write_text(html_report(buggy, buggy_png), encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1300,1400",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    img = _pixels(shot.read_bytes())
    assert img.std() > 0.1                                    # not blank
    # the embedded figure was drawn: the heatmap's red cells are on the screen
    assert np.sum((img[..., 0] > 0.6) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)) > 2000


@pytest.mark.parametrize("name", ["raises", "nan_grad", "modifies_x"])
def test_a_hostile_implementation_still_gets_its_picture(name, tmp_path):
    from tests.impls import broken
    report = check(getattr(broken, name), trace=True, interval=2, seq_len=3, **SMALL)
    assert not report.passed
    assert _pixels(figure_png(report)).std() > 0.1
    rows = report.trace["errors"]
    if name == "nan_grad":                 # NaN in W2 only: the other rows are still drawn
        assert all(r is None for r in rows["W2"][:2])
        assert all(r is not None and r < 1 for r in rows["U"])


def test_step_contributions_are_differences_of_consecutive_suffixes():
    """Shared by the attribution and the pictures: the window from step t sums steps t..T."""
    import numpy as np

    from gradcheck.attribution import step_contributions
    steps = np.array([[1.0, -2.0], [0.5, 4.0], [3.0, 0.25]])            # [T, 2]
    suffixes = [steps[t:].sum(axis=0) for t in range(3)]
    np.testing.assert_array_equal(step_contributions(suffixes), steps)
    np.testing.assert_array_equal(step_contributions([6.0, 3.0, 1.0]), [3.0, 2.0, 1.0])


# ------------------------------------------------------------ the cells' pictures

# One zoo bug of each cell, the heatmap row of the state derivative it breaks, and the
# steps where: every step but each window's last (a derivative from the future dropped),
# or every step (a path from h_t back to h_{t-1} missing, the last step's too).
CELL_BUGS = [("lstm", {}, "no_dc_next", "dc", set(range(1, 6)) - LAST_STEPS),
             ("gru", {}, "no_dh_next", DH_ROW, set(range(1, 6)) - LAST_STEPS),
             ("gru", {"reset_after": True}, "after_no_reset_path", DH_ROW, set(range(1, 6)))]


@pytest.fixture(scope="module", params=CELL_BUGS, ids=[f"{c}-{b}" for c, _, b, *_ in CELL_BUGS])
def cell_buggy(request):
    from gradcheck import model
    cell, on, bug, row, steps = request.param
    zoo = model.side(cell, "zoo")
    report = check(getattr(zoo, bug), cell=cell, trace=True, **on, **OPTIONS)
    return report, model.describe(cell, **on), (row, steps)


def test_a_cells_heatmap_has_a_row_per_array_of_the_cell(cell_buggy):
    report, m, _ = cell_buggy
    t = report.trace
    assert t["rows"] == list(rows_of(m))
    cell_arrays = [n for n in m.layers[1].arrays if n not in m.state_names]   # Wx, Wh, b (bh)
    assert set(cell_arrays) <= set(t["rows"]) and not {"W2", "U", "b2"} & set(t["rows"])
    assert t["state_rows"] == [state_row(n) for n in m.state_names]           # dh (, dc)
    assert all(len(t["errors"][r]) == len(t["steps"]) for r in t["rows"])


def test_a_cells_dropped_state_derivative_shows_in_its_row(cell_buggy):
    report, _, (row, steps) = cell_buggy
    t = report.trace
    failing = {s for s, r in zip(t["steps"], t["errors"][row]) if r is None or r > 1}
    assert failing == steps, t["errors"][row]
    for name in ("loss", "W3", "b3"):
        assert max(t["errors"][name]) < 1, (name, t["errors"][name])


def test_a_cells_correct_trace_passes_everywhere():
    report = check(None, cell="lstm", trace=True, **OPTIONS)
    t = report.trace
    assert "dc" in t["rows"] and "Wh" in t["rows"]
    assert all(r is not None and r < 1 for row in t["errors"].values() for r in row)
    v = t["vcurve"]
    from gradcheck import model
    assert v["name"] in model.describe("lstm").grad_names
    steps, engine = np.array(v["steps"]), np.array(v["engine"])
    at = int(np.argmin(np.abs(steps - v["check_step"])))
    assert engine[at] <= v["allowed"] and engine[-1] > 100 * max(engine[at], 1e-17)


def test_cli_draws_a_cells_figure_with_its_rows(tmp_path, capsys):
    png, html = tmp_path / "lstm.png", tmp_path / "lstm.html"
    code = main(["--cell", "lstm", "--impl", "gradcheck.cells.lstm_zoo:no_dc_next",
                 "--interval", "3", "--seq-len", "5", *SMALL_FLAGS, "--plot", str(png),
                 "--html", str(html)])
    assert code == ExitCode.FAILED
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "data:image/png;base64," in html.read_text(encoding="utf-8")
    assert "Traceback" not in capsys.readouterr().err


def test_a_cells_figure_labels_every_row(cell_buggy):
    report, m, _ = cell_buggy
    fig = figure(report)
    try:
        heatmap = fig.axes[0]
        labels = [t.get_text() for t in heatmap.get_yticklabels()]
        assert labels == [f"{r} (state)" if r in report.trace["state_rows"] else r
                          for r in report.trace["rows"]]
    finally:
        pyplot().close(fig)
