"""The performance figures, measured in one run: ``python -m gradcheck.bench``.

Prints, for this machine, warm (JAX compiled, caches filled), as medians:

- the full element-wise check at the article's config and at the mid config:
  seconds, elements, elements per second, and the ratio to a naive loop that takes
  each element's central difference with two calls of the reference's forward;
- ``--mode projections`` at the large config;
- small random configurations (every size 1 to 9) checked one after another, per second;
- the reference's forward + backward against a warm ``jax.jit(jax.value_and_grad)``
  of the same window, written with lax.scan and with a Python loop, at the article's
  and the large config (the ratio is to the faster);
- peak memory: the process's maximum resident size, and the NumPy allocations
  (tracemalloc) of one mid-config check.

The comparison with torch.autograd.gradcheck lives in ``bench/torch_compare.py``
(it needs torch, which gradcheck does not depend on). ``--quick`` skips the mid config.
"""
import argparse
import resource
import statistics
import sys
import time
import tracemalloc

import numpy as np

import reference

from .check import check
from .config import make_config
from .data import make_data

__all__ = ["ARTICLE", "MID", "LARGE", "median_seconds", "main"]

ARTICLE = dict(interval=3)
MID = dict(batch=32, input_size=32, hidden_size=64, state_size=64, output_size=32, interval=8)
LARGE = dict(batch=64, input_size=64, hidden_size=128, state_size=128, output_size=64,
             interval=16)
# The naive loop is timed on this many elements drawn from all nine arrays, then
# compared per element (the whole loop would take ~3 s at the article's config).
NAIVE_SAMPLE = 300
SMALL_CONFIGS = 60


def median_seconds(fn, repeats):
    """Median seconds of ``repeats`` calls of fn, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _naive_seconds_per_element(options, rng):
    """One element at a time: copy, move by +/- step, two reference forwards."""
    config = make_config(**options)
    data = make_data(config)
    arrays = dict(data.params, x=data.x, h0=data.h0)
    names = list(arrays)
    sizes = np.array([arrays[n].size for n in names])
    picks = rng.choice(sizes.sum(), size=NAIVE_SAMPLE, replace=False)
    bounds = np.cumsum(sizes)
    opts = config.model_options

    def loss(moved):
        params = {n: moved[n] for n in reference.PARAM_NAMES}
        return reference.forward(params, moved["x"], data.y, moved["h0"], **opts)[0]

    start = time.perf_counter()
    for flat in picks:
        k = int(np.searchsorted(bounds, flat, side="right"))
        name, i = names[k], flat - (bounds[k] - sizes[k])
        moved = dict(arrays)
        values = []
        for sign in (1.0, -1.0):
            a = arrays[name].copy()
            a.flat[i] += sign * 6e-6
            moved[name] = a
            values.append(loss(moved))
        _ = (values[0] - values[1]) / 1.2e-5
    return (time.perf_counter() - start) / NAIVE_SAMPLE


def _jax_window_fns():
    """Two plain jax.jit(value_and_grad)s of one l2/tanh/tanh/identity/mean window, the
    two ways people write the steps: a lax.scan, and a Python loop (unrolled when traced,
    so XLA fuses across steps; the faster of the two at both configs here)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def step(params, h, x_t, y_t):
        a = jnp.tanh(x_t @ params["W1"] + params["b1"])
        h = jnp.tanh(a @ params["W2"] + h @ params["U"] + params["b2"])
        z3 = h @ params["W3"] + params["b3"]
        return h, 0.5 * jnp.sum((z3 - y_t) ** 2)

    def scanned(params, x, h0, y):
        h_last, losses = jax.lax.scan(lambda h, xy: step(params, h, *xy), h0, (x, y))
        return jnp.sum(losses) / x.shape[1], h_last

    def looped(params, x, h0, y):
        h, total = h0, 0.0
        for t in range(x.shape[0]):
            h, loss_t = step(params, h, x[t], y[t])
            total = total + loss_t
        return total / x.shape[1], h

    fns = {}
    for name, window_loss in (("scan", scanned), ("loop", looped)):
        fn = jax.jit(jax.value_and_grad(window_loss, argnums=(0, 1, 2), has_aux=True))
        fns[name] = (lambda data, fn=fn:
                     jax.block_until_ready(fn(data.params, data.x, data.h0, data.y)))
    return fns


# Alternating blocks of calls, not single calls: a call right after the other
# implementation's runs on the caches it left (measured here: JAX's window is ~1.5x
# slower right after a reference call than right after itself). Each block starts with
# one untimed call; the rounds alternate, so the machine's drift hits all alike.
ROUNDS, BLOCK = 15, 10


def _reference_vs_jax(options, jax_fns):
    """Median seconds per call of the reference and of each JAX function, same window."""
    config = make_config(**options)
    data = make_data(config)
    opts = config.model_options
    runs = {"reference": lambda: reference.loss_and_grads(data.params, data.x, data.y,
                                                          data.h0, **opts)}
    runs.update({name: (lambda fn=fn: fn(data)) for name, fn in jax_fns.items()})
    times = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            fn()                                          # untimed (the first compiles)
            for _ in range(BLOCK):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _small_configs(rng, n):
    sizes = ("interval", "batch", "input_size", "hidden_size", "state_size", "output_size")
    out = []
    for _ in range(n):
        options = {k: int(rng.integers(1, 10)) for k in sizes}
        options["seq_len"] = int(rng.integers(1, 10))
        out.append(options)
    return out


def _row(name, value, unit, note=""):
    print(f"  {name:52s} {value:>12s} {unit:10s} {note}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gradcheck.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the mid config")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("gradcheck benchmark (warm medians; reference implementation, float64)")

    print("full element-wise check (JAX and finite differences, every element):")
    for label, options, repeats in (("article", ARTICLE, 7), ("mid", MID, 3)):
        if label == "mid" and args.quick:
            continue
        n = make_config(**options).n_elements
        seconds = median_seconds(lambda: check(**options), repeats)
        naive = _naive_seconds_per_element(options, rng)
        _row(f"{label}: {n:,} elements", f"{seconds * 1e3:.1f}", "ms")
        _row(f"{label}: elements per second", f"{n / seconds:,.0f}", "/s")
        _row(f"{label}: naive loop (2 reference forwards per element)",
             f"{naive * 1e6:.1f}", "us/elem", f"gradcheck {seconds / n * 1e6:.2f} us/elem, "
             f"{naive * n / seconds:.0f}x faster")

    print("--mode projections:")
    n = make_config(**LARGE).n_elements
    seconds = median_seconds(lambda: check(**LARGE, mode="projections"), 5)
    _row(f"large: {n:,} elements vs JAX, 2 directions per array", f"{seconds * 1e3:.1f}", "ms")

    print("small random configurations (every size 1 to 9), one after another:")
    for k in range(1, 10):                                # warm: one compile per bucket
        check(interval=k, batch=k, input_size=k, hidden_size=k, state_size=k, output_size=k)
    configs = _small_configs(rng, SMALL_CONFIGS)
    start = time.perf_counter()
    passed = sum(check(**options).passed for options in configs)
    seconds = time.perf_counter() - start
    _row(f"{SMALL_CONFIGS} configurations ({passed} passed)", f"{SMALL_CONFIGS / seconds:.1f}",
         "per s")

    print("reference forward + backward vs warm jax.jit(value_and_grad), same window:")
    jax_fns = _jax_window_fns()
    for label, options in (("article", ARTICLE), ("large", LARGE)):
        med = _reference_vs_jax(options, jax_fns)
        ours = med.pop("reference")
        fastest = min(med, key=med.get)
        _row(f"{label}: reference", f"{ours * 1e3:.2f}", "ms",
             ", ".join(f"jax {n} {t * 1e3:.2f} ms" for n, t in med.items())
             + f"; ratio to the faster ({fastest}) {ours / med[fastest]:.2f}")

    from . import bench_isolation          # the cost of running --impl in a worker
    bench_isolation.main([])

    print("memory:")
    if not args.quick:
        tracemalloc.start()
        check(**MID)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        _row("mid check: peak NumPy allocations (tracemalloc)", f"{peak / 2**20:.0f}", "MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    _row("process maximum resident size", f"{rss:.0f}", "MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
