"""A crash aimed at each phase a snapshot passes (`CRASH_PHASES`), and the reaction.

Each test aims one `PhaseCrash(phase, target, checkpoint)` at a small job with
aligned barriers and a two-phase sink, and asserts that the fault fired in
that phase (`result.faults_fired`), what the window looked like when it struck,
that the job failed there and restarted from the latest completed checkpoint
(for a stop-with-savepoint: failed for good, to be restored from the savepoint
by hand), and that `onceflow.check` passes: the output stays exactly-once.
"""

from __future__ import annotations

from typing import Any

import pytest

import onceflow
from onceflow import (CheckpointConfig, RunResult, SavepointRequest, Scenario, Timing, Topology,
                      Vertex, Workload, restore, run)
from onceflow.faults.plan import CRASH_PHASES, Crash, PhaseCrash, StoreFault
from onceflow.properties.oracle import canonical, expected_output

Event = tuple[float, str, str, tuple[Any, ...]]


# -- the job and its helpers ---------------------------------------------------------------------

def scenario(*faults: Any, savepoints: tuple[SavepointRequest, ...] = (),
             sink: str = "two_phase") -> Scenario:
    topology = Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", 2, "hash"),
        Vertex("sink", "sink", 2, "forward"),
    ), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(mode="aligned", interval=8.0),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink=sink, savepoints=savepoints, faults=faults)


def clean() -> RunResult:
    result = run(scenario())
    assert result.status == "finished" and len(result.checkpoints) >= 3
    return result


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def events(result: RunResult, kind: str, where: str | None = None) -> list[Event]:
    return [e for e in result.trace.events if e[1] == kind and (where is None or e[2] == where)]


def phase_fired(result: RunResult, phase: str, target: str,
                checkpoint: int | None = None) -> dict[str, Any]:
    hits = [f for f in result.faults_fired if f["kind"] == "phase_crash" and f["phase"] == phase]
    assert len(hits) == 1, f"phase {phase} did not fire once: {list(result.faults_fired)}"
    hit = hits[0]
    assert hit["target"] == target
    if checkpoint is not None:
        assert hit["checkpoint"] == checkpoint
    return hit


def failure_after(result: RunResult, entry: dict[str, Any]) -> Event:
    evs = result.trace.events
    start = next(i for i, e in enumerate(evs) if e[1] == "fault" and e[3][-1] == entry["index"])
    return next(e for e in evs[start:] if e[1] == "failed")


def before(result: RunResult, event: Event) -> list[Event]:
    evs = result.trace.events
    return evs[:evs.index(event)]


def assert_restarted_from_latest(result: RunResult, failed: Event) -> int | None:
    """'failed', then 'restart' and 'deploy' from the latest checkpoint completed before it."""
    evs = result.trace.events
    i = evs.index(failed)
    done = [e[3][0] for e in evs[:i] if e[1] == "completed" and e[3][1] == "checkpoint"]
    latest = max(done) if done else None
    restart = next(e for e in evs[i:] if e[1] == "restart")
    assert restart[3][1] == latest, (failed, restart, done)
    assert restart[0] == pytest.approx(failed[0] + result.scenario.restart.delay)
    deploy = next(e for e in evs[evs.index(restart):] if e[1] == "deploy")
    assert deploy[0] == restart[0]
    assert deploy[3][1] == (f"checkpoint {latest}" if latest else "start"), deploy
    return latest


def assert_aborted_by_failover(result: RunResult, failed: Event, checkpoint_id: int) -> None:
    assert (checkpoint_id, "failover") in [e[3] for e in events(result, "aborted")
                                           if e[0] == failed[0]]
    assert checkpoint_id not in [e[3][0] for e in events(result, "completed")]


def precommitted(result: RunResult, sink: str, checkpoint_id: int) -> str:
    return next(d[0] for _, _, _, d in events(result, "pre_commit", sink) if d[1] == checkpoint_id)


def commits_of(result: RunResult, txn: str) -> list[Event]:
    return [e for e in events(result, "commit") if e[3][0] == txn]


def assert_exactly_once(result: RunResult) -> None:
    assert result.status == "finished", (result.status, result.faults_fired)
    assert canonical(result.committed(), result.scenario.topology) == oracle(result.scenario)
    onceflow.check(result)


# -- the phases, in the order a snapshot passes them -------------------------------------------

def test_phase_alignment() -> None:
    """reduce[0] reads two channels: barrier 2 arrived on one, it is aligning."""
    result = run(scenario(PhaseCrash("alignment", "reduce[0]", 2)))
    hit = phase_fired(result, "alignment", "reduce[0]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "reduce[0]")
    (trigger,) = [e for e in events(result, "trigger") if e[3][0] == 2]
    assert trigger[0] < hit["time"]
    # still aligning: reduce[0] had not snapshotted checkpoint 2, but upstream had
    assert not [e for e in before(result, failed) if e[1] == "snapshot" and e[2] == "reduce[0]"
                and e[3][0] == 2]
    assert [e for e in before(result, failed) if e[1] == "snapshot" and e[2].startswith("map")
            and e[3][0] == 2]
    assert_aborted_by_failover(result, failed, 2)
    assert assert_restarted_from_latest(result, failed) == 1
    assert_exactly_once(result)


def test_phase_after_sync_snapshot() -> None:
    result = run(scenario(PhaseCrash("after_sync_snapshot", "map[1]", 2)))
    hit = phase_fired(result, "after_sync_snapshot", "map[1]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "map[1]")
    # the state was taken, the acknowledgement never sent
    assert [e for e in before(result, failed) if e[1] == "snapshot" and e[2] == "map[1]"
            and e[3][0] == 2 and e[0] == hit["time"]]
    assert not [e for e in events(result, "ack", "map[1]") if e[3][0] == 2]
    assert_aborted_by_failover(result, failed, 2)
    assert assert_restarted_from_latest(result, failed) == 1
    assert_exactly_once(result)


def test_phase_async_upload() -> None:
    result = run(scenario(PhaseCrash("async_upload", "reduce[1]", 2)))
    hit = phase_fired(result, "async_upload", "reduce[1]", 2)
    failed = failure_after(result, hit)
    # halfway through the upload
    upload = result.scenario.timing.upload_time
    assert failed[2] == "reduce[1]"
    assert failed[0] == pytest.approx(hit["time"] + upload / 2)
    assert [e for e in events(result, "snapshot", "reduce[1]") if e[3][0] == 2
            and e[0] == hit["time"]]
    assert not [e for e in events(result, "ack", "reduce[1]") if e[3][0] == 2]
    assert_aborted_by_failover(result, failed, 2)
    assert assert_restarted_from_latest(result, failed) == 1
    assert_exactly_once(result)


def test_phase_pre_commit() -> None:
    result = run(scenario(PhaseCrash("pre_commit", "sink[0]", 2)))
    hit = phase_fired(result, "pre_commit", "sink[0]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[0]")
    txn = precommitted(result, "sink[0]", 2)
    assert [e for e in before(result, failed) if e[1] == "pre_commit" and e[3] == (txn, 2)]
    assert_aborted_by_failover(result, failed, 2)
    assert assert_restarted_from_latest(result, failed) == 1
    # the transaction pre-committed for the failed checkpoint is aborted on recovery,
    # never committed: its records come again from the replay
    assert result.store.txns[txn].state == "aborted"
    assert not commits_of(result, txn)
    assert txn not in {e.txn for e in result.committed_entries()}
    assert_exactly_once(result)


def test_phase_notify_complete() -> None:
    result = run(scenario(PhaseCrash("notify_complete", "sink[1]", 2)))
    hit = phase_fired(result, "notify_complete", "sink[1]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[1]")
    # checkpoint 2 completed; sink[1] crashed before committing its transaction
    completed = [e for e in before(result, failed) if e[1] == "completed" and e[3][0] == 2]
    assert completed and completed[0][0] < hit["time"]
    txn = precommitted(result, "sink[1]", 2)
    commits = commits_of(result, txn)
    assert commits and all(e[0] >= failed[0] for e in commits)
    assert assert_restarted_from_latest(result, failed) == 2
    # the restored sink commits it in recovery
    assert commits[0][3][1:] == (2, "recovery")
    assert_exactly_once(result)


def test_phase_commit_before() -> None:
    result = run(scenario(PhaseCrash("commit_before", "sink[0]", 2)))
    hit = phase_fired(result, "commit_before", "sink[0]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[0]")
    txn = precommitted(result, "sink[0]", 2)
    commits = commits_of(result, txn)
    # not committed before the crash: the recovery commits it
    assert commits and commits[0][3][1:] == (2, "recovery")
    assert result.trace.events.index(commits[0]) > result.trace.events.index(failed)
    assert assert_restarted_from_latest(result, failed) == 2
    assert result.store.txns[txn].state == "committed"
    assert_exactly_once(result)


@pytest.mark.parametrize("outcome", ["committed", "not_committed"])
def test_phase_commit_in_flight(outcome: str) -> None:
    """A slow commit (20 ms) of checkpoint 2's transaction is in flight when its task
    crashes halfway through it: the store completes it or never got it (`on_crash`),
    and the restored committer commits it again either way (once in the output)."""
    slow = StoreFault("slow_commit", 0.0, 10, "*", 20.0, outcome)
    result = run(scenario(slow, PhaseCrash("commit_in_flight", "sink[0]", 2)))
    hit = phase_fired(result, "commit_in_flight", "sink[0]", 2)
    failed = failure_after(result, hit)
    # the crash comes halfway through the commit sent at the phase
    assert (failed[0], failed[2]) == (hit["time"] + 10.0, "sink[0]")
    txn = precommitted(result, "sink[0]", 2)
    first, *again = commits_of(result, txn)
    assert first[3][1:] == (2, "notify") and first[0] == hit["time"]
    assert again and again[0][3][1:] == (2, "recovery")
    (landed,) = [e for e in events(result, "commit_interrupted") if e[3][0] == txn]
    assert landed[0] == hit["time"] + 20.0
    state = result.store.txns[txn]
    assert state.state == "committed"
    if outcome == "not_committed":
        assert landed[3][1] == "not committed"
        assert state.ended > landed[0]  # the restored committer's commit, after the flight
    else:
        assert landed[3][1] in ("committed", "already committed")
    assert assert_restarted_from_latest(result, failed) == 2
    assert_exactly_once(result)


def test_phase_commit_after() -> None:
    result = run(scenario(PhaseCrash("commit_after", "sink[0]", 2)))
    hit = phase_fired(result, "commit_after", "sink[0]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[0]")
    txn = precommitted(result, "sink[0]", 2)
    first, *again = commits_of(result, txn)
    # committed by the notification, then the crash; the recovery commits it again
    # (commits are idempotent: its records are committed once)
    assert first[3][1:] == (2, "notify") and first[0] == hit["time"]
    evs = result.trace.events
    assert evs.index(first) < evs.index(failed)
    assert again and again[0][3][1:] == (2, "recovery")
    assert assert_restarted_from_latest(result, failed) == 2
    assert_exactly_once(result)


def test_phase_restore() -> None:
    """A crash after checkpoint 1, then another while a task restores checkpoint 1."""
    at = clean().checkpoints[0].completed + 2.0
    result = run(scenario(Crash(at, "map[0]"), PhaseCrash("restore", "reduce[1]", 1)))
    hit = phase_fired(result, "restore", "reduce[1]", 1)
    first_failure = events(result, "failed")[0]
    assert first_failure[0] == at
    assert assert_restarted_from_latest(result, first_failure) == 1
    failed = failure_after(result, hit)
    assert failed is not first_failure
    assert (failed[0], failed[2]) == (hit["time"], "reduce[1]")
    # it struck while deploying attempt 2 from checkpoint 1
    deploy = [e for e in before(result, failed) if e[1] == "deploy"][-1]
    assert deploy[3] == (2, "checkpoint 1") and deploy[0] == hit["time"]
    assert assert_restarted_from_latest(result, failed) == 1
    assert result.restarts == 2
    assert_exactly_once(result)


def test_phase_recovery_commit() -> None:
    """A crash after checkpoint 1 completed, before its notification: the restored sink must
    commit the pending transaction itself, and crashes while doing so."""
    base = clean()
    done = base.checkpoints[0].completed
    at = done + base.scenario.timing.rpc_latency / 2
    result = run(scenario(Crash(at, "map[0]"), PhaseCrash("recovery_commit", "sink[1]", 1)))
    txn = precommitted(result, "sink[1]", 1)
    first_failure = events(result, "failed")[0]
    assert first_failure[0] == at
    assert not [e for e in before(result, first_failure) if e[1] == "commit" and e[3][0] == txn]
    assert assert_restarted_from_latest(result, first_failure) == 1
    hit = phase_fired(result, "recovery_commit", "sink[1]", 1)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[1]")
    assert not [e for e in before(result, failed) if e[1] == "commit" and e[3][0] == txn]
    assert assert_restarted_from_latest(result, failed) == 1
    # the next attempt's recovery commits it
    commits = commits_of(result, txn)
    assert commits and commits[0][3][1:] == (1, "recovery") and commits[0][0] > failed[0]
    assert result.restarts == 2
    assert_exactly_once(result)


def test_phase_stop_savepoint() -> None:
    """stop-with-savepoint completed; sink[0] committed its side effects and crashes before
    the job finished.  Flink does not fall back to an older checkpoint (FLINK-26783): the
    job fails, the user restores the savepoint (its commit is idempotent), and the output
    is exactly-once."""
    base = clean()
    at = base.checkpoints[0].completed + 2.0
    result = run(scenario(PhaseCrash("stop_savepoint", "sink[0]"),
                          savepoints=(SavepointRequest(at=at, stop=True),)))
    savepoint = result.savepoints[0]
    assert savepoint.stop
    hit = phase_fired(result, "stop_savepoint", "sink[0]", savepoint.id)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink[0]")
    assert savepoint.completed < hit["time"]
    # the savepoint's transaction of sink[0] was committed just before the crash
    commits = commits_of(result, precommitted(result, "sink[0]", savepoint.id))
    assert commits and commits[0][0] == hit["time"]
    assert result.status == "failed" and result.restarts == 0
    assert not events(result, "restart")
    onceflow.check(result)
    restored = restore(result, savepoint)
    assert [e[3] for e in events(restored, "deploy")][0] == (1, f"savepoint {savepoint.id}")
    assert_exactly_once(restored)


def test_phase_end_of_input() -> None:
    result = run(scenario(PhaseCrash("end_of_input", "reduce[0]")))
    hit = phase_fired(result, "end_of_input", "reduce[0]")
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "reduce[0]")
    # reduce[0]'s inputs had ended; it crashed before it recorded its end of input
    assert not [e for e in before(result, failed) if e[1] == "end_of_input"
                and e[2] == "reduce[0]"]
    assert [e for e in before(result, failed) if e[1] == "end_of_input"
            and e[2].startswith("map")]
    latest = assert_restarted_from_latest(result, failed)
    assert latest is not None
    # after the restart the input ends again and the final checkpoint commits the tail
    evs = result.trace.events
    eoi = [evs.index(e) for e in events(result, "end_of_input", "reduce[0]")]
    assert eoi and eoi[0] > evs.index(failed)
    final = [e for e in events(result, "completed") if evs.index(e) > max(eoi)]
    assert final
    assert_exactly_once(result)


def _global_commit_crash(phase: str) -> None:
    """The global committer crashes in the middle of checkpoint 2's global commit (after
    or before the first of its transactions): the restored job commits all of it again."""
    result = run(scenario(PhaseCrash(phase, "sink.global[0]", 2), sink="two_phase_global"))
    hit = phase_fired(result, phase, "sink.global[0]", 2)
    failed = failure_after(result, hit)
    assert (failed[0], failed[2]) == (hit["time"], "sink.global[0]")
    # checkpoint 2's transactions, one per sink subtask, as the recovered global commit names them
    txns = list(next(e[3][0] for e in events(result, "global_commit", "sink.global[0]")
                     if e[3][1] == 2))
    assert len(txns) == 2
    committed: dict[str, float] = {}
    for v in result.store.visibility():
        committed.setdefault(v.txn, v.time)
    first = txns if phase == "global_commit_before" else txns[1:]
    # the crash struck before these of checkpoint 2's transactions were committed
    assert all(committed.get(t, float("inf")) > hit["time"] for t in first)
    assert assert_restarted_from_latest(result, failed) is not None
    assert all(t in committed for t in txns)
    assert_exactly_once(result)


def test_phase_global_commit_before() -> None:
    _global_commit_crash("global_commit_before")


def test_phase_global_commit_after() -> None:
    _global_commit_crash("global_commit_after")


def test_every_crash_phase_has_a_scenario_test() -> None:
    missing = [p for p in CRASH_PHASES if not callable(globals().get(f"test_phase_{p}"))]
    assert not missing, f"no hand-written scenario test for phase(s) {missing}"
