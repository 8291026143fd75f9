"""Sink V2 (`onceflow.components.sinkv2`): a writer chained to a committer, committables
as messages with summaries, end-of-input committables, retries, recovery commits; and the
mutants of these mechanisms, each killed on a hand-built scenario that the correct model
passes."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

import onceflow
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology, Vertex,
                      Violation, Workload, run)
from onceflow.components.sinkv2 import (EOI, CommittableSummary, CommittableWithLineage,
                                        CommitterOperator, SinkWriterOperator)
from onceflow.faults.plan import CoordinatorCrash, NotifyFault, PhaseCrash, StorageFault, StoreFault
from onceflow.model.sinks import StoreCommitter, StoreWriter
from onceflow.stores import MemoryStore


def scenario(*faults: Any, mutants: tuple[str, ...] = (), **checkpoints: Any) -> Scenario:
    return Scenario(
        topology=Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 1),
                           Vertex("reduce", "reduce", 2, "hash"),
                           Vertex("sink", "sink", 2, "forward")), max_parallelism=8),
        workload=Workload(records=200, keys=8, splits=2),
        checkpoints=CheckpointConfig(interval=8.0, **checkpoints),
        timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
        sink="two_phase", faults=faults, mutants=mutants)


def events(result: onceflow.RunResult, kind: str, where: str | None = None) -> list[Any]:
    return [e for e in result.trace.events if e[1] == kind and (where is None or e[2] == where)]


class FakeContext:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.now = 0.0
        self.uid = "sink"
        self.subtask = 0
        self.parallelism = 1
        self.attempt = "a1"
        self.restored_union = None
        self.events: list[tuple[Any, ...]] = []

    def phase(self, name: str, checkpoint_id: int) -> None:
        pass

    def mutant(self, name: str) -> bool:
        return False

    def event(self, kind: str, *detail: Any) -> None:
        self.events.append((kind, *detail))


def test_the_writer_emits_a_summary_and_its_committables_before_the_barrier() -> None:
    ctx = FakeContext(MemoryStore(1e6))
    writer = SinkWriterOperator(StoreWriter())
    writer.open(ctx, set())  # type: ignore[arg-type]
    first = writer.txn
    messages = writer.prepare_snapshot_pre_barrier(3)
    assert messages == [CommittableSummary(0, 1, 3, 1), CommittableWithLineage(first, 3, 0)]
    assert writer.txn != first  # a new transaction begins
    # at end of input the pending committables go out at once, under EOI (FLINK-26403)
    last = writer.txn
    assert writer.end_input() == [CommittableSummary(0, 1, EOI, 1),
                                  CommittableWithLineage(last, EOI, 0)]
    assert writer.end_input() == []  # a second end of input emits nothing (FLINK-25920)
    assert writer.prepare_snapshot_pre_barrier(4) == []


def test_the_committer_commits_only_fully_received_checkpoints_up_to_n() -> None:
    ctx = FakeContext(MemoryStore(1e6))
    writer = StoreWriter()
    committer = CommitterOperator(StoreCommitter())
    committer.initialize_state(ctx, None)  # type: ignore[arg-type]
    txns = [writer.begin(ctx) for _ in range(3)]  # type: ignore[arg-type]
    for t in txns:
        writer.pre_commit(ctx, t)  # type: ignore[arg-type]
    # checkpoint 1 complete; checkpoint 2's summary announces 2 committables, 1 arrived
    committer.receive([CommittableSummary(0, 1, 1, 1), CommittableWithLineage(txns[0], 1, 0),
                       CommittableSummary(0, 1, 2, 2), CommittableWithLineage(txns[1], 2, 0)])
    committer.notify_checkpoint_complete(2)
    assert [e[1] for e in ctx.events if e[0] == "commit"] == [txns[0]]
    assert committer.pending == [(2, txns[1])]
    committer.receive([CommittableWithLineage(txns[2], 2, 0)])
    committer.notify_checkpoint_complete(2)
    assert [e[1] for e in ctx.events if e[0] == "commit"] == txns
    assert committer.pending == []


def test_end_of_input_committables_are_committed_with_the_final_checkpoint() -> None:
    result = run(scenario())
    assert result.status == "finished"
    for sink in ("sink[0]", "sink[1]"):
        (eoi,) = [e for e in events(result, "pre_commit", sink) if e[3][1] == EOI]
        txn = eoi[3][0]
        (commit,) = [e for e in events(result, "commit", sink) if e[3][0] == txn]
        final = commit[3][1]
        assert final == max(s.id for s in result.checkpoints)  # the final checkpoint
        assert commit[0] == [e for e in events(result, "notified", sink) if e[3][0] == final][0][0]
    onceflow.check(result)


def test_restored_committables_are_committed_in_initialize_state() -> None:
    """A crash between a checkpoint's completion and its notification: the restored
    committer commits the committables of that checkpoint before anything else."""
    result = run(scenario(PhaseCrash("notify_complete", "sink[0]", 2)))
    (restore,) = [e for e in events(result, "restore", "sink[0]")]
    recovery = [e for e in events(result, "commit", "sink[0]") if e[3][2] == "recovery"]
    assert recovery and all(e[0] == restore[0] for e in recovery)
    onceflow.check(result)


# -- the mutants of these mechanisms ----------------------------------------------------------------

def _stop(drain: bool, *faults: Any, mutants: tuple[str, ...] = (), **cp: Any) -> Scenario:
    s = scenario(*faults, mutants=mutants, timeout=30.0, **cp)
    return evolve(s, savepoints=(SavepointRequest(at=10.0, stop=True, drain=drain),))


def _final_checkpoint() -> int:
    return max(s.id for s in run(scenario()).checkpoints)


SLOW_SAVEPOINT = StorageFault("slow_upload", 0, "sink[0]", 5000.0, snapshot="savepoint")

#: mutant -> (scenario that kills it, anomaly); each scenario passes without the mutant
KILLS: dict[str, tuple[Any, str]] = {
    "eoi-committables-deserted": (lambda m: scenario(mutants=m), "lost"),
    "committer-drops-failed-commit": (
        lambda m: scenario(StoreFault("commit_failure", 1.0, 1), mutants=m), "lost"),
    "recovered-committables-orphaned": (
        lambda m: scenario(PhaseCrash("notify_complete", "sink[0]", 2), mutants=m), "lost"),
    "committer-not-idempotent": (
        lambda m: scenario(PhaseCrash("commit_after", "sink[0]", 2), mutants=m), "duplicate"),
    "recovery-skips-latest-checkpoint": (
        lambda m: scenario(CoordinatorCrash(30.0), mutants=m), "duplicate"),
    # the abort of the checkpoint after the final one carries the final one's id (Flink's
    # latestCompletedCheckpointId), which would release the sink: that message is lost too
    "final-notification-exact": (
        lambda m: scenario(NotifyFault("lose", _final_checkpoint(), "sink[0]", 0.0, "complete"),
                           NotifyFault("lose", _final_checkpoint() + 1, "sink[0]", 0.0,
                                       "aborted"), mutants=m), "stuck"),
    "drained-stop-resumes": (lambda m: _stop(True, SLOW_SAVEPOINT, mutants=m), "lost"),
    "failed-stop-stays-stopped": (lambda m: _stop(False, SLOW_SAVEPOINT, mutants=m), "stuck"),
}


@pytest.mark.parametrize("mutant", sorted(KILLS))
def test_each_mutant_is_killed_and_its_scenario_passes_without_it(mutant: str) -> None:
    build, anomaly = KILLS[mutant]
    with pytest.raises(Violation) as info:
        onceflow.check(run(build((mutant,))))
    assert info.value.finding.anomaly == anomaly, info.value.finding
    onceflow.check(run(build(())))


def test_input_after_end_of_input_opens_a_new_transaction() -> None:
    """A restore (a rescale, or channel state moved by a bug) can bring records to a
    writer whose state was taken after its end of input (Flink's BoundedOneInput says
    so): it writes them into a new transaction, emitted at the next barrier."""
    ctx = FakeContext(MemoryStore(1e6))
    writer = SinkWriterOperator(StoreWriter())
    writer.open(ctx, set())  # type: ignore[arg-type]
    writer.end_input()
    assert writer.txn is None
    writer.write([])
    assert writer.txn is not None
    (summary, committable) = writer.prepare_snapshot_pre_barrier(5)
    assert summary == CommittableSummary(0, 1, 5, 1) and committable.checkpoint_id == 5


@pytest.mark.parametrize("mutant", ["committer-drops-failed-commit", "committer-not-idempotent",
                                    "recovery-skips-latest-checkpoint", "drained-stop-resumes",
                                    "failed-stop-stays-stopped"])
def test_these_mutants_need_their_fault(mutant: str) -> None:
    """Without its fault the same scenario passes with the mutant on: the bug lives in a
    window only a crash, a failed commit or a failed snapshot opens."""
    build, _ = KILLS[mutant]
    s = build((mutant,))
    onceflow.check(run(evolve(s, faults=())))
