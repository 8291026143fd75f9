"""Hypothesis profiles for the test suite, selected by HYPOTHESIS_PROFILE.

Hypothesis never reads HYPOTHESIS_PROFILE itself; this file does.  With CI
set and no profile named, Hypothesis's own `ci` profile applies; ours of the
same name is registered over it with the same intent (derandomized, no
database) plus bounded examples and no deadline (simulations vary in time).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=50, deadline=None, derandomize=True, database=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fuzz", max_examples=100_000, deadline=None, derandomize=False,
    suppress_health_check=list(HealthCheck))

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(_profile)
