"""The cost of isolation, measured in one run: ``python -m gradcheck.bench_isolation``
(also printed by ``python -m gradcheck.bench``).

Prints, warm (JAX compiled, the fork server running), as medians:

- the worker's start-up: from asking for a worker to the implementation loaded and
  ready, as a fork of the fork server (every check after the first in a process) and
  as the fork server's own start (a fresh interpreter importing NumPy: what the first
  isolated check of a process waits for, when nothing overlaps it);
- the article's full check of the same implementation (the reference, loaded by its
  module name) through the isolated path and in-process, and their ratio.
"""
import statistics
import sys
import time

from .check import check
from .isolation import Worker, fresh_fork_server, start_fork_server

__all__ = ["SPEC", "worker_startup_seconds", "fork_server_startup_seconds",
           "isolated_vs_in_process", "main"]

SPEC = "reference:loss_and_grads"
ARTICLE = dict(interval=3)


def worker_startup_seconds(repeats=15):
    """Median seconds from Worker() to the implementation loaded (a fork of the server)."""
    start_fork_server()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with Worker({"spec": SPEC}) as worker:
            assert worker.load() is None
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def fork_server_startup_seconds(repeats=5):
    """Median seconds for a new fork server to be ready to fork (Python and NumPy
    loaded), then one worker from it."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with fresh_fork_server(), Worker({"spec": SPEC}) as worker:
            assert worker.load() is None
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def isolated_vs_in_process(options=ARTICLE, blocks=4, per_block=6):
    """{name: (median, fastest)} seconds of the full check, isolated and in-process, in
    alternating blocks of calls (the fastest is what a busy machine's other load leaves
    least of). Blocks, not single calls: a check right after one of the other path runs
    on what that one left (measured: an isolated check right after an in-process one
    took ~1.7x its time in a block of its own), which says nothing of either path."""
    runs = {"isolated": lambda: check(SPEC, **options),
            "in-process": lambda: check(SPEC, in_process=True, **options)}
    times = {name: [] for name in runs}
    for fn in runs.values():
        assert fn().passed                                # warm-up: JAX compiles
    for _ in range(blocks):
        for name, fn in runs.items():
            for _ in range(per_block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def main(argv=None):
    print("isolation (the implementation in a worker process), warm medians:")
    fork = worker_startup_seconds()
    fresh = fork_server_startup_seconds()
    print(f"  {'worker start-up, forked from the fork server':52s} {fork * 1e3:>12.1f} ms"
          f"         target <= 300 ms")
    print(f"  {'fork server start-up (fresh Python + NumPy) + worker':52s} "
          f"{fresh * 1e3:>12.1f} ms         (the first isolated check of a process)")
    got = isolated_vs_in_process()
    (iso, iso_min), (own, own_min) = got["isolated"], got["in-process"]
    print(f"  {'article check: isolated':52s} {iso * 1e3:>12.1f} ms"
          f"         in-process {own * 1e3:.1f} ms; ratio {iso / own:.2f}, "
          f"{(iso - own) * 1e3:.0f} ms added (target: <= 1.3x or <= 30 ms added, whichever "
          f"allows more)")
    print(f"  {'article check, fastest of the runs: isolated':52s} {iso_min * 1e3:>12.1f} ms"
          f"         in-process {own_min * 1e3:.1f} ms; ratio {iso_min / own_min:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
