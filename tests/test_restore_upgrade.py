"""Restoring a savepoint into an upgraded job graph: state is matched by uid."""

from __future__ import annotations

import pytest

import onceflow

from onceflow import (CheckpointConfig, RestoreError, SavepointRequest, Scenario, Timing,
                      Topology, Vertex, Workload, restore, run)
from onceflow.properties.oracle import canonical, expected_output


def _topology(*middle: Vertex, maxp: int = 8, p: int = 2) -> Topology:
    # the source and sink keep parallelism p; the middle vertices bring their own
    return Topology((Vertex("source", "source", p), *middle, Vertex("sink", "sink", p, "forward")),
                    max_parallelism=maxp)


REDUCE = Vertex("reduce", "reduce", 2, "hash")


def _result():
    scenario = Scenario(topology=_topology(REDUCE), workload=Workload(records=120, keys=6, splits=2),
                        checkpoints=CheckpointConfig(mode="aligned", interval=8.0),
                        timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                        sink="idempotent", savepoints=(SavepointRequest(at=5),))
    result = run(scenario)
    assert result.savepoints, "the scenario must take its savepoint"
    return result


def test_a_savepoint_restores_into_a_job_with_a_new_stateless_operator() -> None:
    result = _result()
    upgraded = _topology(Vertex("map", "map", 2, "forward", 0), REDUCE)
    restored = restore(result, result.savepoints[0], topology=upgraded)
    assert restored.status == "finished"
    assert restored.scenario.topology == upgraded
    # map with param 0 leaves values alone: the output is the original job's
    want = canonical([r for rs in expected_output(result.scenario).values() for r in rs],
                     result.scenario.topology)
    got = canonical(restored.store.read_committed(restored.end_time), result.scenario.topology)
    assert got == want


def test_a_job_without_a_stateful_uid_is_refused() -> None:
    result = _result()
    with pytest.raises(RestoreError, match="uid 'reduce'"):
        restore(result, result.savepoints[0], topology=_topology(Vertex("map", "map", 2, "forward")))


def test_changed_max_parallelism_is_refused() -> None:
    result = _result()
    with pytest.raises(RestoreError, match="max parallelism never changes"):
        restore(result, result.savepoints[0], topology=_topology(REDUCE, maxp=16))


def test_a_checkpoint_is_rescaled_through_a_new_topology_as_flink_does() -> None:
    # Flink restores retained checkpoints at another parallelism too (the autoscaler does)
    result = _result()
    checkpoint = next(s for s in result.snapshots if s.kind == "checkpoint")
    restored = restore(result, checkpoint,
                       topology=_topology(Vertex("reduce", "reduce", 3, "hash"), p=3))
    assert restored.status == "finished"
    onceflow.properties.partitioning(restored)
    onceflow.properties.exactly_once(restored)


def test_topology_must_be_a_topology() -> None:
    result = _result()
    with pytest.raises(RestoreError, match="onceflow.Topology"):
        restore(result, result.savepoints[0], topology="source -> sink")  # type: ignore[arg-type]
