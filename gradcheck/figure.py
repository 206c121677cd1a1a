"""The report as a figure: where in time the gradients go wrong (Report -> PNG bytes).

    report = gradcheck.check(impl, interval=3, trace=True)
    png = figure_png(report)            # bytes of a PNG; write_png(report, "r.png")

Three panels, from ``report.trace`` (gradcheck.trace):

1. a heatmap, array x time step, of each step's error against the tolerance (log10 of
   error / allowed: green passes, red fails; "everything before the last step is wrong"
   reads at a glance);
2. the norm of the state's derivative entering each step, the implementation's and JAX's;
3. the V curve of the worst element: the central difference's error against JAX as the
   step varies, in the check's difference form and the textbook form, the check's step
   marked.

matplotlib (imported here, when a figure is asked for, with the Agg backend: no window,
no display needed) is the field's default plotting library.
"""
import io
import math
import textwrap

__all__ = ["figure", "figure_png", "write_png", "FigureError", "pyplot"]

# log10(error / allowed) is drawn from -LOG_SPAN (far inside) to +LOG_SPAN (far outside);
# beyond that the colour saturates. 8 decades each way covers a float64 pass (~1e-8 of
# the tolerance) and a wrong formula (~1e+8).
LOG_SPAN = 8
# Zero errors on a log axis: drawn at this value and said so in the legend.
ZERO_AT = 1e-18
# Up to this many steps, each heatmap cell is labelled with its number.
LABEL_STEPS = 24


class FigureError(ValueError):
    """The report has nothing to draw (no trace)."""


def pyplot():
    """matplotlib.pyplot on the headless backend (imported only when a figure is drawn)."""
    import matplotlib
    matplotlib.use("Agg", force=False)          # headless: the only backend we need
    from matplotlib import pyplot as plt
    return plt


def _log_ratio(v):
    if v is None:
        return math.nan
    return max(-LOG_SPAN, min(LOG_SPAN, math.log10(v))) if v > 0 else -LOG_SPAN


def _title(report):
    c = report.config
    verdict = "PASSED" if report.passed else \
        f"FAILED ({len(report.failures)} of {len(report.results)} comparisons)"
    head = (f"{report.impl}: {verdict}\ninterval {c['interval']}, seq-len {c['seq_len']}, "
            f"{c['loss']}, {','.join(c['activations'])}, {c['reduction']}, {c['dtype']}")
    if report.diagnosis:
        label = "" if report.finding is None else f"[{report.finding.title}] "
        head += "\n" + "\n".join(textwrap.wrap(label + report.diagnosis, 150)[:3])
    return head


def _heatmap(ax, fig, trace):
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    rows, steps = trace["rows"], trace["steps"]
    grid = np.array([[_log_ratio(v) for v in trace["errors"][r]] for r in rows])
    cmap = pyplot().get_cmap("RdYlGn_r").with_extremes(bad="#bbbbbb")
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap,
                   norm=TwoSlopeNorm(vmin=-LOG_SPAN, vcenter=0, vmax=LOG_SPAN),
                   interpolation="nearest")
    states = trace.get("state_rows", ["dh"])
    ax.set_yticks(range(len(rows)), labels=[f"{r} (state)" if r in states else r for r in rows])
    every = max(1, len(steps) // 24)
    ax.set_xticks(range(0, len(steps), every), labels=[str(s) for s in steps[::every]])
    ax.set_xlabel("time step (window boundaries: white lines)")
    for a, _ in trace["windows"][1:]:
        ax.axvline(steps.index(a) - 0.5, color="white", linewidth=3)
    if len(steps) <= LABEL_STEPS:
        for i, r in enumerate(rows):
            for j, v in enumerate(trace["errors"][r]):
                text = "?" if v is None else f"{v:.0e}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black")
    bar = fig.colorbar(im, ax=ax, fraction=0.03)
    bar.set_label(r"$\log_{10}$(error / allowed); $> 0$ fails")
    ax.set_title("each step's contribution: error against the tolerance "
                 "(grey: NaN, inf or no value returned)", fontsize=10)


def _dh(ax, trace):
    steps = trace["steps"]
    impl, oracle = trace["dh_norm"]["impl"], trace["dh_norm"]["oracle"]
    nan = float("nan")
    ax.plot(steps, [nan if v is None else v for v in oracle], "o-", color="tab:blue",
            label="JAX", linewidth=2)
    ax.plot(steps, [nan if v is None else v for v in impl], "s--", color="tab:orange",
            label="implementation")
    for a, _ in trace["windows"][1:]:
        ax.axvline(a - 0.5, color="grey", linestyle=":")
    values = [v for v in impl + oracle if v is not None]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step $t$")
    ax.set_ylabel(r"$\Vert\partial L / \partial h_{t-1} \Vert$")
    ax.set_title(r"state derivative entering each step ($dh_{next}$)", fontsize=10)
    ax.legend(fontsize=8)


def _vcurve(ax, trace):
    v = trace.get("vcurve")
    if v is None:
        ax.text(0.5, 0.5, "no element to follow", ha="center", va="center")
        ax.set_axis_off()
        return
    zeros = False

    def shown(values):
        nonlocal zeros
        out = []
        for e in values:
            if e is not None and e == 0:
                zeros = True
            out.append(float("nan") if e is None else max(e, ZERO_AT))
        return out
    ax.loglog(v["steps"], shown(v["engine"]), "o-", color="tab:green", markersize=3,
              label="difference form (the check's engine); $x$: base step")
    ax.loglog(v["steps"], shown(v["plain"]), "^-", color="tab:purple", markersize=3,
              label=r"textbook $(L(v+h) - L(v-h)) / 2h$ of the float64 loss")
    ax.axvline(v["check_step"], color="black", linestyle="--",
               label=f"the check's step {v['check_step']:g}")
    ax.axhline(v["allowed"], color="tab:red", linestyle=":", label="allowed error")
    if v["impl_error"] is not None:
        ax.axhline(max(v["impl_error"], ZERO_AT), color="tab:orange", linestyle="-.",
                   label="implementation's error")
    ax.set_xlabel("step $h$")
    ax.set_ylabel(r"$|$central difference $-$ JAX$|$" + (f" (0 drawn at {ZERO_AT:g})" if zeros
                                                          else ""))
    ax.set_title(f"finite-difference error vs step: {v['name']}{v['index']}, "
                 f"window {v['window']}", fontsize=10)
    # below the axes, not over the curves (whose place depends on the implementation)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)


def figure(report, dpi=100):
    """The report's figure, a matplotlib Figure (the caller closes it: ``pyplot().close``).
    Needs ``report.trace`` (check(..., trace=True))."""
    if getattr(report, "trace", None) is None:
        raise FigureError("the report has no per-step trace to draw: run "
                          "gradcheck.check(..., trace=True) (the CLI does for --plot/--html)")
    plt = pyplot()
    trace = report.trace
    fig = plt.figure(figsize=(13, 9.5), dpi=dpi, layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1])
    try:
        _heatmap(fig.add_subplot(grid[0, :]), fig, trace)
        _dh(fig.add_subplot(grid[1, 0]), trace)
        _vcurve(fig.add_subplot(grid[1, 1]), trace)
        fig.suptitle(_title(report), fontsize=10, x=0.01, ha="left")
    except BaseException:
        plt.close(fig)
        raise
    return fig


def figure_png(report, dpi=100):
    """The report's figure as PNG bytes. Needs ``report.trace`` (check(..., trace=True))."""
    fig = figure(report, dpi)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    finally:
        pyplot().close(fig)
    return buf.getvalue()


def write_png(report, path, dpi=100):
    """Write ``figure_png(report)`` to ``path``."""
    data = figure_png(report, dpi)
    with open(path, "wb") as f:
        f.write(data)
