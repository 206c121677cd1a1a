"""The article's four questions, answered by running the reference: ``gradcheck tour``.

    gradcheck tour                      # the four questions with the measured answers
    gradcheck tour --plot tour.png      # and the figure: cache bytes against the interval

The command line is ``gradcheck.cli.tour``.

Every number printed comes from the run:

1. Do we need to iterate all layers backprop_interval times? The layers' activations and
   the loss are wrapped while the reference runs one window; each records the time steps
   it was given (a call on [T, B, .] is T steps, a call on [B, .] is one).
2. Does every layer need to hold its inputs / outputs for each step? The forward's cache
   is measured (its arrays' bytes) at several intervals and compared with the bytes its
   shapes predict (x [T,B,I], f1'(z1) and a [T,B,H], f2'(z2) [T,B,R], h [T+1,B,R],
   dL/dz3 [T,B,O]): linear in the interval, exactly.
3. Do we need backprop_interval copies of the weights? The cache is searched for any
   weight (an array sharing its memory or of its shape), the gradients counted (one per
   weight, of its shape), and JAX's per-step copies of the weights (its model gives every
   step its own) are summed and compared with the reference's one gradient.
4. Do we need to cache all the state derivatives? The backward's working memory (tracemalloc
   peak beyond the gradients it returns) at several intervals: the same at every one, one
   [B, R] accumulator, where caching every step's dh would grow by B*R*8 bytes a step.
"""
import contextlib
import importlib
import tracemalloc

import numpy as np

from ._reference import reference
from .config import make_config
from .data import make_data
from .model import DEFAULT_ACTIVATIONS, DEFAULT_INTERVAL, DEFAULT_SIZES, LAYERS, PARAM_NAMES

__all__ = ["INTERVALS", "measure", "format_tour", "write_figure"]

INTERVALS = (1, 2, 3, 4, 8, 16, 32)
_NETWORK = importlib.import_module(f"{reference.__name__}.network")


class _Counter:
    """Wraps one callable; records the time steps of every call (leading dim of a 3-d
    [T, B, .] argument, else 1)."""

    def __init__(self, fn):
        self.fn, self.calls, self.steps, self.shapes = fn, 0, 0, []

    def __call__(self, z, *args, **kwargs):
        self.calls += 1
        self.steps += z.shape[0] if z.ndim == 3 else 1
        self.shapes.append(tuple(z.shape))
        return self.fn(z, *args, **kwargs)


@contextlib.contextmanager
def _instrumented(activations):
    """Count what the reference's forward runs: the activations f1 and f2 (one counter per
    function: f1 and f2 may be the same one) and the loss (the last dense layer's output)."""
    saved_acts, saved_loss = _NETWORK.ACTIVATIONS, _NETWORK.loss_and_delta
    counters = {name: _Counter(saved_acts[name][0]) for name in set(activations[:2])}
    wrapped = dict(saved_acts)
    for name, counter in counters.items():
        wrapped[name] = (counter, saved_acts[name][1])
    loss = _Counter(lambda z3, name, f3, *a: saved_loss(name, f3, z3, *a))
    _NETWORK.ACTIVATIONS = wrapped
    _NETWORK.loss_and_delta = lambda name, f3, z3, *a: loss(z3, name, f3, *a)
    try:
        yield counters, loss
    finally:
        _NETWORK.ACTIVATIONS, _NETWORK.loss_and_delta = saved_acts, saved_loss


def _layers(counters, loss):
    """(calls, steps) per layer. The first dense layer's activation sees [T, B, H] (all
    steps at once), the RNN's [B, R] (one step): told apart by the shapes they were given."""
    shapes = [s for c in counters.values() for s in c.shapes]
    dense = [s for s in shapes if len(s) == 3]
    rnn = [s for s in shapes if len(s) == 2]
    return {LAYERS[0].name: (len(dense), sum(s[0] for s in dense)),
            LAYERS[1].name: (len(rnn), len(rnn)),
            LAYERS[2].name: (loss.calls, loss.steps)}


def _predicted_cache_bytes(T, sizes, itemsize):
    """Bytes of x [T,B,I], f1'(z1) and a [T,B,H], f2'(z2) [T,B,R], h [T+1,B,R], dL/dz3
    [T,B,O]: each layer's per-step inputs and outputs, from the shapes alone."""
    B, I, H, R, O = (sizes[k] for k in ("batch", "input_size", "hidden_size", "state_size",
                                         "output_size"))
    return itemsize * (T * B * I + 2 * T * B * H + T * B * R + (T + 1) * B * R + T * B * O)


def _backward_working_bytes(params, cache):
    tracemalloc.start()
    try:
        grads = reference.backward(params, cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - sum(g.nbytes for g in grads.values()), grads


def _weights_in_cache(params, cache):
    found = []
    for field, arr in zip(cache._fields, cache):
        for n in PARAM_NAMES:
            if np.shares_memory(arr, params[n]) or arr.shape == params[n].shape:
                found.append(f"{field}~{n}")
    return found


def measure(intervals=INTERVALS, sizes=None, activations=DEFAULT_ACTIVATIONS, seed=0):
    """Run the reference at each interval; every figure the tour prints, as a dict."""
    sizes = dict(DEFAULT_SIZES, **(sizes or {}))
    rows = []
    for T in intervals:
        config = make_config(interval=T, activations=tuple(activations), seed=seed, **sizes)
        data = make_data(config)
        options = config.model_options
        with _instrumented(config.activations) as (counters, loss):
            _, cache = reference.forward(data.params, data.x, data.y, data.h0, **options)
        layers = _layers(counters, loss)
        working, grads = _backward_working_bytes(data.params, cache)
        rows.append({
            "interval": T, "layers": layers,
            "cache_bytes": int(cache.nbytes),
            "predicted_bytes": _predicted_cache_bytes(T, sizes, data.params["W1"].itemsize),
            "weights_in_cache": _weights_in_cache(data.params, cache),
            "grads_per_weight": {n: int(n in grads and grads[n].shape == data.params[n].shape)
                                 for n in PARAM_NAMES},
            "backward_working_bytes": int(working),
            "dh_all_steps_bytes": T * config.batch * config.state_size * 8,
        })
    return {"sizes": sizes, "activations": list(activations), "rows": rows,
            "per_step_sum": _per_step_sum(sizes, activations, seed)}


def _per_step_sum(sizes, activations, seed):
    """JAX's model gives each step its own copy of the weights: the sum of the per-step
    copies' gradients against the reference's one gradient, at the article's interval."""
    from .oracle_jax import jax_window
    config = make_config(interval=DEFAULT_INTERVAL, activations=tuple(activations), seed=seed,
                         **sizes)
    data = make_data(config)
    options = config.model_options
    ref = jax_window(data.params, data.x, data.y, data.h0, **options)
    _, grads, _ = reference.loss_and_grads(data.params, data.x, data.y, data.h0, **options)
    worst = max(float(np.max(np.abs(ref.per_step[n].sum(axis=0) - grads[n])) /
                      max(float(np.max(np.abs(grads[n]))), 1e-300)) for n in PARAM_NAMES)
    return {"interval": config.interval, "copies": config.interval, "max_rel_diff": worst}


def _bytes(n):
    return f"{n:,} B"


def format_tour(m):
    """The tour's text from ``measure()``'s figures."""
    s, rows = m["sizes"], m["rows"]
    names = [layer.name for layer in LAYERS]
    out = ["gradcheck tour: the article's four questions, answered by running the reference",
           f"sizes B={s['batch']} I={s['input_size']} H={s['hidden_size']} R={s['state_size']} "
           f"O={s['output_size']}, activations {','.join(m['activations'])}, float64; "
           f"intervals {', '.join(str(r['interval']) for r in rows)}", ""]

    out.append("1. Do we need to iterate all layers backprop_interval times?")
    out.append("   time steps each layer ran in one window (calls in brackets), counted by "
               "wrapping its activation (dense2: the loss):")
    out.append("   " + "interval".ljust(10) + "".join(n.ljust(18) for n in names))
    every = True
    for r in rows:
        cells = []
        for n in names:
            calls, steps = r["layers"][n]
            every &= steps == r["interval"]
            cells.append(f"{steps} ({calls} call{'s' if calls != 1 else ''})".ljust(18))
        out.append("   " + str(r["interval"]).ljust(10) + "".join(cells))
    out.append(f"   answer: {'Yes' if every else 'NO (measured otherwise)'}: every layer ran "
               f"exactly interval steps at every interval{'' if every else ' -- not so here'} "
               "(dense layers as one product over all steps, the RNN one step at a time).")
    out.append("")

    out.append("2. Does every layer need to hold its inputs / outputs for each step?")
    out.append("   " + "interval".ljust(10) + "cache (measured)".ljust(20) +
               "predicted by the shapes".ljust(26) + "growth per step")
    exact = all(r["cache_bytes"] == r["predicted_bytes"] for r in rows)
    slopes = set()
    for prev, r in zip([None] + rows[:-1], rows):
        step = ""
        if prev is not None:
            per = (r["cache_bytes"] - prev["cache_bytes"]) / (r["interval"] - prev["interval"])
            slopes.add(per)
            step = _bytes(int(per)) if per == int(per) else f"{per:.1f} B"
        out.append("   " + str(r["interval"]).ljust(10) + _bytes(r["cache_bytes"]).ljust(20) +
                   _bytes(r["predicted_bytes"]).ljust(26) + step)
    biggest = max(r["cache_bytes"] for r in rows)
    for r in rows:
        bar = "#" * max(1, round(40 * r["cache_bytes"] / biggest))
        out.append(f"   {str(r['interval']).rjust(3)} {bar}")
    linear = len(slopes) == 1
    out.append(f"   answer: Yes: the cache {'equals' if exact else 'DIFFERS from'} the shapes' "
               f"prediction at every interval and grows "
               + (f"linearly, {_bytes(int(slopes.pop()))} per step." if linear else
                  "NOT linearly."))
    out.append("")

    out.append("3. Do we need backprop_interval copies of the weights?")
    copies = sorted({c for r in rows for c in r["weights_in_cache"]})
    one_grad = all(all(v == 1 for v in r["grads_per_weight"].values()) for r in rows)
    p = m["per_step_sum"]
    out.append(f"   weights found in the cache at any interval: {', '.join(copies) or 'none'}; "
               f"gradients returned: one per weight, of its shape, at every interval: "
               f"{'yes' if one_grad else 'NO'}")
    out.append(f"   JAX's model, which gives each of the {p['copies']} steps its own copy of "
               f"the weights: the copies' gradients summed equal the reference's one "
               f"gradient to {p['max_rel_diff']:.1e} (relative)")
    out.append(f"   answer: {'No' if not copies and one_grad else 'measured otherwise'}: one "
               "shared set of weights whatever the interval; its gradient is the sum over "
               "the steps.")
    out.append("")

    out.append("4. Do we need to cache all the state derivatives?")
    out.append("   " + "interval".ljust(10) + "backward working memory".ljust(26) +
               "caching every step's dh would need")
    for r in rows:
        out.append("   " + str(r["interval"]).ljust(10) +
                   _bytes(r["backward_working_bytes"]).ljust(26) + _bytes(r["dh_all_steps_bytes"]))
    B, R = s["batch"], s["state_size"]
    slope, first = _working_growth(rows)
    out.append(f"   answer: {'No' if slope < 0.01 * 8 * B * R else 'measured otherwise'}: the "
               f"backward's working memory (tracemalloc peak beyond the gradients it returns) "
               f"grows by {slope:.1f} B per step from interval {first['interval']} to "
               f"{rows[-1]['interval']}, where caching every step's dh would add "
               f"{_bytes(8 * B * R)} per step: one [B, R] accumulator dh_next.")
    if rows[0]["interval"] < first["interval"]:
        out.append(f"   (interval {rows[0]['interval']} needs "
                   f"{_bytes(first['backward_working_bytes'] - rows[0]['backward_working_bytes'])}"
                   " less: with one step, no step's temporaries are alive with the next's.)")
    return "\n".join(line.rstrip() for line in out)


def _working_growth(rows):
    """(bytes per step, first row): the backward's working memory's growth from the first
    interval of 2 or more (where consecutive steps' temporaries overlap) to the last."""
    first = next((r for r in rows if r["interval"] >= 2), rows[0])
    last = rows[-1]
    span = last["interval"] - first["interval"]
    growth = last["backward_working_bytes"] - first["backward_working_bytes"]
    return (growth / span if span else 0.0), first


def write_figure(m, path):
    """Cache bytes (and the backward's working memory) against the interval, as a PNG."""
    from .figure import pyplot
    plt = pyplot()
    rows = m["rows"]
    T = [r["interval"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100, layout="constrained")
    try:
        ax.plot(T, [r["predicted_bytes"] for r in rows], "-", color="tab:gray",
                label="predicted by the shapes")
        ax.plot(T, [r["cache_bytes"] for r in rows], "o", color="tab:blue",
                label="forward cache (measured)")
        ax.plot(T, [r["backward_working_bytes"] for r in rows], "s-", color="tab:orange",
                label="backward working memory (tracemalloc)")
        ax.set_xlabel("BPTT interval (steps per window)")
        ax.set_ylabel("bytes")
        s = m["sizes"]
        ax.set_title(f"memory against the interval (B={s['batch']}, I={s['input_size']}, "
                     f"H={s['hidden_size']}, R={s['state_size']}, O={s['output_size']})",
                     fontsize=10)
        ax.legend()
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
