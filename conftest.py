"""pytest configuration: JAX in float64, hypothesis profiles chosen by GRADCHECK_PROFILE."""
import os

import jax

jax.config.update("jax_enable_x64", True)

from hypothesis import HealthCheck, settings  # noqa: E402

# dev: quick local runs (the default). ci: derandomized, used by .ci/run.
# thorough: long runs by hand (GRADCHECK_PROFILE=thorough pytest).
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GRADCHECK_PROFILE", "dev"))
