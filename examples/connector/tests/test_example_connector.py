"""The example connector's own tests, written as a user writes them: the correct
components hold under faults, and onceflow finds each planted bug and replays it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

import onceflow
import onceflow_example_connector  # noqa: F401  (registers the components)
from onceflow.shrinking import shrink
from onceflow.strategies import scenario_from_seed


@settings(max_examples=25, deadline=None)
@onceflow.scenario_test(operators=["example_counter"], sink="example_ledger", max_faults=3)
def test_the_connector_is_exactly_once(result: onceflow.RunResult, tmp_path: Path) -> None:
    # a fixture in a scenario test: keep what each run committed, as a user might
    (tmp_path / f"{result.digest}.txt").write_text(
        "\n".join(f"{r.id} {r.value}" for r in result.committed()))
    assert result.status in ("finished", "failed")


def _first_violation(operator: str, sink: str, seeds: int = 200) -> onceflow.Violation:
    for seed in range(seeds):
        scenario = scenario_from_seed(seed, operators=[operator], sink=sink)
        try:
            onceflow.check(onceflow.run(scenario))
        except onceflow.Violation as violation:
            return violation
    pytest.fail(f"no violation in {seeds} scenarios of {operator} -> {sink}")


@pytest.mark.parametrize("operator, sink, anomalies", [
    ("example_counter_buggy", "example_ledger", {"duplicate"}),
    ("example_counter", "example_ledger_buggy", {"lost"}),
])
def test_each_planted_bug_is_found_shrunk_and_replayed(operator: str, sink: str,
                                                       anomalies: set[str]) -> None:
    violation = _first_violation(operator, sink)
    assert violation.finding.anomaly in anomalies, violation
    assert "--plugin onceflow_example_connector" in violation.finding.replay
    scenario = onceflow.decode_token(violation.finding.token)
    smaller = shrink(scenario, finding=violation.finding, max_seconds=10)
    assert smaller is not None
    assert smaller.scenario.workload.records <= scenario.workload.records
    # the token replays to the same digest in any process
    again = onceflow.run(onceflow.decode_token(smaller.finding.token))
    assert again.digest == smaller.finding.digest
    with pytest.raises(onceflow.Violation):
        onceflow.check(again)
