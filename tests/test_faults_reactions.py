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
from attrs import evolve

import onceflow
from onceflow import (CheckpointConfig, RunResult, Scenario, Timing, Topology, Vertex, Workload,
                      restore, run)
from onceflow.faults import unfired
from onceflow.faults.plan import (SLOTS_PER_WORKER, CoordinatorCrash, Crash, LatencySpike,
                                  NotifyFault, PhaseCrash, SlowSubtask, StorageFault, StoreFault,
                                  WorkerCrash)
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
    ), max_parallelism=76)  # keys 0..7 on the reduce subtasks these timings were written for


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


def notified_aborted(result: RunResult, task: str, checkpoint_id: int) -> list[float]:
    return [t for t, _, _, d in events(result, "notified_aborted", task) if d[0] == checkpoint_id]


def written_in(result: RunResult, txn: str) -> set[str]:
    """Ids of the records a sink wrote into transaction `txn` (from the store's log of
    operations, which keeps them even when the transaction expired or was aborted)."""
    return {r.id for op in result.store.ops if op[0] == "write" and op[2] == txn for r in op[3]}


def missing(result: RunResult) -> set[str]:
    """Ids of the records the oracle expects that a read-committed reader never sees."""
    want = {r.id for rs in expected_output(result.scenario).values() for r in rs}
    return want - {r.id for r in result.committed()}


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
        fired(result, "notify", phase="notify_complete", effect="lose", target=sink,
              checkpoint=1)
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
    fired(result, "notify", phase="notify_complete", effect="delay", target="sink[0]",
          checkpoint=1)
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
    fired(result, "notify", phase="notify_complete", effect="duplicate", target="sink[0]",
          checkpoint=1)
    first, second = notified(result, "sink[0]", 1)
    assert second == pytest.approx(first + 3.0)
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == first
    assert not [e for e in events(result, "commit", "sink[0]") if e[0] == second]
    assert_exactly_once(result)


def test_reordered_notification_arrives_after_the_next_and_commits_nothing() -> None:
    # held back two checkpoint intervals plus 4 ms: past the next notification
    result = run(scenario(NotifyFault("reorder", 1, "sink[0]", 4.0)))
    fired(result, "notify", phase="notify_complete", effect="reorder", target="sink[0]",
          checkpoint=1)
    (late,) = notified(result, "sink[0]", 1)
    (next_one,) = notified(result, "sink[0]", 2)
    # held back until notification 2 went out, and delivered right behind it
    assert next_one == late
    evs = result.trace.events
    i_next, i_late = (next(i for i, e in enumerate(evs) if e[1] == "notified"
                           and e[2] == "sink[0]" and e[3][0] == c) for c in (2, 1))
    assert i_next < i_late
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == next_one  # notification 2 committed transaction 1 as well
    assert not [e for e in evs[i_late:] if e[1] == "commit" and e[2] == "sink[0]"
                and e[0] == late]
    assert_exactly_once(result)


# -- notify: lost, delayed, duplicated, reordered notify-aborted messages -------------------------
#
# reduce[0]'s storage write for checkpoint 1 fails, so checkpoint 1 is declined and every
# task is sent notify-aborted(1).  sink[0] pre-committed its transaction for checkpoint 1
# before that message goes out.  notify-aborted is only a hint: the data is not discarded,
# notify-complete(2) commits the transaction of 1 too, whatever becomes of the message.

DECLINE_1 = StorageFault("fail_write", 1, "reduce[0]")
ABORTED_DELAYS = {"lose": 0.0, "delay": 5.0, "duplicate": 2.0, "reorder": 5.0}


def declined(*faults: Any, mutants: tuple[str, ...] = ()) -> Scenario:
    """Checkpoint 1 declined; one failed checkpoint is tolerated, so the job goes on and
    the notify-aborted window stays open (with Flink's default, 0, it fails over)."""
    s = scenario(DECLINE_1, *faults)
    return evolve(s, mutants=mutants,
                  checkpoints=evolve(s.checkpoints, tolerable_failed_checkpoints=1))


def abort_sent(result: RunResult) -> float:
    """When the coordinator aborted checkpoint 1 (and sent notify-aborted(1))."""
    (abort,) = [e for e in events(result, "aborted", "coordinator") if e[3][0] == 1]
    assert abort[3] == (1, "declined")
    return abort[0]


def test_declined_checkpoint_sends_notify_aborted_after_the_sink_pre_committed() -> None:
    """The window the notify-aborted faults act on, without them."""
    result = run(declined())
    sent = abort_sent(result)
    rpc = result.scenario.timing.rpc_latency
    txn = precommitted(result, "sink[0]", 1)
    (pre,) = [e for e in events(result, "pre_commit", "sink[0]") if e[3] == (txn, 1)]
    assert pre[0] < sent
    assert notified_aborted(result, "sink[0]", 1) == [pytest.approx(sent + rpc)]
    assert notified(result, "sink[0]", 1) == []  # checkpoint 1 never completes
    assert_exactly_once(result)


@pytest.mark.parametrize("effect", sorted(ABORTED_DELAYS))
def test_notify_aborted_fault_leaves_the_output_exactly_once(effect: str) -> None:
    delay = ABORTED_DELAYS[effect]
    result = run(declined(NotifyFault(effect, 1, "sink[0]", delay, "aborted")))
    entry = fired(result, "notify", phase="notify_aborted", effect=effect, target="sink[0]",
                  checkpoint=1)
    sent = abort_sent(result)
    assert entry["time"] == sent
    rpc = result.scenario.timing.rpc_latency
    arrivals = {"lose": [], "delay": [sent + rpc + delay],
                "duplicate": [sent + rpc, sent + rpc + delay],
                # held back until the next notification to sink[0] (complete(2))
                "reorder": notified(result, "sink[0]", 2)[:1]}[effect]
    assert notified_aborted(result, "sink[0]", 1) == pytest.approx(arrivals)
    # the other sink was not affected (it handles the message once it is free)
    (other,) = notified_aborted(result, "sink[1]", 1)
    assert other >= sent + rpc
    # sink[0]'s transaction of checkpoint 1 is never aborted; notify-complete(2) commits it
    txn = precommitted(result, "sink[0]", 1)
    (commit,) = commits_of(result, txn)
    assert commit[0] == notified(result, "sink[0]", 2)[0]
    assert commit[3][1:] == (1, "notify")
    assert not [e for e in events(result, "abort", "sink[0]") if e[3][0] == txn]
    if effect == "reorder":
        # the reordered notify-aborted(1) arrives after notify-complete(2): a stale hint
        evs = result.trace.events
        i_complete = next(i for i, e in enumerate(evs) if e[1] == "notified"
                          and e[2] == "sink[0]" and e[3][0] == 2)
        i_aborted = next(i for i, e in enumerate(evs) if e[1] == "notified_aborted"
                         and e[2] == "sink[0]" and e[3][0] == 1)
        assert i_complete < i_aborted and commit[0] <= evs[i_aborted][0]
    assert result.restarts == 0
    assert_exactly_once(result)


#: effect on notify-aborted(1) -> does the `abort-discards` mutant lose sink[0]'s data?
#: (None: no notification fault, the message is delivered on time)
DISCARDS = {None: True, "delay": True, "duplicate": True, "lose": False, "reorder": False}


@pytest.mark.parametrize("effect", list(DISCARDS), ids=[str(e) for e in DISCARDS])
def test_abort_discards_mutant_is_caught_only_when_notify_aborted_arrives_in_time(
        effect: str | None) -> None:
    """`abort-discards` aborts the pending transaction that notify-aborted names.  Delivered
    (on time, late but before the next commit, or twice), it destroys sink[0]'s
    pre-committed transaction of checkpoint 1 and no_loss names exactly its records; lost,
    or reordered behind notify-complete(2), the message hides the bug."""
    # the fault strikes both sinks' notify-aborted(1) (each pre-committed records for 1)
    faults = () if effect is None else (
        NotifyFault(effect, 1, "*", ABORTED_DELAYS[effect], "aborted"),)
    result = run(declined(*faults, mutants=("abort-discards",)))
    txn = precommitted(result, "sink[0]", 1)
    other = precommitted(result, "sink[1]", 1)
    next_notify = notified(result, "sink[0]", 2)[0]
    if not DISCARDS[effect]:
        (commit,) = commits_of(result, txn)
        assert commit[0] == next_notify
        assert_exactly_once(result)
        return
    first = notified_aborted(result, "sink[0]", 1)[0]
    assert first < next_notify
    (abort,) = [e for e in events(result, "abort", "sink[0]") if e[3][0] == txn]
    assert abort[0] == first
    assert result.store.txns[txn].state == "aborted"
    # the mutant also dropped it from the pending ones: notify-complete(2) never tries it
    assert not commits_of(result, txn)
    assert not [e for e in events(result, "commit_lost") if e[3][0] == txn]
    assert result.store.txns[other].state == "aborted"
    gone = written_in(result, txn) | written_in(result, other)
    assert written_in(result, txn) and missing(result) == gone
    assert_lost(result, gone)


def assert_lost(result: RunResult, gone: set[str]) -> Any:
    """The properties report exactly-`gone` records lost on the original run; the finding."""
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(result)
    finding = info.value.finding
    assert (finding.property, finding.anomaly) == ("no_loss", "lost")
    assert finding.timeline == "the original run"
    assert finding.summary.startswith(f"{len(gone)} record(s)")
    assert finding.records and {r.id for r in finding.records} <= gone
    return finding


def test_notify_fault_intercepts_only_the_message_it_names() -> None:
    """A 'complete' fault aimed at declined checkpoint 1 and an 'aborted' one aimed at
    completed checkpoint 2 never fire (and `unfired` says so); an 'any' fault takes the
    notification checkpoint 1 does get, notify-aborted."""
    faults = (NotifyFault("lose", 1, "sink[0]", 0.0, "complete"),
              NotifyFault("lose", 2, "sink[0]", 0.0, "aborted"))
    result = run(declined(*faults))
    assert [f["kind"] for f in result.faults_fired] == ["storage"]
    assert unfired(result) == ((1, faults[0]), (2, faults[1]))
    assert notified_aborted(result, "sink[0]", 1) == [
        pytest.approx(abort_sent(result) + result.scenario.timing.rpc_latency)]
    assert notified(result, "sink[0]", 2)
    assert_exactly_once(result)

    result = run(declined(NotifyFault("lose", 1, "sink[0]")))
    fired(result, "notify", phase="notify_aborted", effect="lose", target="sink[0]",
          checkpoint=1)
    assert notified_aborted(result, "sink[0]", 1) == []
    assert unfired(result) == ()
    assert_exactly_once(result)


def test_wildcard_notify_aborted_fault_binds_to_the_first_aborted_checkpoint() -> None:
    """checkpoint 0 and target '*': the first checkpoint that aborts (1), every task once;
    the notify-complete messages that follow are untouched."""
    result = run(declined(NotifyFault("lose", 0, "*", 0.0, "aborted")))
    hits = [f for f in result.faults_fired if f["kind"] == "notify"]
    tasks = [f"{v.uid}[{i}]" for v in result.scenario.topology.vertices
             for i in range(v.parallelism)]
    assert sorted(f["target"] for f in hits) == sorted(tasks)
    assert {(f["phase"], f["effect"], f["checkpoint"]) for f in hits} == {
        ("notify_aborted", "lose", 1)}
    assert not [e for e in events(result, "notified_aborted") if e[3][0] == 1]
    assert notified(result, "sink[0]", 2) and notified(result, "sink[1]", 2)
    assert_exactly_once(result)


# -- storage: a failed write declines the checkpoint, a slow upload times it out -------------

def tolerating(s: Scenario, failures: int) -> Scenario:
    return evolve(s, checkpoints=evolve(s.checkpoints, tolerable_failed_checkpoints=failures))


def test_failed_storage_write_fails_the_job_over_by_default() -> None:
    """Flink's default tolerates no failed checkpoint: the declined checkpoint fails the
    job over (a global failure), which restarts from the latest checkpoint."""
    result = run(scenario(StorageFault("fail_write", 1, "reduce[0]")))
    assert result.scenario.checkpoints.tolerable_failed_checkpoints == 0
    (decline,) = events(result, "declined", "reduce[0]")
    (failed,) = events(result, "failed")
    assert failed[0] == decline[0] and failed[2] == "job"
    assert "tolerable failure threshold" in failed[3][0]
    assert result.restarts == 1 and result.status == "finished"
    assert_exactly_once(result)


def test_slow_upload_past_the_timeout_fails_the_job_over_by_default() -> None:
    result = run(scenario(StorageFault("slow_upload", 1, "reduce[0]", 100.0), timeout=20.0))
    (abort,) = [e for e in events(result, "aborted") if e[3][0] == 1]
    assert abort[3] == (1, "timeout")
    (failed,) = events(result, "failed")
    assert failed[0] == abort[0] and "checkpoint 1 expired" in failed[3][0]
    assert result.restarts == 1
    assert_exactly_once(result)


def test_a_completed_checkpoint_resets_the_failure_count() -> None:
    """Two failed checkpoints with a completed one between them are not consecutive:
    tolerating one failure, the job never fails over."""
    result = run(tolerating(scenario(StorageFault("fail_write", 1, "reduce[0]"),
                                     StorageFault("fail_write", 3, "reduce[1]")), 1))
    assert [e[3][0] for e in events(result, "aborted")][:2] == [1, 3]
    assert 2 in [s.id for s in result.snapshots]
    assert result.restarts == 0 and not events(result, "failed")
    # two consecutive ones exceed it
    result = run(tolerating(scenario(StorageFault("fail_write", 1, "reduce[0]"),
                                     StorageFault("fail_write", 2, "reduce[1]")), 1))
    (failed,) = events(result, "failed")
    assert "checkpoint 2 declined" in failed[3][0]
    assert_exactly_once(result)


def test_failed_storage_write_declines_and_aborts_the_checkpoint() -> None:
    result = run(tolerating(scenario(StorageFault("fail_write", 1, "reduce[0]")), 1))
    fired(result, "storage", phase="async_upload", effect="fail_write", target="reduce[0]",
          checkpoint=1)
    assert [e[3][0] for e in events(result, "declined", "reduce[0]")] == [1]
    assert (1, "declined") in [e[3] for e in events(result, "aborted")]
    assert 1 not in [e[3][0] for e in events(result, "completed")]
    assert 1 not in [s.id for s in result.snapshots]
    # no failover: the job goes on to the next checkpoint
    assert result.restarts == 0 and not events(result, "failed")
    # (a later checkpoint may be declined by a task that finished before its trigger
    # came, FLIP-147: not a failure)
    later = {e[3][0] for e in events(result, "aborted") if e[3][0] != 1}
    assert all(e[3][1] == "task finished" for e in events(result, "aborted")
               if e[3][0] in later)
    assert [e[3][0] for e in events(result, "notified_aborted", "sink[0]")
            if e[3][0] not in later] == [1]
    # an aborted checkpoint's transaction is not discarded: checkpoint 2 commits it
    txn = precommitted(result, "sink[0]", 1)
    (commit,) = commits_of(result, txn)
    assert commit[0] == notified(result, "sink[0]", 2)[0]
    assert_exactly_once(result)


def test_slow_upload_runs_into_the_checkpoint_timeout() -> None:
    timeout = 20.0
    result = run(tolerating(scenario(StorageFault("slow_upload", 1, "reduce[0]", 100.0),
                                     timeout=timeout), 1))
    fired(result, "storage", phase="async_upload", effect="slow_upload", target="reduce[0]",
          checkpoint=1)
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
    fired(result, "storage", phase="async_upload", effect="slow_upload", target="reduce[0]",
          checkpoint=1)
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
    fired(result, "store", phase=None, effect="commit_failure", target="store")
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
    fired(result, "store", phase=None, effect="commit_failure", target="store")
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


# -- store: transaction expiry after the transaction timeout (KAFKA-6119) --------------------------
#
# sink[0] crashes as it handles notify-complete(2), before its commit; the job restarts from
# checkpoint 2 after the restart delay and the restored sinks commit their transactions of
# checkpoint 2 again (recovery commit).  With a transaction timeout longer than any
# transaction lives in the clean run but shorter than a checkpoint cycle plus that restart,
# the store expires those two transactions first: the commit finds them gone and their
# records are lost.  This is the documented misconfiguration (Kafka's transaction.timeout.ms
# below checkpoint interval + restart time), so a loss is the right verdict.

CRASH_BEFORE_COMMIT_2 = PhaseCrash("notify_complete", "sink[0]", 2)


def lifetimes(result: RunResult) -> dict[str, float]:
    """How long each transaction that ended in the run was open, by id."""
    return {t.id: t.ended - t.begun for t in result.store.txns.values() if t.ended is not None}


def short_txn_timeout() -> float:
    """Longer than every transaction of the clean run lives, with 2 ms to spare."""
    return max(lifetimes(clean()).values()) + 2.0


def test_txn_timeout_above_every_clean_transaction_loses_nothing_without_a_crash() -> None:
    timeout = short_txn_timeout()
    result = run(evolve(scenario(), txn_timeout=timeout))
    assert result.store.txn_timeout == timeout
    assert not [t for t in result.store.txns.values() if t.state == "expired"]
    assert not events(result, "commit_lost")
    assert_exactly_once(result)


def test_txn_timeout_shorter_than_a_cycle_plus_restart_expires_the_pending_transactions() -> None:
    timeout = short_txn_timeout()
    s = evolve(scenario(CRASH_BEFORE_COMMIT_2), txn_timeout=timeout)
    result = run(s)
    entry = fired(result, "phase_crash", phase="notify_complete", target="sink[0]",
                  checkpoint=2)
    failed = failure_after(result, entry)
    assert assert_restarted_from_latest(result, failed) == 2
    (deploy,) = [e for e in events(result, "deploy") if e[3][1] == "checkpoint 2"]
    pending = {sink: precommitted(result, sink, 2) for sink in ("sink[0]", "sink[1]")}
    txns = result.store.txns
    # exactly the two transactions of checkpoint 2 expired, while the job was restarting
    expired = {t.id for t in txns.values() if t.state == "expired"}
    assert expired == set(pending.values())
    for txn in expired:
        t = txns[txn]
        assert t.ended == pytest.approx(t.begun + timeout)
        # still alive when notify-complete(2) came (the clean run commits it then), gone
        # before the restored sinks try to commit it
        assert entry["time"] < t.ended < deploy[0]
    # the recovery commit finds each one gone: 'commit_lost', no 'commit'
    for sink, txn in pending.items():
        (lost,) = [e for e in events(result, "commit_lost", sink) if e[3][0] == txn]
        assert lost[0] == deploy[0] and lost[3] == (txn, 2, "recovery")
        assert not commits_of(result, txn)
    assert len(events(result, "commit_lost")) == 2
    # the job itself goes on and finishes: the loss is silent, as in Kafka
    assert result.status == "finished" and result.restarts == 1
    gone = written_in(result, pending["sink[0]"]) | written_in(result, pending["sink[1]"])
    assert gone and missing(result) == gone
    finding = assert_lost(result, gone)
    assert finding.faults == ("phase_crash at notify_complete of checkpoint 2 on sink[0] "
                              f"t={entry['time']:g}",)


def destroyed_transaction(case: str) -> tuple[RunResult, str, str]:
    """A run that loses a pre-committed transaction, the transaction, and its end state."""
    if case == "expired":
        result = run(evolve(scenario(CRASH_BEFORE_COMMIT_2), txn_timeout=short_txn_timeout()))
        return result, precommitted(result, "sink[0]", 2), "expired"
    result = run(declined(mutants=("abort-discards",)))
    return result, precommitted(result, "sink[0]", 1), "aborted"


@pytest.mark.parametrize("case", ["expired", "aborted"])
def test_lost_records_are_diagnosed_with_the_transaction_that_lost_them(case: str) -> None:
    result, txn, state = destroyed_transaction(case)
    assert result.store.txns[txn].state == state
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(result)
    # every shown record names the destroyed transaction it was written in (sink[0]'s, or
    # the other sink's of the same checkpoint, destroyed alike)
    destroyed = [t for t, v in result.store.txns.items() if v.state == state]
    assert txn in destroyed
    shown = info.value.finding.records
    assert shown
    for r in shown:
        (where,) = [t for t in destroyed if r.id in written_in(result, t)]
        assert any(where in e and state in e for e in r.events), r.events


def test_generous_txn_timeout_keeps_the_same_crash_exactly_once() -> None:
    s = scenario(CRASH_BEFORE_COMMIT_2)
    assert s.txn_timeout == 600_000.0  # the default, Kafka's 15 minutes scaled down
    result = run(s)
    entry = fired(result, "phase_crash", phase="notify_complete", target="sink[0]",
                  checkpoint=2)
    assert assert_restarted_from_latest(result, failure_after(result, entry)) == 2
    (deploy,) = [e for e in events(result, "deploy") if e[3][1] == "checkpoint 2"]
    assert not [t for t in result.store.txns.values() if t.state == "expired"]
    assert not events(result, "commit_lost")
    for sink in ("sink[0]", "sink[1]"):
        txn = precommitted(result, sink, 2)
        # the restored sink commits it; it lived longer than the short timeout allows
        commits = commits_of(result, txn)
        assert (deploy[0], (txn, 2, "recovery")) in [(e[0], e[3]) for e in commits]
        t = result.store.txns[txn]
        assert t.state == "committed" and t.ended - t.begun > short_txn_timeout()
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


# -- what faults_fired says --------------------------------------------------------------------

def test_faults_fired_names_the_phase_and_the_effect_separately() -> None:
    """`phase` is where a fault struck (a phase name, None for timed faults), `effect` what
    it did; the trace event and `onceflow run --json` carry both."""
    from onceflow.cli import _faults_json

    result = run(scenario(StorageFault("slow_upload", 1, "reduce[0]", 1.0),
                          NotifyFault("delay", 1, "sink[1]", 1.0),
                          StoreFault("commit_failure", 1.0), Crash(30.0, "map[0]")))
    got = {f["kind"]: (f["phase"], f["effect"]) for f in result.faults_fired}
    assert got == {"storage": ("async_upload", "slow_upload"),
                   "notify": ("notify_complete", "delay"),
                   "store": (None, "commit_failure"), "crash": (None, None)}
    for entry in result.faults_fired:
        (event,) = [e for e in events(result, "fault") if e[3][-1] == entry["index"]]
        assert event[3] == (entry["kind"], entry["phase"], entry["checkpoint"], entry["effect"],
                            entry["index"])
    assert [(f["phase"], f["effect"]) for f in _faults_json(result)] == [
        (f["phase"], f["effect"]) for f in result.faults_fired]


# -- FLINK-21080: an abort notification carries the latest completed checkpoint -----------


def test_abort_notification_carries_the_latest_completed_checkpoint() -> None:
    """notify-complete(1) to sink[0] is lost and checkpoint 2 is declined: its abort
    message says checkpoint 1 completed, and sink[0] commits 1 on it, before any later
    checkpoint completes (Flink's notifyCheckpointAbortAsync(2, latestCompleted=1))."""
    s = scenario(NotifyFault("lose", 1, "sink[0]", 0.0, "complete"),
                 StorageFault("fail_write", 2, "reduce[0]"))
    s = evolve(s, checkpoints=evolve(s.checkpoints, tolerable_failed_checkpoints=1))
    result = run(s)
    (aborted_2,) = notified_aborted(result, "sink[0]", 2)
    # the completion of 1 reaches the sink with the abort of 2, then is taken once only
    assert notified(result, "sink[0]", 1) == [aborted_2]
    (commit,) = commits_of(result, precommitted(result, "sink[0]", 1))
    assert commit[0] == aborted_2
    assert_exactly_once(result)
