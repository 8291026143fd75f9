"""A crash restarts the whole job from the latest completed checkpoint."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.model.job import Job
from onceflow.model.records import split_logs
from onceflow.properties.oracle import cut_offsets
from onceflow.model.simulation import RunResult, _finish
from onceflow.model.task import TaskCrash
from onceflow.properties.oracle import canonical, expected_output


def scenario(sink: str) -> Scenario:
    topology = Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", 2, "hash"),
        Vertex("sink", "sink", 2, "forward"),
    ), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(interval=8),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4), sink=sink)


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def crash_once_at(task_name: str, phase: str, checkpoint_id: int) -> tuple[Any, list[float]]:
    fired: list[float] = []

    def hook(task: Any, name: str, cid: int) -> None:
        if task.name == task_name and name == phase and cid == checkpoint_id and not fired:
            fired.append(task.env.now)
            raise TaskCrash(f"injected at {phase} of {checkpoint_id}")

    return hook, fired


def run_job(s: Scenario, hooks: tuple[Any, ...] = (), crash_at: float | None = None) -> RunResult:
    job = Job(s)
    job.phase_hooks.extend(hooks)
    if crash_at is not None:
        job.later(crash_at, job.fail, None, "timed crash")
    job.run()
    return _finish(job, s)


def kinds(result: RunResult) -> list[str]:
    return [k for _, k, _, _ in result.trace.events]


def completed_before(result: RunResult, kind: str) -> list[int]:
    """Ids of checkpoints completed before the first event of `kind`."""
    out: list[int] = []
    for _, k, _, d in result.trace.events:
        if k == kind:
            return out
        if k == "completed" and d[1] == "checkpoint":
            out.append(d[0])
    raise AssertionError(f"no {kind!r} event")


@pytest.mark.parametrize("sink", ["two_phase", "append", "idempotent"])
def test_crash_at_snapshot_restarts_from_latest_completed_checkpoint(sink: str) -> None:
    s = scenario(sink)
    hook, fired = crash_once_at("sink[0]", "before_snapshot", 2)
    result = run_job(s, (hook,))
    assert fired, "the crash never fired"
    assert result.status == "finished"
    assert result.restarts == 1
    events = result.trace.events
    k = kinds(result)
    assert k.index("failed") < k.index("restart") < k.index("finished")
    failed = next(e for e in events if e[1] == "failed")
    assert failed[2] == "sink[0]" and failed[0] == fired[0]
    done = completed_before(result, "failed")
    assert done == [1]
    restart = next(e for e in events if e[1] == "restart")
    assert restart[3] == (1, max(done))
    assert restart[0] == failed[0] + s.restart.delay
    deploys = [e[3] for e in events if e[1] == "deploy"]
    assert deploys == [(1, "start"), (2, "checkpoint 1")]
    # the pending checkpoint 2 of the failed attempt was aborted, never completed
    assert ("aborted", (2, "failover")) in [(e[1], e[3]) for e in events]
    assert 2 not in [e[3][0] for e in events if e[1] == "completed"]


def test_two_phase_sink_output_is_exactly_once_after_crash() -> None:
    s = scenario("two_phase")
    hook, fired = crash_once_at("sink[0]", "pre_commit", 2)
    result = run_job(s, (hook,))
    assert fired and result.status == "finished" and result.restarts == 1
    committed = result.committed()
    assert canonical(committed, s.topology) == oracle(s)
    assert len(committed) == len({r.id for r in committed}) == s.workload.records
    # the open transactions of the failed attempt were aborted (by the sinks' close() as
    # the attempt ended, as Flink's two-phase sinks do, or on restore), never committed
    first = {txn for txn in result.store.txns if ".a1." in txn}
    pre_committed = {d[0] for _, k, _, d in result.trace.events if k == "pre_commit"}
    aborted = first - pre_committed
    assert aborted
    assert all(result.store.txns[txn].state == "aborted" for txn in aborted)
    assert not {e.txn for e in result.committed_entries()} & aborted


def test_append_sink_duplicates_the_replayed_records() -> None:
    s = scenario("append")
    hook, fired = crash_once_at("sink[0]", "before_snapshot", 2)
    result = run_job(s, (hook,))
    assert fired and result.status == "finished"
    committed = result.committed()
    counts = Counter(r.id for r in committed)
    all_ids = {r.id for log in split_logs(s.workload) for r in log}
    assert set(counts) == all_ids  # nothing lost
    dups = {i for i, n in counts.items() if n > 1}
    assert dups, "an append sink must duplicate the replay after a failover"
    assert max(counts.values()) == 2  # one failover: at most one replay
    assert canonical(committed, s.topology) != oracle(s)
    # exactly the records after checkpoint 1's cut are replayed, nothing before it
    cut = cut_offsets(s, next(c for c in result.checkpoints if c.id == 1))
    by_id = {r.id: r for log in split_logs(s.workload) for r in log}
    assert all(by_id[i].offset >= cut[by_id[i].split] for i in dups)


def test_timed_crash_restarts_from_the_latest_of_several_checkpoints() -> None:
    s = scenario("two_phase")
    clean = run_job(s)
    assert len(clean.checkpoints) >= 2
    # crash just after the second checkpoint completed (the run is identical up to there)
    crash_at = clean.checkpoints[1].completed + 0.5
    assert crash_at < clean.end_time
    result = run_job(s, crash_at=crash_at)
    assert result.status == "finished" and result.restarts == 1
    events = result.trace.events
    failed = next(e for e in events if e[1] == "failed")
    assert failed[0] == crash_at and failed[2] == "job"
    done = completed_before(result, "failed")
    assert len(done) >= 2, done
    restart = next(e for e in events if e[1] == "restart")
    assert restart[3][1] == done[-1]
    assert (2, f"checkpoint {done[-1]}") in [e[3] for e in events if e[1] == "deploy"]
    assert canonical(result.committed(), s.topology) == oracle(s)


def test_crash_before_any_checkpoint_restarts_from_the_beginning() -> None:
    s = scenario("two_phase")
    result = run_job(s, crash_at=5.0)
    events = result.trace.events
    assert completed_before(result, "failed") == []
    restart = next(e for e in events if e[1] == "restart")
    assert restart[3] == (1, None)
    assert [e[3] for e in events if e[1] == "deploy"][1] == (2, "start")
    assert result.status == "finished"
    assert canonical(result.committed(), s.topology) == oracle(s)
