"""End of bounded input: a final checkpoint commits the tail (FLIP-147).

With a checkpoint interval far beyond the run's length no periodic checkpoint
ever fires, so everything a two-phase sink writes is committed by the final
checkpoint alone: without it the whole output (the tail) would be lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload, run
from onceflow.model.simulation import RunResult
from onceflow.properties.oracle import canonical, expected_output

INTERVAL = 10_000.0


def scenario(records: int = 200) -> Scenario:
    topology = Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", 2, "hash"),
        Vertex("window", "window", 3, "hash", 3),
        Vertex("sink", "sink", 3, "forward"),
    ), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=records, keys=8, splits=2),
                    checkpoints=CheckpointConfig(interval=INTERVAL),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink="two_phase")


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def index_of(result: RunResult, pred: Any) -> list[int]:
    return [i for i, e in enumerate(result.trace.events) if pred(e)]


def test_output_is_complete_with_only_the_final_checkpoint() -> None:
    s = scenario()
    result = run(s)
    assert result.status == "finished"
    assert result.end_time < INTERVAL  # no periodic checkpoint could have fired
    assert canonical(result.committed(), s.topology) == oracle(s)
    # every window's partial tail fired at end of input and was committed
    assert any(r.id.startswith("w") for r in result.committed())


def test_final_checkpoint_is_triggered_after_end_of_input() -> None:
    s = scenario()
    result = run(s)
    events = result.trace.events
    eoi = index_of(result, lambda e: e[1] == "end_of_input")
    assert len(eoi) == sum(v.parallelism for v in s.topology.vertices)
    triggers = index_of(result, lambda e: e[1] == "trigger")
    assert triggers and triggers[0] > max(eoi)
    # the first (final) checkpoint completed, and it is the only one that committed
    completed = index_of(result, lambda e: e[1] == "completed")
    assert completed and completed[0] > max(eoi)
    final_id = events[completed[0]][3][0]
    commits = [e for e in events if e[1] == "commit"]
    assert commits and all(e[3][1] == final_id for e in commits)
    assert {e[2] for e in commits} == {f"sink[{i}]" for i in range(3)}


def test_without_the_final_checkpoint_the_tail_would_be_lost() -> None:
    """At the moment every sink has seen end of input, nothing is committed yet: a job that
    finished there (no final checkpoint) would leave read-committed readers with nothing."""
    s = scenario()
    result = run(s)
    events = result.trace.events
    last_sink_eoi = max(e[0] for e in events if e[1] == "end_of_input" and e[2].startswith("sink"))
    store = result.store
    version = sum(1 for op in store.ops if op[1] <= last_sink_eoi)
    then = store.fork(version)
    assert then.read_committed(last_sink_eoi) == []
    written = then.read_uncommitted(last_sink_eoi)
    assert canonical(written, s.topology) == oracle(s)  # all of it written, none committed
    assert not any(op[0] == "commit" for op in store.ops[:version])


def test_job_finishes_only_after_the_final_checkpoint_is_notified() -> None:
    s = scenario()
    result = run(s)
    events = result.trace.events
    finished = index_of(result, lambda e: e[1] == "finished")
    assert len(finished) == 1
    sink_eoi = index_of(result, lambda e: e[1] == "end_of_input" and e[2].startswith("sink"))
    completed_after_eoi = [i for i in index_of(result, lambda e: e[1] == "completed")
                           if i > max(sink_eoi)]
    assert completed_after_eoi and completed_after_eoi[0] < finished[0]
    final_id = events[completed_after_eoi[0]][3][0]
    # every sink was notified of it and committed before the job finished
    for i in range(3):
        sink = f"sink[{i}]"
        notified = index_of(result, lambda e, n=sink: e[1] == "notified" and e[2] == n
                            and e[3][0] == final_id)
        committed = index_of(result, lambda e, n=sink: e[1] == "commit" and e[2] == n)
        assert notified and committed and max(notified + committed) < finished[0]
    assert events[finished[0]][0] >= events[completed_after_eoi[0]][0] + s.timing.rpc_latency
    assert result.end_time == events[finished[0]][0]
    assert result.store.blocking_transaction(result.end_time) is None


@pytest.mark.parametrize("records", [0, 1])
def test_tiny_inputs_finish_and_commit(records: int) -> None:
    s = scenario(records)
    result = run(s)
    assert result.status == "finished"
    assert canonical(result.committed(), s.topology) == oracle(s)
    assert len(result.committed()) == records
