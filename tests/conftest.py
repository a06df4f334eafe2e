"""Hypothesis profiles: ``ci`` (built-in, derandomised; used when CI=true), ``dev``, ``thorough``.

Choose one locally with HYPOTHESIS_PROFILE=thorough pytest.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))
