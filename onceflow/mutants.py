"""Named mutants: switchable re-creations of real exactly-once bugs.

With no mutant on, the model is correct.  Each mutant changes one mechanism,
at the place where the real bug lived (the model asks `job.mutant(name)`
there); none touches the properties or the oracle.
"""

from __future__ import annotations

from attrs import frozen

from onceflow.errors import ScenarioError

__all__ = ["MUTANTS", "Mutant", "validate_mutants", "zoo_markdown"]


@frozen
class Mutant:
    name: str
    source: str
    mechanism: str
    symptom: str
    where: str


MUTANTS: dict[str, Mutant] = {m.name: m for m in (
    Mutant("savepoint-commits", "FLINK-6328, FLINK-10354, FLINK-25191",
           "an intermediate savepoint notifies the sinks, which commit its transactions; "
           "a later failover goes back to an older checkpoint and replays them",
           "duplicate", "model/coordinator.py: CheckpointCoordinator.complete"),
    Mutant("stop-savepoint-fallback", "FLINK-26783",
           "the commit of a stop-with-savepoint fails and the job fails over to the latest "
           "checkpoint, which is older than the savepoint",
           "duplicate", "model/job.py: Job.fail"),
    Mutant("drained-stop-resumes", "FLINK-21030",
           "a stop-with-savepoint --drain fails after the sources drained, and the job goes "
           "on instead of failing over: the input stays cut short where the drain ended it",
           "lost", "model/task.py: SourceTask._stop_failed"),
    Mutant("failed-stop-stays-stopped", "FLINK-21030",
           "a stop-with-savepoint fails and the job neither fails over nor resumes: the "
           "sources stay stopped and the job never finishes",
           "stuck", "model/task.py: SourceTask._stop_failed"),
    Mutant("recovery-skips-latest-checkpoint", "FLINK-22502, FLINK-5940",
           "a recovered job manager cannot retrieve its latest checkpoint and recovers from "
           "an older one (or none): transactions the latest one committed are replayed",
           "duplicate", "model/job.py: Job.finished_flag_lost"),
    Mutant("final-notification-exact", "FLIP-147",
           "a finished task waits for the notification of exactly its final checkpoint; "
           "when that notification is lost, a later checkpoint's does not release it and "
           "the job never finishes",
           "stuck", "model/task.py: Task.notify_complete"),
    Mutant("committer-not-idempotent", "Sink V2 Committer contract (commit must be idempotent)",
           "the committer publishes a transaction's data again when asked to commit a "
           "transaction that already committed, as a recovery after a crash does",
           "duplicate", "model/sinks.py: StoreCommitter.commit"),
    Mutant("no-final-checkpoint", "FLIP-147, FLINK-2491",
           "the job finishes at end of input without a final checkpoint, so the last "
           "transactions are never committed",
           "lost", "model/job.py: Job.sink_ended"),
    Mutant("commit-only-exact-id", "FLINK-10377, FLINK-14979",
           "notify-complete(n) commits only the transaction of n, not every pending one <= n; "
           "a lost or subsumed notification strands older ones",
           "lost", "components/sinkv2.py: CommitterOperator.notify_checkpoint_complete"),
    Mutant("abort-discards", "CheckpointListener contract",
           "notify-aborted(n) aborts the pending transaction of n, whose data is still needed",
           "lost", "components/sinkv2.py: CommitterOperator.notify_checkpoint_aborted"),
    Mutant("unaligned-misses-inflight", "FLINK-20645",
           "an unaligned snapshot forgets the last overtaken output buffer of each channel",
           "lost", "model/task.py: Task.emit_barrier"),
    Mutant("unaligned-pointwise-rescale", "FLINK-21936, FLINK-21945",
           "barriers overtake on forward edges too, and on restore the in-flight data of a "
           "forward channel is redistributed to the neighbouring subtask",
           "reordered", "model/job.py: Job.deploy (channel state)"),
    Mutant("unaligned-broadcast", "FLINK-22815",
           "barriers overtake on broadcast edges, and on restore every receiver gets subtask "
           "0's in-flight broadcast data on top of its own",
           "duplicate", "model/job.py: Job.deploy (channel state)"),
    Mutant("unaligned-committables", "FLINK-36287, apache/iceberg #15846",
           "an unaligned barrier overtakes the committable of the sink's transaction, so the "
           "snapshot does not list it and a restore aborts it",
           "lost", "components/sinkv2.py: SinkV2.snapshot_state"),
    Mutant("eoi-committables-deserted", "FLINK-26403",
           "the sink writer does not emit its pending committables at end of input and "
           "emits nothing at the final checkpoint either: the last transaction is never "
           "committed",
           "lost", "components/sinkv2.py: SinkWriterOperator.end_input"),
    Mutant("committer-drops-failed-commit", "FLINK-23896",
           "the committer does not retry a committable whose commit failed transiently: "
           "it is dropped, and its transaction never commits",
           "lost", "components/sinkv2.py: CommitterOperator._commit"),
    Mutant("recovered-committables-orphaned", "FLINK-29512",
           "restored committables are not committed in initializeState; they keep a "
           "checkpoint id whose summary does not come back, so the committer never sees "
           "them fully received and never commits them",
           "lost", "components/sinkv2.py: CommitterOperator.initialize_state"),
    Mutant("lingering-transactions", "FLINK-23854",
           "recovery does not abort transactions opened after the last checkpoint",
           "stuck", "components/sinkv2.py: SinkWriterOperator.open"),
    Mutant("short-txn-timeout", "Kafka docs, KAFKA-6119",
           "the external transaction timeout is shorter than checkpoint interval plus restart "
           "time, so the store expires transactions before they are committed",
           "lost", "model/job.py: Job.__init__ (store)"),
    Mutant("split-lost-on-rescale", "FLINK-34063, FLINK-40469",
           "a source split is dropped when splits are redistributed on a rescaled restore "
           "(from the readers' state and the enumerator's)",
           "lost", "model/job.py: Job.deploy, model/source_coordinator.py: SourceCoordinator"),
    Mutant("enumerator-event-overtakes-barrier", "FLINK-16986, FLINK-18071, FLINK-28606",
           "no valve between the enumerator's checkpoint and the barrier injection: a split "
           "assigned in between reaches its reader before the barrier, so the snapshot holds "
           "it twice (with the enumerator and with the reader)",
           "duplicate", "model/source_coordinator.py: SourceCoordinator._send"),
    Mutant("splits-back-include-checkpointed", "FLINK-20290",
           "the assignment tracker keeps assignments after their checkpoint completed, so on "
           "failover the enumerator gets back every split ever assigned to the failed reader, "
           "also those the reader restores from the checkpoint: they are read twice",
           "duplicate", "model/source_coordinator.py: SourceCoordinator.checkpoint_complete"),
    Mutant("no-splits-back", "FLINK-21996, FLINK-20290",
           "on failover the splits assigned since the restored checkpoint are not given back "
           "to the enumerator (the assignment is treated as delivered): nobody reads them",
           "lost", "model/source_coordinator.py: SourceCoordinator.reset_subtasks"),
    Mutant("rescale-skips-stateless", "FLINK-31963",
           "a rescaled restore of an unaligned checkpoint skips state assignment for stateless "
           "operators, so the in-flight data on their input and output channels is never "
           "reassigned",
           "lost", "model/rescaling.py: redistribute_channel_state"),
    Mutant("rescale-drops-output-state", "FLINK-38544",
           "on an unaligned-checkpoint downscale the output-side in-flight buffers of the "
           "sender subtasks that the downscale removes reach no new subtask (the rare loss "
           "UnalignedCheckpointRescaleITCase showed downscaling 7 -> 2)",
           "lost", "model/rescaling.py: redistribute_channel_state"),
    Mutant("rescale-unfiltered-inflight", "FLINK-19801, FLINK-35351",
           "an ambiguous (RANGE) channel-state mapping on rescale is replayed without the "
           "virtual channels' record filter: every new subtask whose key-group range overlaps "
           "an old one replays all of its in-flight records",
           "duplicate", "model/rescaling.py: redistribute_channel_state"),
    # -- mut16 (issue 16): bugs of the enumerator's failover path and the aligned timeout --
    Mutant("enumerator-restores-latest-snapshot", "FLINK-18071, FLINK-21996",
           "on a global failover (a recovered job manager) the split enumerator restarts from "
           "the newest state it snapshotted, of a checkpoint that never completed, while the "
           "readers restore the latest completed one: splits assigned in between are in "
           "neither",
           "lost", "model/source_coordinator.py: SourceCoordinator.reset_to_checkpoint"),
    Mutant("enumerator-not-reset-without-checkpoint", "FLINK-20222",
           "a global failover before the first completed checkpoint gives the coordinator no "
           "reset signal: the enumerator goes on with the splits it has not assigned yet, "
           "and those it had assigned to the failed readers are read by nobody",
           "lost", "model/source_coordinator.py: SourceCoordinator.reset_to_checkpoint"),
    Mutant("splits-back-only-failed-reader", "FLINK-20290",
           "a failover restarts every reader, but only the readers that failed are reset on "
           "the coordinator: splits assigned after the checkpoint to a reader restarted with "
           "them never go back to the enumerator",
           "lost", "model/source_coordinator.py: SourceCoordinator.reset_subtasks"),
    Mutant("stale-events-to-new-reader", "FLINK-18071",
           "enumerator events are addressed to a subtask index, not to its execution "
           "attempt: one in flight (or held by the valve) when the reader fails reaches "
           "the reader that replaces it: a split the tracker also gives back is read twice, "
           "a stale no-more-splits ends the new reader before it gets its splits",
           "lost / duplicate", "model/source_coordinator.py: SourceCoordinator._arrive"),
    Mutant("timeout-misses-inflight", "FLINK-27251, FLINK-19681",
           "when the aligned-checkpoint timeout switches a task to unaligned, the data still "
           "ahead of the barriers that have not arrived is not persisted as channel state: "
           "a restore of that checkpoint never sees it",
           "lost", "model/barriers.py: UnalignedHandler._go_unaligned"),
    Mutant("unstable-key-hash", "Flink docs (keyBy: a key type needs a deterministic "
           "hashCode; enums and POJOs without hashCode break after a restore)",
           "the key's hash differs in the restored job (an identity hashCode), so records are "
           "routed to other key groups than the ones their keyed state was restored into",
           "lost", "model/task.py: Task.route"),
    # -- store faults (issue 11): each needs its fault to be found ---------------------
    Mutant("writer-swallows-lost-transaction", "FLINK-31305, FLINK-35749, KAFKA-4473",
           "the sink writer catches the error of a write or flush into a transaction the "
           "external system dropped (a fenced or timed-out producer) and goes on: the task "
           "does not fail, the dead transaction is pre-committed and its commit fails, so "
           "its records never appear",
           "lost", "model/sinks.py: StoreWriter.write, StoreWriter.pre_commit"),
    Mutant("committer-commits-async", "apache/paimon #8671",
           "the committer starts a commit and returns at once, treating it as done; when "
           "the commit is slow the task finishes (or fails) before it lands and closing the "
           "connection abandons it, after the committable left the committer's state",
           "lost", "model/sinks.py: StoreCommitter.commit"),
    Mutant("committer-resends-in-doubt", "apache/iceberg #2808, apache/iceberg #16008",
           "a crash interrupts a slow commit whose request reached the store; the restored "
           "committer finds the transaction not committed yet, takes the commit for failed "
           "and publishes the committable's records anew (a new commit, not the same one "
           "again) while the store completes the interrupted one: the records land twice",
           "duplicate", "model/sinks.py: StoreCommitter.commit"),
    Mutant("at-least-once-mode", "Flink docs (negative control)",
           "barriers are not aligned: records behind an early barrier reach state before the "
           "snapshot",
           "duplicate", "model/barriers.py: make_handler"),
    Mutant("snapshot-after-forward", "epoch mixing",
           "the task forwards the barrier and processes post-barrier records before it takes "
           "its snapshot",
           "duplicate", "model/task.py: Task.snapshot"),
    # -- FLIP-147: checkpoints after tasks finished (branch flip147) --
    Mutant("alignment-waits-finished-input", "FLINK-21086",
           "alignment waits for a barrier on a channel whose sender finished (its end of "
           "partition arrived): the checkpoint never completes, it expires and the job "
           "fails over until its restarts run out",
           "stuck", "model/barriers.py: BarrierHandler._start"),
    Mutant("finished-on-restore-reruns", "FLINK-21088, FLINK-21089",
           "a restore (failover or resume) of a checkpoint in which the sources had fully "
           "finished does not pass the finished flag to the tasks: the sources run again, "
           "and their enumerator, whose state a fully finished operator does not keep, "
           "assigns every split from the start, so the input is read twice",
           "duplicate", "model/job.py: Job.finished_flag_lost"),
    # -- the Sink V2 global committer (components/globalcommitter.py) --
    Mutant("global-commit-on-notify", "FLINK-24530",
           "the global committer commits what it holds when notified that a checkpoint "
           "completed, which reaches it before the committers sent that checkpoint's "
           "committables; those arrive later and are taken as already committed",
           "lost", "components/globalcommitter.py: GlobalCommitterOperator.receive"),
    Mutant("global-skips-partly-committed", "apache/iceberg #14090",
           "a retried or restored global committer takes a checkpoint as committed when one "
           "of its committables is, and skips the rest of it (a failed commit or a crash in "
           "the middle of a global commit leaves the others uncommitted)",
           "lost", "components/globalcommitter.py: StoreGlobalCommitter.commit"),
    # -- zoo15: the global committer after a rescaled restore --
    Mutant("global-summary-new-parallelism", "FLINK-37747",
           "after a rescaled restore the committers send their restored committables on "
           "with summaries naming the new subtask count, while only the subtasks that "
           "restored committables send any: the global committer waits for summaries that "
           "never come and commits nothing from then on",
           "stuck", "components/sinkv2.py: SinkV2._restored_senders"),
    # -- aborts16: FLINK-21080, union list state and partial finishing --
    Mutant("abort-drops-latest-completed", "FLINK-21080",
           "an abort notification does not carry the latest completed checkpoint: a subtask "
           "of an operator with union list state whose notification of the final checkpoint "
           "was lost never finishes, since every later checkpoint aborts while the operator "
           "is partly finished",
           "stuck", "model/coordinator.py: CheckpointCoordinator.abort"),
)}


def validate_mutants(names: tuple[str, ...]) -> None:
    for i, name in enumerate(names):
        if name not in MUTANTS:
            raise ScenarioError(f"mutants[{i}]", f"unknown mutant {name!r}; known: "
                                                 f"{', '.join(sorted(MUTANTS))}")
    if len(set(names)) != len(names):
        raise ScenarioError("mutants", "a mutant is listed twice")


def zoo_markdown() -> str:
    """The zoo as a table in the format of the shared engine-bugs reference."""
    rows = ["| name | source | mechanism | symptom the properties must report | where |",
            "|---|---|---|---|---|"]
    for m in MUTANTS.values():
        rows.append(f"| {m.name} | {m.source} | {m.mechanism} | {m.symptom} | {m.where} |")
    return "\n".join(rows) + "\n"
