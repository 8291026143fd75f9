"""Failure escalation as in Flink 2.x: failed checkpoints against
`tolerable_failed_checkpoints`, and a failed stop-with-savepoint (drained or not),
after which the job fails over to its latest checkpoint and reads the whole input."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

import onceflow
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology, Vertex,
                      Violation, Workload, run)
from onceflow.faults.plan import NotifyFault, StorageFault
from onceflow.model.failures import FailureCounter


def scenario(*faults: Any, drain: bool = True, tolerable: int = 0,
             mutants: tuple[str, ...] = ()) -> Scenario:
    return Scenario(
        topology=Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 1),
                           Vertex("reduce", "reduce", 2, "hash"),
                           Vertex("sink", "sink", 2, "forward")), max_parallelism=8),
        workload=Workload(records=200, keys=8, splits=2),
        checkpoints=CheckpointConfig(interval=8.0, tolerable_failed_checkpoints=tolerable),
        timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
        sink="two_phase", savepoints=(SavepointRequest(at=10.0, stop=True, drain=drain),),
        faults=faults, mutants=mutants)


def events(result: onceflow.RunResult, kind: str) -> list[Any]:
    return [e for e in result.trace.events if e[1] == kind]


def test_failure_counter_counts_like_flinks() -> None:
    counter = FailureCounter(1)
    assert not counter.failure(3, "subsumed")  # not counted
    assert not counter.failure(3, "declined")
    assert not counter.failure(3, "expired")  # one checkpoint counts once
    assert counter.failure(4, "async_failure")  # the second one exceeds 1
    counter.success(6)
    assert not counter.failure(5, "declined")  # older than the last success
    assert not counter.failure(7, "declined")
    counter.success(8)  # resets
    assert not counter.failure(9, "expired")


@pytest.mark.parametrize("drain", [True, False])
def test_a_declined_stop_with_savepoint_fails_the_job_over(drain: bool) -> None:
    s = scenario(StorageFault("fail_write", 0, "sink[0]", snapshot="savepoint"), drain=drain)
    result = run(s)
    (failed,) = events(result, "failed")
    assert "stop-with-savepoint" in failed[3][0]
    assert result.status == "finished" and result.restarts == 1
    assert result.stopped_with is None and result.drained_at is None
    onceflow.check(result)  # the whole input, exactly once


@pytest.mark.parametrize("drain", [True, False])
def test_an_expired_stop_with_savepoint_fails_its_tasks(drain: bool) -> None:
    """The coordinator aborts the savepoint; the sources hear of it and fail ("Stop-with-
    savepoint failed." in Flink's StreamTask), so the job fails over."""
    s = scenario(StorageFault("slow_upload", 0, "sink[0]", 5000.0, snapshot="savepoint"),
                 drain=drain)
    s = evolve(s, checkpoints=evolve(s.checkpoints, timeout=30.0))
    result = run(s)
    assert any("stop-with-savepoint" in e[3][1] for e in events(result, "crash"))
    assert result.status == "finished" and result.stopped_with is None
    onceflow.check(result)


def test_a_lost_abort_of_a_stop_with_savepoint_fails_the_source_at_the_next_trigger() -> None:
    s = scenario(StorageFault("slow_upload", 0, "sink[0]", 5000.0, snapshot="savepoint"),
                 NotifyFault("lose", 0, "*", message="aborted"))
    s = evolve(s, checkpoints=evolve(s.checkpoints, timeout=30.0))
    result = run(s)
    assert result.status == "finished" and result.drained_at is None
    onceflow.check(result)


def test_a_drained_job_that_goes_on_after_a_failed_stop_loses_input() -> None:
    """The mutant keeps the old behaviour: the job goes on with its input cut short."""
    s = scenario(StorageFault("slow_upload", 0, "sink[0]", 5000.0, snapshot="savepoint"),
                 mutants=("drained-stop-resumes",))
    s = evolve(s, checkpoints=evolve(s.checkpoints, timeout=30.0))
    result = run(s)
    assert result.status == "finished" and result.drained_at is not None
    with pytest.raises(Violation) as info:
        onceflow.check(result)
    assert info.value.finding.anomaly == "lost"
    onceflow.check(run(evolve(s, mutants=())))


def test_tolerable_failed_checkpoints_round_trips_and_validates() -> None:
    s = scenario(tolerable=3)
    assert Scenario.from_json(s.to_json()) == s
    with pytest.raises(onceflow.ScenarioError) as info:
        CheckpointConfig(tolerable_failed_checkpoints=-1)
    assert info.value.field == "tolerable_failed_checkpoints"
