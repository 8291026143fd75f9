"""Consistent cuts of unaligned snapshots: state plus in-flight input equals the prefix."""

from __future__ import annotations

import pytest

import onceflow
from onceflow import Violation
from onceflow.properties import consistent_cut
from onceflow.properties.checks import _in_flight_before
from onceflow.strategies import scenario_from_seed


def _checked_in_flight(result: onceflow.RunResult) -> int:
    """How many (snapshot, keyed operator) pairs had in-flight input to account for."""
    top = result.scenario.topology
    n = 0
    for snapshot in result.snapshots:
        if not snapshot.has_channel_state:
            continue
        for i, v in enumerate(top.vertices):
            flight = _in_flight_before(snapshot, top, i) if v.keyed else None
            n += bool(flight and flight[0])
    return n


def test_a_correct_unaligned_run_holds_state_plus_channel_state() -> None:
    result = onceflow.run(scenario_from_seed(195, mode="unaligned"))
    assert _checked_in_flight(result) > 0, "the scenario must keep input in flight"
    consistent_cut(result)


@pytest.mark.parametrize("seed", range(0, 300, 3))
def test_no_false_alarm_on_drawn_unaligned_runs(seed: int) -> None:
    consistent_cut(onceflow.run(scenario_from_seed(seed, mode="unaligned")))


def test_a_snapshot_that_forgets_in_flight_buffers_is_an_inconsistent_cut() -> None:
    result = onceflow.run(scenario_from_seed(195, mode="unaligned",
                                             mutants=("unaligned-misses-inflight",)))
    with pytest.raises(Violation) as info:
        consistent_cut(result)
    assert info.value.finding.property == "consistent_cut"
    assert "kept as channel state" in str(info.value)
