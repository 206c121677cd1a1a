"""gradcheck is a guest in the user's process: importing it, and running a check, leave
JAX's flags, the allocator and the process's threads as they were.

Each observation is made in a fresh interpreter (this process has imported everything
already, and conftest.py turns JAX's x64 mode on for the tests), which prints what it saw
as one JSON line; the tests below judge it.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

# A check whose finite differences run on the worker threads: with these sizes the
# parameters W2 and U (H x R = R x R = 1024 elements) are split into >= 2 chunks
# (oracle_fd._chunks), so the pool is made, used and must be gone afterwards.
POOLED = dict(interval=4, batch=16, input_size=4, hidden_size=32, state_size=32, output_size=8)

_AROUND_A_CHECK = textwrap.dedent("""
    import json, os, sys, threading, time

    started = []                                  # every Python thread started from now on
    _start = threading.Thread.start
    def _recording_start(self):
        started.append(self.name)
        return _start(self)
    threading.Thread.start = _recording_start

    def threads():
        return sorted(t.name for t in threading.enumerate())

    def os_threads():
        return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None

    import jax, threadpoolctl

    def blas():
        return [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]

    seen = {"x64": [jax.config.jax_enable_x64], "threads": [threads()], "blas": [blas()]}
    import gradcheck
    seen["x64"].append(jax.config.jax_enable_x64)

    # the finite differences alone (no JAX call, whose runtime starts its own threads)
    from gradcheck.config import make_config
    from gradcheck.data import make_data
    from gradcheck.oracle_fd import fd_window
    config = make_config(**OPTIONS)
    data = make_data(config)
    seen["os_threads"] = [os_threads()]
    fd_window(data.params, data.x, data.y, data.h0, **config.model_options)
    # a joined Python thread's OS thread may take a moment to finish exiting: give it 2 s
    for _ in range(200):
        if os_threads() == seen["os_threads"][0]:
            break
        time.sleep(0.01)
    seen["os_threads"].append(os_threads())
    seen["fd_started"] = list(started)

    report = gradcheck.check(**OPTIONS)
    seen["passed"] = report.passed
    seen["x64"].append(jax.config.jax_enable_x64)
    seen["float_dtype"] = str(jax.numpy.ones(1).dtype)
    seen["threads"].append(threads())
    seen["blas"].append(blas())
    gradcheck.check(**OPTIONS)
    seen["threads"].append(threads())
    seen["started"] = started
    print(json.dumps(seen))
""")

_AROUND_IMPORT = textwrap.dedent("""
    import ctypes, json, sys, threading

    mallopt = []                                   # every mallopt looked up through ctypes
    class RecordingCDLL(ctypes.CDLL):
        def __getattr__(self, name):
            if name.startswith("mallopt"):
                mallopt.append(name)
            return super().__getattr__(name)
        def __getitem__(self, name):
            if str(name).startswith("mallopt"):
                mallopt.append(name)
            return super().__getitem__(name)
    ctypes.CDLL = RecordingCDLL
    ctypes.cdll = ctypes.LibraryLoader(RecordingCDLL)

    before = sorted(t.name for t in threading.enumerate())
    import gradcheck
    seen = {"mallopt": list(mallopt), "jax_imported": "jax" in sys.modules,
            "threads": [before, sorted(t.name for t in threading.enumerate())]}
    from gradcheck.oracle_fd import keep_freed_memory    # what the command line calls
    seen["asked"] = keep_freed_memory()
    seen["mallopt_when_asked"] = mallopt[len(seen["mallopt"]):]
    print(json.dumps(seen))
""")


def _observe(script, tmp_path_factory):
    """Run ``script`` in a fresh interpreter (outside the repository) and return its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path_factory.mktemp("guest"), env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def around_a_check(tmp_path_factory):
    return _observe(f"OPTIONS = {POOLED!r}\n" + _AROUND_A_CHECK, tmp_path_factory)


@pytest.fixture(scope="module")
def around_import(tmp_path_factory):
    return _observe(_AROUND_IMPORT, tmp_path_factory)


def test_jax_x64_flag_is_unchanged_by_import_and_check(around_a_check):
    assert around_a_check["passed"]
    assert around_a_check["x64"] == [False, False, False]
    assert around_a_check["float_dtype"] == "float32"


def test_a_check_leaves_no_thread_running(around_a_check):
    seen = around_a_check
    assert seen["passed"]
    assert any(name.startswith("gradcheck-fd") for name in seen["started"]), \
        f"the check never used the FD worker threads: {seen['started']}"
    before, after_check, after_second = seen["threads"]
    assert after_check == before
    assert after_second == before


def test_finite_differences_leave_no_os_thread_behind(around_a_check):
    """Counted by the kernel, so BLAS threads (threadpoolctl's limits) count too."""
    before, after = around_a_check["os_threads"]
    if before is None:
        pytest.skip("no /proc/self/task on this system")
    assert any(name.startswith("gradcheck-fd") for name in around_a_check["fd_started"])
    assert after == before


def test_blas_thread_limits_are_restored_after_a_check(around_a_check):
    before, after = around_a_check["blas"]
    assert before, "threadpoolctl found no BLAS library to limit"
    assert after == before


def test_import_sets_no_malloc_option(around_import):
    assert around_import["mallopt"] == []


def test_import_starts_no_thread(around_import):
    before, after = around_import["threads"]
    assert after == before


def test_import_does_not_import_jax(around_import):
    assert not around_import["jax_imported"]


def test_the_malloc_setting_is_an_explicit_call(around_import):
    """The recording sees mallopt when it is asked for, so its silence on import means something."""
    if not around_import["asked"]:
        pytest.skip("malloc is not glibc's here: there is no setting to make")
    assert around_import["mallopt_when_asked"] == ["mallopt", "mallopt"]


_AROUND_AN_ISOLATED_CHECK = textwrap.dedent("""
    import json, os, threading
    import gradcheck

    def children():
        pids = set()
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{{task}}/children") as f:
                pids |= set(f.read().split())
        return sorted(pids)

    before = (sorted(t.name for t in threading.enumerate()), children())
    report = gradcheck.check({spec!r}, interval=3, batch=4, input_size=3, hidden_size=4,
                             state_size=3, output_size=5)
    after = (sorted(t.name for t in threading.enumerate()), children())
    print(json.dumps({{"passed": report.passed, "isolated": report.isolation["isolated"],
                      "before": before, "after": after}}))
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_an_isolated_check_leaves_no_thread_and_no_process():
    """The worker, its memory watch and the fork server a library call starts all end
    with the check (the command line keeps its fork server for its own run)."""
    spec = os.path.join(os.path.dirname(__file__), "impls", "correct.py") + ":loop_bptt"
    out = subprocess.run([sys.executable, "-c", _AROUND_AN_ISOLATED_CHECK.format(spec=spec)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["passed"] and seen["isolated"]
    assert seen["after"] == seen["before"]
