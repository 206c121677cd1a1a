"""pytest configuration: hypothesis profiles chosen by GRADCHECK_PROFILE.

JAX's x64 mode is not turned on here: the oracle scopes float64 to its own calls, and
the tests run as a user's process would."""
import os

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
