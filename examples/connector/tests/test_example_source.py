"""The example source's own tests: the buffered reader is exactly-once under faults, and
its planted bug (snapshotting the consumer's fetch position instead of the offset after
the last emitted record) is found, shrunk and replayed."""

from __future__ import annotations

import pytest

import onceflow
import onceflow_example_connector  # noqa: F401  (registers the components)
from onceflow.shrinking import shrink
from onceflow.strategies import scenario_from_seed


def test_the_buffered_reader_is_exactly_once() -> None:
    for seed in range(40):
        result = onceflow.run(scenario_from_seed(seed, source="example_source"))
        onceflow.check(result)


def test_the_planted_fetch_position_bug_is_found_shrunk_and_replayed() -> None:
    found = None
    for seed in range(300):
        scenario = scenario_from_seed(seed, source="example_source_buggy")
        try:
            onceflow.check(onceflow.run(scenario))
        except onceflow.Violation as violation:
            found = (scenario, violation)
            break
    if found is None:
        pytest.fail("the planted source bug was not found in 300 scenarios")
    scenario, violation = found
    assert violation.finding.anomaly == "lost", violation
    smaller = shrink(scenario, finding=violation.finding, max_seconds=10)
    assert smaller is not None
    again = onceflow.run(onceflow.decode_token(smaller.finding.token))
    assert again.digest == smaller.finding.digest
    with pytest.raises(onceflow.Violation):
        onceflow.check(again)
