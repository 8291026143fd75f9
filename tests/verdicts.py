"""A run's verdict as one comparable value, for tests that compare stores or variants."""

from __future__ import annotations

import onceflow
from onceflow import Scenario
from onceflow.properties import Violation


def verdict(s: Scenario) -> tuple[str, str]:
    """The anomaly `check()` finds ("clean" when none) and the run's digest."""
    result = onceflow.run(s)
    try:
        onceflow.check(result)
    except Violation as v:
        return v.finding.anomaly, result.digest
    return "clean", result.digest
