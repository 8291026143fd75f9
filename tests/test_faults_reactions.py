"""Each fault kind, hand-aimed at a small job, and the model's reaction to it.

One scenario per fault kind (and per effect): the fault fires, the model
reacts as Flink does (failover from the latest completed checkpoint, an aborted
checkpoint, a retried commit, coordinator recovery, a late or lost notification
made good by the next one, in-flight data in unaligned checkpoints), and the
correct model still commits exactly-once output where Flink promises it
(aligned or unaligned barriers, two-phase sink): `onceflow.check` passes.

Times are taken from the same scenario run without the fault, so a fault lands
between two known checkpoints however the model's timing evolves: the faulty
run is identical to the clean one up to the fault.
"""

from __future__ import annotations

from typing import Any

import pytest

import onceflow
from onceflow import (CheckpointConfig, RunResult, Scenario, Timing, Topology, Vertex, Workload,
                      restore, run)
from onceflow.faults.plan import (SLOTS_PER_WORKER, CoordinatorCrash, Crash, LatencySpike,
                                  NotifyFault, SlowSubtask, StorageFault, StoreFault, WorkerCrash)
from onceflow.model.sinks import COMMIT_RETRIES
from onceflow.properties.oracle import canonical, expected_output

Event = tuple[float, str, str, tuple[Any, ...]]


# -- the job and its helpers ---------------------------------------------------------------------

def topology(map_edge: str = "forward") -> Topology:
    return Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, map_edge, 1),
        Vertex("reduce", "reduce", 2, "hash"),
        Vertex("sink", "sink", 2, "forward"),
    ), max_parallelism=8)


def scenario(*faults: Any, mode: str = "aligned", durable_store: bool = True,
             timeout: float = 2000.0, map_edge: str = "forward") -> Scenario:
    return Scenario(topology=topology(map_edge), workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(mode=mode, interval=8.0, timeout=timeout,
                                                 durable_store=durable_store),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink="two_phase", faults=faults)


def clean(**kw: Any) -> RunResult:
    """The scenario without faults: its checkpoint times place the faults."""
    result = run(scenario(**kw))
    assert result.status == "finished" and len(result.checkpoints) >= 3, result
    return result


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def events(result: RunResult, kind: str, where: str | None = None) -> list[Event]:
    return [e for e in result.trace.events if e[1] == kind and (where is None or e[2] == where)]


def fired(result: RunResult, kind: str, **match: Any) -> dict[str, Any]:
    """The one faults_fired entry of `kind` (and the given fields)."""
    hits = [f for f in result.faults_fired
            if f["kind"] == kind and all(f[k] == v for k, v in match.items())]
    assert len(hits) == 1, f"expected one {kind} {match} to fire, got {list(result.faults_fired)}"
    return hits[0]


def failure_after(result: RunResult, entry: dict[str, Any]) -> Event:
    """The first 'failed' event after the trace event of fault `entry`."""
    evs = result.trace.events
    start = next(i for i, e in enumerate(evs) if e[1] == "fault" and e[3][-1] == entry["index"])
    return next(e for e in evs[start:] if e[1] == "failed")


def completed_checkpoints_before(result: RunResult, event: Event) -> list[int]:
    evs = result.trace.events
    return [e[3][0] for e in evs[:evs.index(event)]
            if e[1] == "completed" and e[3][1] == "checkpoint"]


def assert_restarted_from_latest(result: RunResult, failed: Event) -> int | None:
    """After `failed` the job restarts, after the restart delay, from the latest completed
    checkpoint (from the beginning when there is none); returns that checkpoint's id."""
    evs = result.trace.events
    done = completed_checkpoints_before(result, failed)
    latest = max(done) if done else None
    i = evs.index(failed)
    restart = next(e for e in evs[i:] if e[1] == "restart")
    assert restart[3][1] == latest, (failed, restart, done)
    assert restart[0] == pytest.approx(failed[0] + result.scenario.restart.delay)
    deploy = next(e for e in evs[evs.index(restart):] if e[1] == "deploy")
    assert deploy[0] == restart[0]
    assert deploy[3][1] == (f"checkpoint {latest}" if latest else "start"), deploy
    # the checkpoints in flight when the attempt failed were aborted, none completed late
    for _, _, _, d in evs[i:evs.index(restart)]:
        assert d[:1] != ("completed",)
    return latest


def precommitted(result: RunResult, sink: str, checkpoint_id: int) -> str:
    """The transaction `sink` pre-committed for `checkpoint_id` (first attempt that did)."""
    return next(d[0] for _, _, _, d in events(result, "pre_commit", sink) if d[1] == checkpoint_id)


def commits_of(result: RunResult, txn: str) -> list[Event]:
    return [e for e in events(result, "commit") if e[3][0] == txn]


def notified(result: RunResult, task: str, checkpoint_id: int) -> list[float]:
    return [t for t, _, _, d in events(result, "notified", task) if d[0] == checkpoint_id]


def assert_exactly_once(result: RunResult) -> None:
    assert result.status == "finished", (result.status, result.faults_fired)
    assert canonical(result.committed(), result.scenario.topology) == oracle(result.scenario)
    onceflow.check(result)


# -- crash: one subtask -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["source[0]", "map[1]", "reduce[1]", "sink[0]"])
def test_crash_restarts_the_job_from_the_latest_completed_checkpoint(target: str) -> None:
    base = clean()
    at = base.checkpoints[0].completed + 2.0  # checkpoint 1 done, checkpoint 2 not yet
    assert at < base.checkpoints[1].completed
    result = run(scenario(Crash(at, target)))
    entry = fired(result, "crash", target=target)
    assert entry["time"] == at
    failed = failure_after(result, entry)
    assert failed[0] == at and failed[2] == target
    assert assert_restarted_from_latest(result, failed) == 1
    assert result.restarts == 1
    assert_exactly_once(result)


def test_crash_after_two_checkpoints_restarts_from_the_second() -> None:
    base = clean()
    at = base.checkpoints[1].completed + 0.5
    result = run(scenario(Crash(at, "reduce[0]")))
    failed = failure_after(result, fired(result, "crash"))
    assert assert_restarted_from_latest(result, failed) == 2
    assert_exactly_once(result)


# -- worker_crash: every subtask in the worker's slots --------------------------------------------

@pytest.mark.parametrize("worker", [0, 1])
def test_worker_crash_takes_its_slots_down_and_restarts_from_the_latest_checkpoint(
        worker: int) -> None:
    base = clean()
    at = base.checkpoints[0].completed + 2.0
    s = scenario(WorkerCrash(at, worker))
    result = run(s)
    entry = fired(result, "worker_crash", target=f"worker {worker}")
    failed = failure_after(result, entry)
    assert failed[0] == at
    names = [f"{v.uid}[{i}]" for v in s.topology.vertices for i in range(v.parallelism)]
    hosted = [n for slot, n in enumerate(names) if slot // SLOTS_PER_WORKER == worker]
    assert hosted and failed[2] == hosted[0]
    assert all(n in failed[3][0] for n in hosted), failed
    assert assert_restarted_from_latest(result, failed) == 1
    assert_exactly_once(result)


# -- coordinator_crash ---------------------------------------------------------------------------

def test_coordinator_crash_with_durable_store_recovers_from_the_latest_checkpoint() -> None:
    base = clean()
    at = base.checkpoints[0].completed + 2.0
    result = run(scenario(CoordinatorCrash(at)))
    entry = fired(result, "coordinator_crash", target="coordinator")
    failed = failure_after(result, entry)
    assert failed[0] == at
    assert assert_restarted_from_latest(result, failed) == 1
    assert result.restarts == 1
    assert_exactly_once(result)


def test_coordinator_crash_without_durable_store_fails_and_a_manual_restore_is_exact() -> None:
    base = clean(durable_store=False)
    at = base.checkpoints[0].completed + 2.0
    s = scenario(CoordinatorCrash(at), durable_store=False)
    result = run(s)
    entry = fired(result, "coordinator_crash", target="coordinator")
    failed = failure_after(result, entry)
    assert (failed[0], failed[2]) == (at, "coordinator")
    # the job cannot recover by itself: no restart, the job is failed
    assert result.status == "failed" and result.restarts == 0
    assert not events(result, "restart")
    assert [e[3][1] for e in events(result, "deploy")] == ["start"]
    onceflow.check(result)  # a failure Flink does not recover from is not a liveness bug
    # the user restores the latest retained checkpoint by hand: exactly-once again
    latest = result.retained[-1]
    assert latest.id == 1 and latest.completed < at
    restored = restore(result, latest)
    assert restored.restored_from is latest
    assert_exactly_once(restored)


# -- notify: lost, delayed, duplicated, reordered notifications ----------------------------------

@pytest.mark.parametrize("target", ["sink[0]", "*"])
def test_lost_notification_is_made_good_by_the_next_one(target: str) -> None:
    result = run(scenario(NotifyFault("lose", 1, target)))
    sinks = ["sink[0]"] if target != "*" else ["sink[0]", "sink[1]"]
    for sink in sinks:
        fired(result, "notify", phase="notify_lose", target=sink, checkpoint=1)
        assert notified(result, sink, 1) == []  # the notification never arrived
        txn = precommitted(result, sink, 1)
        (commit,) = commits_of(result, txn)
        # committed by the notification of checkpoint 2, which stands for 1 too
        assert commit[0] == notified(result, sink, 2)[0]
        assert commit[3][1:] == (1, "notify")
    if target != "*":
        assert notified(result, "sink[1]", 1)  # the other sink was not affected
    assert result.restarts == 0
    assert_exactly_once(result)


def test_delayed_notification_delays_the_commit() -> None:
    delay = 5.0
    result = run(scenario(NotifyFault("delay", 1, "sink[0]", delay)))
    fired(result, "notify", phase="notify_delay", target="sink[0]", checkpoint=1)
    done = result.snapshot(1).completed
    rpc = result.scenario.timing.rpc_latency
    assert notified(result, "sink[0]", 1) == [pytest.approx(done + rpc + delay)]
    assert notified(result, "sink[1]", 1) != []
    assert min(notified(result, "sink[1]", 1)) < done + rpc + delay
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == pytest.approx(done + rpc + delay)
    assert_exactly_once(result)


def test_duplicated_notification_commits_once() -> None:
    result = run(scenario(NotifyFault("duplicate", 1, "sink[0]", 3.0)))
    fired(result, "notify", phase="notify_duplicate", target="sink[0]", checkpoint=1)
    first, second = notified(result, "sink[0]", 1)
    assert second == pytest.approx(first + 3.0)
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == first
    assert not [e for e in events(result, "commit", "sink[0]") if e[0] == second]
    assert_exactly_once(result)


def test_reordered_notification_arrives_after_the_next_and_commits_nothing() -> None:
    result = run(scenario(NotifyFault("reorder", 1, "sink[0]")))
    fired(result, "notify", phase="notify_reorder", target="sink[0]", checkpoint=1)
    (late,) = notified(result, "sink[0]", 1)
    (next_one,) = notified(result, "sink[0]", 2)
    assert next_one < late
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == next_one  # notification 2 committed transaction 1 as well
    assert not [e for e in events(result, "commit", "sink[0]") if e[0] == late]
    assert_exactly_once(result)


# -- storage: a failed write declines the checkpoint, a slow upload times it out -------------

def test_failed_storage_write_declines_and_aborts_the_checkpoint() -> None:
    result = run(scenario(StorageFault("fail_write", 1, "reduce[0]")))
    fired(result, "storage", phase="fail_write", target="reduce[0]", checkpoint=1)
    assert [e[3][0] for e in events(result, "declined", "reduce[0]")] == [1]
    assert (1, "declined") in [e[3] for e in events(result, "aborted")]
    assert 1 not in [e[3][0] for e in events(result, "completed")]
    assert 1 not in [s.id for s in result.snapshots]
    # no failover: the job goes on to the next checkpoint
    assert result.restarts == 0 and not events(result, "failed")
    assert [e[3][0] for e in events(result, "notified_aborted", "sink[0]")] == [1]
    # an aborted checkpoint's transaction is not discarded: checkpoint 2 commits it
    txn = precommitted(result, "sink[0]", 1)
    (commit,) = commits_of(result, txn)
    assert commit[0] == notified(result, "sink[0]", 2)[0]
    assert_exactly_once(result)


def test_slow_upload_runs_into_the_checkpoint_timeout() -> None:
    timeout = 20.0
    result = run(scenario(StorageFault("slow_upload", 1, "reduce[0]", 100.0), timeout=timeout))
    fired(result, "storage", phase="slow_upload", target="reduce[0]", checkpoint=1)
    (trigger,) = [e for e in events(result, "trigger") if e[3][0] == 1]
    (abort,) = [e for e in events(result, "aborted") if e[3][0] == 1]
    assert abort[3] == (1, "timeout")
    assert abort[0] == pytest.approx(trigger[0] + timeout)
    assert 1 not in [s.id for s in result.snapshots]
    assert not [e for e in events(result, "ack", "reduce[0]") if e[3][0] == 1]
    assert result.restarts == 0 and not events(result, "failed")
    assert_exactly_once(result)


def test_slow_upload_within_the_timeout_only_delays_the_checkpoint() -> None:
    base = clean()
    result = run(scenario(StorageFault("slow_upload", 1, "reduce[0]", 10.0)))
    fired(result, "storage", phase="slow_upload", target="reduce[0]", checkpoint=1)
    (snap,) = [e for e in events(result, "snapshot", "reduce[0]") if e[3][0] == 1]
    (ack,) = [e for e in events(result, "ack", "reduce[0]") if e[3][0] == 1]
    assert ack[0] == pytest.approx(snap[0] + result.scenario.timing.upload_time + 10.0)
    completed = result.snapshot(1).completed
    assert completed >= ack[0] and completed > base.snapshot(1).completed
    assert not [e for e in events(result, "aborted") if e[3][0] == 1]
    assert_exactly_once(result)


# -- store: transient commit failures are retried ------------------------------------------------

def test_commit_failure_is_retried_then_commits() -> None:
    result = run(scenario(StoreFault("commit_failure", 1.0, 2)))
    fired(result, "store", target="store")
    retries = events(result, "commit_retry")
    assert len(retries) == 2
    txn, cid = retries[0][3]
    assert retries[1][3] == (txn, cid)
    (commit,) = commits_of(result, txn)
    assert commit[3][1] == cid and commit[0] == retries[-1][0]
    assert result.trace.events.index(retries[-1]) < result.trace.events.index(commit)
    assert result.restarts == 0 and not events(result, "failed")
    assert_exactly_once(result)


def test_commit_failing_beyond_the_retries_fails_over_and_recovery_commits() -> None:
    result = run(scenario(StoreFault("commit_failure", 1.0, COMMIT_RETRIES + 1)))
    fired(result, "store", target="store")
    retries = events(result, "commit_retry")
    assert len(retries) == COMMIT_RETRIES + 1
    txn, cid = retries[0][3]
    evs = result.trace.events
    failed = events(result, "failed")[0]
    assert failed[2] == retries[0][2]
    assert evs.index(retries[COMMIT_RETRIES - 1]) < evs.index(failed)
    assert assert_restarted_from_latest(result, failed) == cid
    # the restored sink commits the pending transaction again, after one more retry
    commit = commits_of(result, txn)[0]
    assert commit[3][1:] == (cid, "recovery") and evs.index(commit) > evs.index(failed)
    assert_exactly_once(result)


# -- latency_spike and slow_subtask: in-flight data in unaligned checkpoints ---------------

SLOWDOWNS = {
    "latency_spike": lambda target: LatencySpike(5.0, target, 40.0, 10.0),
    "slow_subtask": lambda target: SlowSubtask(5.0, target, 40.0, 20.0),
}


@pytest.mark.parametrize("kind", sorted(SLOWDOWNS))
def test_slowdown_puts_in_flight_data_into_unaligned_checkpoints(kind: str) -> None:
    target = "map[1]"
    result = run(scenario(SLOWDOWNS[kind](target), mode="unaligned"))
    entry = fired(result, kind, target=target)
    assert entry["time"] == 5.0
    assert result.restarts == 0
    with_data = [c for c in result.checkpoints if c.in_flight_records]
    assert with_data, "no unaligned checkpoint held in-flight records"
    for snap in with_data:
        # the slowed subtask's channels hold in-flight data (its barrier came last, or
        # its own barrier overtook what it had sent)
        names = [name for name, items in snap.channel_state.items() if items]
        assert any(name.split(":", 1)[1].startswith(f"{target}->") for name in names)
    assert_exactly_once(result)
    # restoring a checkpoint that holds in-flight data replays it: still exactly-once
    restored = restore(result, with_data[0])
    assert_exactly_once(restored)


@pytest.mark.parametrize("kind", sorted(SLOWDOWNS))
def test_slowdown_behind_a_rebalance_keeps_input_and_output_buffers(kind: str) -> None:
    """map reads a rebalance edge, so its barrier overtakes too: the checkpoints hold records
    taken from its inputs (in:) and its overtaken output buffers (out:), and every restore
    replays both."""
    result = run(scenario(SLOWDOWNS[kind]("map[1]"), mode="unaligned", map_edge="rebalance"))
    fired(result, kind, target="map[1]")
    sides = {name.split(":", 1)[0] for c in result.checkpoints
             for name, items in c.channel_state.items() if items}
    assert sides == {"in", "out"}
    assert any(c.in_flight_records for c in result.checkpoints)
    assert_exactly_once(result)  # restores every checkpoint, in-flight data included


@pytest.mark.parametrize("kind", sorted(SLOWDOWNS))
def test_slowdown_in_aligned_mode_keeps_no_channel_state(kind: str) -> None:
    result = run(scenario(SLOWDOWNS[kind]("map[1]")))
    fired(result, kind, target="map[1]")
    assert result.checkpoints
    assert not any(c.has_channel_state for c in result.checkpoints)
    assert_exactly_once(result)
