"""The performance figures, measured in one run: ``python -m gradcheck.bench``.

First what a user waits for, in fresh processes (medians over rounds that run every
command once, in turn; each ratio is the median of the rounds' ratios):

- ``gradcheck --interval 3`` run a second time (its compiled oracle in the cache
  folder) and run for the first time ever (an empty cache folder), against a bare JAX
  program that imports jax and runs one tiny jitted function;
- ``gradcheck --help``, ``--list-bugs`` and two bad-usage errors against
  ``python -c "import numpy"``;
- a sweep of random small configurations (every size 1 to 8) checked in one new
  process, its start-up and compiles included, with an empty and a warm cache folder.

The commands use a cache folder of the benchmark's own (a temporary folder), never
the user's. Then, warm (JAX compiled, caches filled), in this process, as medians:

- the full element-wise check at the article's config and at the mid config:
  seconds, elements, elements per second, and the ratio to a naive loop that takes
  each element's central difference with two calls of the reference's forward;
- ``--mode projections`` at the large config;
- small random configurations (every size 1 to 8) checked one after another, per second;
- the reference's forward + backward against a warm ``jax.jit(jax.value_and_grad)``
  of the same window written with lax.scan (the target: parity), and with a Python
  loop (unrolled by tracing; a reported figure), at the article's and the large config;
- peak memory: the process's maximum resident size, and the NumPy allocations
  (tracemalloc) of one mid-config check.

The comparison with torch.autograd.gradcheck lives in ``bench/torch_compare.py``
(it needs torch, which gradcheck does not depend on). ``--quick`` skips the mid config
and runs fewer rounds of fresh processes; ``--startup`` measures the fresh processes only.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ._reference import reference
from .check import check
from .config import make_config
from .data import make_data

__all__ = ["ARTICLE", "MID", "LARGE", "SWEEP_CONFIGS", "conditions", "median_seconds",
           "small_configs", "main"]

ARTICLE = dict(interval=3)
MID = dict(batch=32, input_size=32, hidden_size=64, state_size=64, output_size=32, interval=8)
LARGE = dict(batch=64, input_size=64, hidden_size=128, state_size=128, output_size=64,
             interval=16)
# The naive loop is timed on this many elements drawn from all nine arrays, then
# compared per element (the whole loop would take ~3 s at the article's config).
NAIVE_SAMPLE = 300
SMALL_CONFIGS = 60
# Configurations in the fresh-process sweep: about what a hypothesis property runs with
# the `ci` profile's 300 examples shared among a few properties.
SWEEP_CONFIGS = 100
# The cells whose one-shot command is timed beside the RNN's (the same start-up targets).
STARTUP_CELLS = ("lstm", "gru")
# Rounds of fresh processes (each runs every command once); --quick runs fewer.
ROUNDS_STARTUP, ROUNDS_QUICK = 7, 3


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


def _in_float64(fn, data):
    import jax
    with jax.enable_x64(True):
        return jax.block_until_ready(fn(data.params, data.x, data.h0, data.y))


def _jax_window_fns():
    """Two plain jax.jit(value_and_grad)s of one l2/tanh/tanh/identity/mean window, the
    two ways people write the steps: a lax.scan (the reference's target is parity with
    it: one step's code, run T times, as the reference runs it), and a Python loop
    (unrolled when traced, so XLA fuses across steps; a reported figure)."""
    import jax
    import jax.numpy as jnp

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
        fns[name] = (lambda data, fn=fn: _in_float64(fn, data))
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


def small_configs(rng, n):
    """``n`` random configurations, every size (and interval, seq_len) 1 to 8."""
    sizes = ("interval", "seq_len", "batch", "input_size", "hidden_size", "state_size",
             "output_size")
    return [{k: int(rng.integers(1, 9)) for k in sizes} for _ in range(n)]


# The fresh-process sweep: argv[1] the cache folder ("-": none), argv[2] the count.
_SWEEP = """
import sys
import numpy as np
import gradcheck
from gradcheck.bench import small_configs
if sys.argv[1] != "-":
    gradcheck.enable_cache(sys.argv[1])
configs = small_configs(np.random.default_rng(1), int(sys.argv[2]))
sys.exit(0 if all(gradcheck.check(**options).passed for options in configs) else 1)
"""


def _gradcheck_command():
    """How a user runs the command: the installed script, else ``python -m gradcheck``."""
    script = Path(sys.executable).with_name("gradcheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gradcheck"]


def _fresh(command, env, expect, empty=None):
    """Wall seconds of one new process running ``command`` (after emptying the folder
    ``empty``, if given); its exit code must be ``expect``."""
    if empty is not None:
        shutil.rmtree(empty, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != expect:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}, not {expect}: "
                           f"{done.stderr.decode(errors='replace')[-500:]}")
    return seconds


def _startup(rounds):
    """Print the fresh-process figures: wall seconds and ratios to the yardsticks."""
    gc = _gradcheck_command()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="gradcheck-bench-") as tmp:
        warm, empty = os.path.join(tmp, "warm"), os.path.join(tmp, "empty")
        env = {k: v for k, v in os.environ.items() if k != "GRADCHECK_NO_CACHE"}
        env_warm, env_empty = dict(env, GRADCHECK_CACHE_DIR=warm), dict(env,
                                                                        GRADCHECK_CACHE_DIR=empty)
        # name: (command, environment, exit code, folder emptied before each run)
        runs = {
            "numpy": ([py, "-c", "import numpy"], env, 0, None),
            "jax": ([py, "-c", "import jax, jax.numpy as jnp; "
                     "jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()"], env, 0, None),
            "help": (gc + ["--help"], env_warm, 0, None),
            "list-bugs": (gc + ["--list-bugs"], env_warm, 0, None),
            "bad flag": (gc + ["--interval", "x"], env_warm, 2, None),
            "bad value": (gc + ["--interval", "3", "--loss", "l3"], env_warm, 2, None),
            "second run": (gc + ["--interval", "3"], env_warm, 0, None),
            "first run": (gc + ["--interval", "3"], env_empty, 0, empty),
        }
        for cell in STARTUP_CELLS:
            command = gc + ["--cell", cell, "--interval", "3"]
            runs[f"second run {cell}"] = (command, env_warm, 0, None)
            runs[f"first run {cell}"] = (command, env_empty, 0, empty)
        runs.update({
            "sweep empty": ([py, "-c", _SWEEP, empty, str(SWEEP_CONFIGS)], env, 0, empty),
            "sweep warm": ([py, "-c", _SWEEP, warm, str(SWEEP_CONFIGS)], env, 0, None),
        })
        for name in ("second run", "sweep warm") + tuple(f"second run {c}"
                                                        for c in STARTUP_CELLS):
            _fresh(*runs[name])                                 # fill the warm folder
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                times[name].append(_fresh(*run))

    def med(name):
        return statistics.median(times[name])

    def ratio(name, yardstick):
        return statistics.median(a / b for a, b in zip(times[name], times[yardstick]))

    print(f"start-up, fresh processes (medians of {rounds} rounds; ratio: median of the "
          f"rounds' ratios):")
    _row('yardstick: python -c "import numpy"', f"{med('numpy'):.3f}", "s")
    for name, label in (("help", "gradcheck --help"), ("list-bugs", "gradcheck --list-bugs"),
                        ("bad flag", "gradcheck --interval x (bad usage)"),
                        ("bad value", "gradcheck --interval 3 --loss l3 (bad usage)")):
        _row(label, f"{med(name):.3f}", "s", f"{ratio(name, 'numpy'):.2f}x numpy (target <= 2.5)")
    _row("yardstick: bare JAX (import, one tiny jitted call)", f"{med('jax'):.3f}", "s")
    _row("gradcheck --interval 3, second run (cache filled)", f"{med('second run'):.3f}", "s",
         f"{ratio('second run', 'jax'):.2f}x bare JAX (target <= 1.4)")
    _row("gradcheck --interval 3, first run ever (empty cache)", f"{med('first run'):.3f}", "s",
         f"{ratio('first run', 'jax'):.2f}x bare JAX (target <= 3.5)")
    for cell in STARTUP_CELLS:
        for run, target in (("second run", 1.4), ("first run", 3.5)):
            name = f"{run} {cell}"
            _row(f"gradcheck --cell {cell} --interval 3, {run}", f"{med(name):.3f}", "s",
                 f"{ratio(name, 'jax'):.2f}x bare JAX (target <= {target}); "
                 f"{ratio(name, run):.2f}x the rnn's")
    for name, label in (("sweep empty", "empty cache (compiles included)"),
                        ("sweep warm", "warm cache")):
        _row(f"sweep, {SWEEP_CONFIGS} small configs, {label}",
             f"{SWEEP_CONFIGS / med(name):.1f}", "per s",
             f"{med(name):.2f} s for the process (target >= 30 per s)")


def conditions():
    """When and on what the figures are measured: the date (UTC), the cores this process
    may use and the load average, printed at the start and the end of a run (a loaded
    machine slows every figure; the README quotes them with the figures)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{when}, {cores} cores, load average {load:.1f}"


def _row(name, value, unit, note=""):
    print(f"  {name:52s} {value:>12s} {unit:10s} {note}")


def _fd_error(config):
    """The cell's finite-difference oracle against its JAX oracle on the reference's window:
    the largest max |fd - jax| / max |jax| over the arrays."""
    from .data import make_data
    from .model import side
    data = make_data(config)
    states = tuple(data.states.values())
    options = dict(config.model_options, **config.model.options)
    args = (data.params, data.x, data.y, data.h0) + states
    jax = side(config.cell, "jax").jax_window(*args, **options)
    fd = side(config.cell, "fd").fd_window(*args, **options)
    return max(float(np.max(np.abs(fd.grads[n] - jax.grads[n]))
                     / max(float(np.max(np.abs(jax.grads[n]))), 1e-300)) for n in fd.grads)


# The cells timed, with their options: (label, cell, options).
CELLS = (("lstm", "lstm", {}), ("gru", "gru", {}), ("gru --reset-after", "gru",
                                                      {"reset_after": True}))
# Rounds of the cells' warm checks: each round checks the RNN and every cell once, in turn.
CELL_ROUNDS = 7


def cells(options, rounds=CELL_ROUNDS):
    """Warm full checks of each cell at ``options``'s sizes, against the RNN's (the median
    of each round's ratio, so the machine's drift hits both alike), and each cell's
    finite-difference error against JAX (the issue's target: the LSTM at most 3x the RNN)."""
    runs = {"rnn": lambda: check(**options)}
    runs.update({label: (lambda name=name, o=cell_options: check(**options, cell=name, **o))
                 for label, name, cell_options in CELLS})
    times = {label: [] for label in runs}
    for fn in runs.values():                              # untimed: compiles, caches
        fn()
    for _ in range(rounds):
        for label, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    print(f"cells (warm full check of the reference, medians of {rounds} rounds; its FD "
          f"oracle's error vs JAX in float64):")
    _row("rnn", f"{statistics.median(times['rnn']) * 1e3:.1f}", "ms")
    for label, name, cell_options in CELLS:
        ratio = statistics.median(a / b for a, b in zip(times[label], times["rnn"]))
        config = make_config(**options, cell=name, cell_options=tuple(cell_options))
        _row(label, f"{statistics.median(times[label]) * 1e3:.1f}", "ms",
             f"{ratio:.2f}x the rnn's (target <= 3); FD error {_fd_error(config):.1e} of "
             f"each array's largest element")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gradcheck.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip the mid config; fewer rounds of fresh processes")
    parser.add_argument("--startup", action="store_true",
                        help="only the fresh-process figures")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"gradcheck benchmark (reference implementation, float64): {conditions()}")
    _startup(ROUNDS_QUICK if args.quick else ROUNDS_STARTUP)
    if args.startup:
        return 0
    print("warm, in this process (medians):")

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

    cells(ARTICLE)

    print("--mode projections:")
    n = make_config(**LARGE).n_elements
    seconds = median_seconds(lambda: check(**LARGE, mode="projections"), 5)
    _row(f"large: {n:,} elements vs JAX, 2 directions per array", f"{seconds * 1e3:.1f}", "ms")

    print("small random configurations (every size 1 to 8), one after another:")
    for k in range(1, 9):                                 # warm: one compile per bucket
        check(interval=k, batch=k, input_size=k, hidden_size=k, state_size=k, output_size=k)
    configs = small_configs(rng, SMALL_CONFIGS)
    start = time.perf_counter()
    passed = sum(check(**options).passed for options in configs)
    seconds = time.perf_counter() - start
    _row(f"{SMALL_CONFIGS} configurations ({passed} passed)", f"{SMALL_CONFIGS / seconds:.1f}",
         "per s")

    print("reference forward + backward vs warm jax.jit(value_and_grad), same window:")
    jax_fns = _jax_window_fns()
    for label, options in (("article", ARTICLE), ("large", LARGE)):
        med = _reference_vs_jax(options, jax_fns)
        ours = med["reference"]
        _row(f"{label}: reference", f"{ours * 1e3:.2f}", "ms",
             f"jax scan {med['scan'] * 1e3:.2f} ms: {ours / med['scan']:.2f}x (target <= 1); "
             f"jax loop {med['loop'] * 1e3:.2f} ms: {ours / med['loop']:.2f}x (reported)")

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
    print(f"done: {conditions()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
