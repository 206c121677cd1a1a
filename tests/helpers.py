"""Small shared helpers for the tests: configs and data without going through the CLI."""
import os
import threading

from gradcheck.config import make_config
from gradcheck.data import make_data

SMALL = dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)


def small_data(**overrides):
    """(config, data) for a small configuration, overriding any option."""
    options = dict(SMALL, **overrides)
    config = make_config(**options)
    return config, make_data(config)



def assert_figures_agree(finding):
    """Every figure a diagnosis quotes agrees with the claim it supports: an error quoted
    as a multiple of a tolerance is at most 1x of it, and at most the evidence's; a
    relative error quoted as "within" float32's tolerance is at most its rtol. Also for
    the second finding."""
    import re

    from gradcheck.tolerances import tolerance
    number = r"([0-9][0-9.]*(?:e[+-]?[0-9]+)?)"
    for d in filter(None, (finding, finding and finding.second)):
        for m in re.finditer(number + r"x [^,;()]*tolerance", d.text):
            assert float(m.group(1)) <= d.evidence.get("allowance", 1.0), d.text
        if "ratio" in d.evidence:
            assert d.evidence["ratio"] <= d.evidence["allowance"], d.evidence
        for m in re.finditer(r"relative errors? up to " + number + r"[^;:]*within", d.text):
            assert float(m.group(1)) <= tolerance("jax", "float32").rtol, d.text


def processes_named(name):
    """The pids of live processes whose name (``/proc/PID/comm``, PR_SET_NAME) is
    ``name``: how a test finds a process that a worker started in a PID namespace of
    its own, where the pid it saw is not the pid outside."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue                 # a zombie is dead
        except OSError:
            continue
        found.append(int(entry))
    return found


def record_threads(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that records the name of each thread it runs
    on; returns that set of names (filled as it runs)."""
    ran_on = set()
    fn = getattr(module, name)

    def recording(*args):
        ran_on.add(threading.current_thread().name)
        return fn(*args)
    monkeypatch.setattr(module, name, recording)
    return ran_on
