"""pytest configuration: hypothesis profiles chosen by GRADCHECK_PROFILE.

JAX's x64 mode is not turned on here: the oracle scopes float64 to its own calls, and
the tests run as a user's process would."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The command line keeps compiled executables in the user's cache folder; tests (and the
# commands they start) never touch it. tests/test_exe_cache.py turns it on in its own folders.
os.environ["GRADCHECK_NO_CACHE"] = "1"

# dev: quick local runs (the default). ci: derandomized, used by .ci/run.
# thorough: long runs by hand (GRADCHECK_PROFILE=thorough pytest).
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GRADCHECK_PROFILE", "dev"))


@pytest.fixture
def shared_dir(monkeypatch):
    """A folder the worker may write (gradcheck.sandbox.SHARE_ENV), for hostile test
    implementations that report pids or findings: in /tmp, writable by any worker uid."""
    from gradcheck.sandbox import SHARE_ENV
    folder = tempfile.mkdtemp(prefix="gradcheck-test-share-")
    os.chmod(folder, 0o777)
    monkeypatch.setenv(SHARE_ENV, folder)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox_mechanism():
    """The mechanism (gradcheck.sandbox) that this machine and privilege give a worker,
    as the fork server reports it."""
    from gradcheck.isolation import Worker, fork_server
    with fork_server(), Worker({"spec": "tests/impls/correct.py:loop_bptt"}) as worker:
        return worker.mechanism


@pytest.fixture(scope="session")
def sandbox_reach():
    """Whether a worker here can signal processes outside its own: "none" where it has
    a uid of its own or a PID namespace of its own, "user" where it can signal every
    process of the user (then an attack that signals everyone would end the tests)."""
    from gradcheck.isolation import Worker, fork_server
    with fork_server(), Worker({"spec": "tests/impls/correct.py:loop_bptt"}) as worker:
        own = worker.pid_namespace or worker.mechanism in ("namespaces+uid", "uid")
        return "none" if own else "user"
