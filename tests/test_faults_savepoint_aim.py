"""PhaseCrash.snapshot: a crash can wait for a savepoint's phase instead of any snapshot's."""

from __future__ import annotations

import pytest

import onceflow
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, ScenarioError, Timing,
                      Topology, Vertex, Workload)
from onceflow.faults.plan import PhaseCrash


def scenario(*faults: PhaseCrash) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("reduce", "reduce", 2, "hash"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=200, keys=4, splits=2),
                    checkpoints=CheckpointConfig(interval=3.0), sink="two_phase",
                    timing=Timing(record_cost=0.1, latency=0.5),
                    savepoints=(SavepointRequest(at=7.0),), faults=faults)


def test_a_savepoint_aimed_crash_waits_for_the_savepoint() -> None:
    result = onceflow.run(scenario(PhaseCrash("after_sync_snapshot", "reduce[0]", 0, "savepoint")))
    savepoint_ids = {s.id for s in result.snapshots if s.kind == "savepoint"} | set(
        result.savepoint_requests)
    (fired,) = result.faults_fired
    assert fired["checkpoint"] in savepoint_ids
    # without the aim, the first checkpoint to reach the phase takes the crash
    plain = onceflow.run(scenario(PhaseCrash("after_sync_snapshot", "reduce[0]", 0)))
    (first,) = plain.faults_fired
    assert first["checkpoint"] not in savepoint_ids and first["time"] < fired["time"]
    onceflow.check(result)  # the correct model recovers from either
    onceflow.check(plain)


def test_the_aim_round_trips_and_is_validated() -> None:
    s = scenario(PhaseCrash("pre_commit", "sink[1]", 0, "savepoint"))
    assert Scenario.from_json(s.to_json()) == s
    with pytest.raises(ScenarioError, match="snapshot"):
        scenario(PhaseCrash("pre_commit", "sink[1]", 0, "stop"))
