"""Sink V2: Flink 2.x's two-phase committing sink, a writer operator chained to a
committer operator in each sink subtask.

- `SinkWriterOperator` writes records into the open transaction of a user
  `SinkWriter`; in `prepare_snapshot_pre_barrier(n)` it pre-commits it and emits
  its committables as messages: a `CommittableSummary` and one
  `CommittableWithLineage` per committable, for checkpoint n.  At end of input
  it emits the pending committables at once (FLINK-26403), under `EOI`.
- `CommitterOperator` collects the messages per checkpoint and subtask, keeps
  them in its state, and on notify-complete(n) commits every checkpoint <= n
  whose committables all arrived (as its summary counts them), retrying a
  transient failure and failing the task when retries run out.  On restore it
  commits the restored committables in `initialize_state` (commit is
  idempotent).  End-of-input committables are committed with the final
  checkpoint (the first one taken after them).

As in Flink, writer and committer run chained (equal parallelism, forward):
the committables reach the committer before the barrier, so the committer's
snapshot of n holds them.  A sink with a `global_committer` sends what its
committer committed on to a `GlobalCommitterOperator` at parallelism 1
(`onceflow.components.globalcommitter`), which makes it visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from attrs import frozen

from onceflow.model.records import Record
from onceflow.model.task import TaskCrash

if TYPE_CHECKING:
    from onceflow.model.sinks import Committer, SinkWriter
    from onceflow.model.task import OperatorContext

__all__ = ["COMMIT_RETRIES", "EOI", "CommittableSummary", "CommittableWithLineage",
           "CommitterOperator", "SinkV2", "SinkWriterOperator"]

#: How often a committer retries a commit that failed transiently before it fails.
COMMIT_RETRIES = 5

#: The checkpoint id of committables emitted at end of input (Flink's Long.MAX_VALUE).
EOI = 2**63 - 1


@frozen
class CommittableSummary:
    """How many committables subtask `subtask` (of `parallelism`) emits for checkpoint
    `checkpoint_id`: the committer commits a checkpoint once all of them arrived."""

    subtask: int
    parallelism: int
    checkpoint_id: int
    count: int


@frozen
class CommittableWithLineage:
    """One committable (a transaction id) of checkpoint `checkpoint_id` from `subtask`."""

    committable: str
    checkpoint_id: int
    subtask: int


class SinkWriterOperator:
    """Flink's `SinkWriterOperator`: the user's writer, one open transaction at a time."""

    def __init__(self, writer: "SinkWriter") -> None:
        self.writer = writer
        self.txn: str | None = None
        self.ended = False

    def open(self, ctx: "OperatorContext", keep: set[str]) -> None:
        """Abort what this subtask left open and nobody will commit (not in `keep`,
        the restored committables), then begin a transaction."""
        self.ctx = ctx
        if not ctx.mutant("lingering-transactions"):
            p = ctx.parallelism
            for txn in ctx.store.open_transactions(ctx.uid):
                if txn.owner[1] % p == ctx.subtask and txn.id not in keep:
                    self.writer.abort(ctx, txn.id)
                    ctx.event("abort", txn.id)
        self.txn = self.writer.begin(ctx)

    def write(self, records: list[Record]) -> None:
        if self.txn is None:
            # input after end of input: as Flink's BoundedOneInput warns, a restore may
            # bring new data to a subtask whose state was taken after its end of input
            self.ended = False
            self.txn = self.writer.begin(self.ctx)
        self.writer.write(self.ctx, self.txn, records)

    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> list[Any]:
        """Pre-commit the open transaction and emit it as the committable of
        `checkpoint_id`; nothing after end of input (it emitted its last then)."""
        if self.ended:
            return []
        return self._emit(checkpoint_id, begin=True)

    def end_input(self) -> list[Any]:
        """Emit the pending committables now, under `EOI` (FLINK-26403)."""
        if self.ended:
            return []  # a duplicate end of input (FLINK-25920)
        self.ended = True
        if self.ctx.mutant("eoi-committables-deserted"):
            return []  # the last transaction is left for a final checkpoint that ignores it
        return self._emit(EOI, begin=False)

    def _emit(self, checkpoint_id: int, *, begin: bool) -> list[Any]:
        ctx = self.ctx
        txn = self.txn
        assert txn is not None
        self.writer.pre_commit(ctx, txn)
        ctx.event("pre_commit", txn, checkpoint_id)
        ctx.phase("pre_commit", checkpoint_id)
        self.txn = self.writer.begin(ctx) if begin else None
        return [CommittableSummary(ctx.subtask, ctx.parallelism, checkpoint_id, 1),
                CommittableWithLineage(txn, checkpoint_id, ctx.subtask)]

    def close(self) -> None:
        if self.txn is not None:
            self.writer.abort(self.ctx, self.txn)
            self.txn = None


class _Received:
    """What one upstream subtask sent for one checkpoint."""

    __slots__ = ("expected", "committables")

    def __init__(self) -> None:
        self.expected: int | None = None  # from its summary
        self.committables: list[str] = []

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.expected == len(self.committables)


class _NoJob:
    """What `_commit` reads of a job, for a context that runs in none."""

    stall = 0.0
    committing = False


class CommitterOperator:
    """Flink's `CommitterOperator`: collects committables with their summaries and
    commits them when their checkpoint completes."""

    def __init__(self, committer: "Committer") -> None:
        self.committer = committer
        from onceflow.model.sinks import _accepts  # noqa: PLC0415 (the sinks import this module)

        # Committer.commit(ctx, txn, checkpoint_id); a two-argument commit is called so
        self.commit_takes_id = _accepts(committer.commit, 3)
        #: checkpoint id -> upstream subtask -> what arrived (Flink's CommittableCollector)
        self.collector: dict[int, dict[int, _Received]] = {}

    def initialize_state(self, ctx: "OperatorContext", restored: Any) -> None:
        """Commit the restored committables now (they belong to completed checkpoints
        or to a checkpoint whose completion this subtask may not have heard of)."""
        self.ctx = ctx
        for checkpoint_id, txn in restored or ():
            if ctx.mutant("recovered-committables-orphaned"):
                # FLINK-29512: the restored committable keeps its old checkpoint id while its
                # summary does not come back: the checkpoint never looks fully received
                self.collector.setdefault(checkpoint_id, {}).setdefault(-1, _Received()) \
                    .committables.append(txn)
                continue
            ctx.phase("recovery_commit", checkpoint_id)
            self._commit(txn, checkpoint_id, "recovery")

    def receive(self, messages: list[Any]) -> None:
        for m in messages:
            entry = self.collector.setdefault(m.checkpoint_id, {}).setdefault(m.subtask, _Received())
            if m.__class__ is CommittableSummary:
                entry.expected = m.count
            else:
                entry.committables.append(m.committable)

    def snapshot_state(self, checkpoint_id: int) -> list[tuple[int, str]]:
        """Every committable not committed yet; end-of-input ones now belong to this
        (final) checkpoint."""
        eoi = self.collector.pop(EOI, None)
        if eoi is not None:
            into = self.collector.setdefault(checkpoint_id, {})
            for subtask, got in eoi.items():
                mine = into.setdefault(subtask, _Received())
                mine.committables.extend(got.committables)
                mine.expected = (mine.expected or 0) + (got.expected or 0)
        return self.pending

    @property
    def pending(self) -> list[tuple[int, str]]:
        """(checkpoint id, committable) of everything held, in checkpoint order."""
        return [(cid, txn) for cid in sorted(self.collector)
                for got in self.collector[cid].values() for txn in got.committables]

    def replace(self, items: list[tuple[int, str]]) -> None:
        """Hold exactly `items`, (checkpoint id, committable), as fully received."""
        self.collector = {}
        for cid, txn in items:
            got = self.collector.setdefault(cid, {}).setdefault(self.ctx.subtask, _Received())
            got.committables.append(txn)
            got.expected = len(got.committables)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> list[tuple[int, list[str]]]:
        """Commit every fully received checkpoint <= `checkpoint_id`, oldest first; the
        committed ones, (checkpoint id, committables)."""
        ctx = self.ctx
        exact = ctx.mutant("commit-only-exact-id")
        done: list[tuple[int, list[str]]] = []
        for cid in sorted(self.collector):
            if cid == EOI:
                continue
            due = cid == checkpoint_id or (cid < checkpoint_id and not exact)
            received = self.collector[cid]
            if not due or not all(got.complete for got in received.values()):
                continue
            for got in received.values():
                for txn in got.committables:
                    # the phases of the checkpoint whose committable this is
                    ctx.phase("commit_before", cid)
                    self._commit(txn, cid, "notify")
                    ctx.phase("commit_after", cid)
            del self.collector[cid]
            done.append((cid, [txn for got in received.values() for txn in got.committables]))
        return done

    def notify_checkpoint_aborted(self, checkpoint_id: int, writer: "SinkWriter") -> None:
        ctx = self.ctx
        if ctx.mutant("abort-discards") and checkpoint_id in self.collector:
            for got in self.collector.pop(checkpoint_id).values():
                for txn in got.committables:
                    writer.abort(ctx, txn)
                    ctx.event("abort", txn)

    def _commit(self, txn: str, checkpoint_id: int, why: str) -> None:
        """Commit `txn`, retrying transient failures; a commit that keeps failing fails
        the task (the committables stay in the last checkpoint: a restore commits them)."""
        ctx = self.ctx
        task = getattr(ctx, "task", None)  # (a bare context in unit tests has none)
        job = task.job if task is not None else _NoJob()
        for _ in range(COMMIT_RETRIES):
            busy = job.stall
            job.committing = True  # this task waits for its commit: it may be in flight
            try:
                ok = (self.committer.commit(ctx, txn, checkpoint_id) if self.commit_takes_id
                      else self.committer.commit(ctx, txn))  # type: ignore[call-arg]
            finally:
                job.committing = False
            if ok is not None:
                ctx.event("commit" if ok else "commit_lost", txn, checkpoint_id, why)
                if job.stall > busy:  # a slow commit: in flight until the task resumes
                    ctx.phase("commit_in_flight", checkpoint_id)
                return
            ctx.event("commit_retry", txn, checkpoint_id)
            if ctx.mutant("committer-drops-failed-commit"):
                return  # FLINK-23896: a failed committable was not retried
        raise TaskCrash(f"commit of {txn} failed {COMMIT_RETRIES} times")

    def close(self, writer: "SinkWriter") -> None:
        """The task finished: abort what is still held (nothing, after the final commit)."""
        for cid in list(self.collector):
            for got in self.collector.pop(cid).values():
                for txn in got.committables:
                    writer.abort(self.ctx, txn)


class SinkV2:
    """A Sink V2 subtask: `SinkWriterOperator` chained to `CommitterOperator`.

    Plug in another external system with your own `writer` (Flink's
    `PrecommittingSinkWriter`) and `committer` (Flink's `Committer`).
    """

    state_kind: ClassVar[str | None] = "list"

    #: Flink's `SupportsPostCommitTopology` with `addGlobalCommitter`: a `GlobalCommitter`
    #: (commit(ctx, committables, checkpoint_id)) behind the committers, or None
    global_committer: Any = None

    def __init__(self, writer: "SinkWriter | None" = None,
                 committer: "Committer | None" = None,
                 global_committer: Any = None) -> None:
        from onceflow.model.sinks import StoreCommitter, StoreWriter  # noqa: PLC0415

        self.writer: "SinkWriter" = writer if writer is not None else StoreWriter()
        self.committer: "Committer" = committer if committer is not None else StoreCommitter()
        if global_committer is not None:
            self.global_committer = global_committer
        self.writer_op = SinkWriterOperator(self.writer)
        self.committer_op = CommitterOperator(self.committer)

    # chained operators initialize from the tail: the committer first
    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx
        self.committer_op.initialize_state(ctx, restored)
        keep = {txn for _, txn in ctx.restored_union or ()} | self._held_by_global(ctx)
        if self.global_committer is not None and restored:
            # the restored committables go on to the global committer after their
            # recovery commit, from the subtasks that restored them (Flink's emit)
            mine: dict[int, list[str]] = {}
            for cid, txn in restored:
                mine.setdefault(cid, []).append(txn)
            senders = self._restored_senders(ctx)
            for cid in sorted(mine):
                self._send_on(cid, mine[cid], senders.get(cid, ctx.parallelism))
        self.writer_op.open(ctx, keep)

    def _held_by_global(self, ctx: "OperatorContext") -> set[str]:
        """The committables the restored global committer holds (of a checkpoint split
        between its state and the committers'): not to be aborted, it commits them."""
        if self.global_committer is None:
            return set()
        from onceflow.components.globalcommitter import global_uid  # noqa: PLC0415
        from onceflow.model.snapshot import list_union  # noqa: PLC0415

        snapshot = ctx.task.job.restoring
        merged = snapshot.state.get(global_uid(ctx.uid)) if snapshot is not None else None
        return {txn for _, txns, _ in list_union(merged) for txn in txns}

    @staticmethod
    def _restored_senders(ctx: "OperatorContext") -> dict[int, int]:
        """Checkpoint id -> how many subtasks of this restored sink hold committables
        of it: the subtask count their summaries name (Flink's `min(new, old subtask
        count)` where each old subtask's state is one collector; the model splits the
        committables themselves, so it counts the subtasks that got some)."""
        from onceflow.model.snapshot import state_for_subtask  # noqa: PLC0415

        snapshot = ctx.task.job.restoring
        merged = snapshot.state.get(ctx.uid) if snapshot is not None else None
        if merged is None:
            return {}
        p = ctx.parallelism
        if ctx.mutant("global-summary-new-parallelism") and snapshot.parallelism.get(ctx.uid) != p:
            # FLINK-37747: the summaries name the new subtask count, while only the
            # subtasks that restored committables send one: the global committer waits
            return {cid: p for part in merged for cid, _ in part}
        counts: dict[int, int] = {}
        for s in range(p):
            share = state_for_subtask("list", merged, s, p, ctx.max_parallelism) or ()
            for cid in {cid for cid, _ in share}:
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    def _send_on(self, checkpoint_id: int, committables: list[str],
                 senders: int | None = None) -> None:
        """Send committed `committables` of `checkpoint_id` to the global committer, with
        a summary naming `senders` subtasks (the sink's parallelism when None)."""
        ctx = self.ctx
        target = ctx.task.attempt.global_task
        if target is None:
            return
        target.send(ctx.subtask, "message", CommittableSummary(
            ctx.subtask, ctx.parallelism if senders is None else senders, checkpoint_id,
            len(committables)))
        for txn in committables:
            target.send(ctx.subtask, "message",
                        CommittableWithLineage(txn, checkpoint_id, ctx.subtask))

    @property
    def txn(self) -> str | None:
        """The writer's open transaction."""
        return self.writer_op.txn

    @property
    def pending(self) -> list[tuple[int, str]]:
        """The committables the committer holds: (checkpoint id, transaction)."""
        return self.committer_op.pending

    @pending.setter
    def pending(self, items: list[tuple[int, str]]) -> None:
        """Replace what the committer holds (each checkpoint then counts as fully received)."""
        self.committer_op.replace(items)

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.writer_op.write(records)

    def end_input(self, out: list[Record]) -> None:
        self.committer_op.receive(self.writer_op.end_input())

    def snapshot_state(self, checkpoint_id: int) -> Any:
        self.committer_op.receive(self.writer_op.prepare_snapshot_pre_barrier(checkpoint_id))
        state = self.committer_op.snapshot_state(checkpoint_id)
        ctx = self.ctx
        if self.global_committer is not None:
            # the barrier goes on to the global committer behind what was sent before it
            target = ctx.task.attempt.global_task
            if target is not None:
                target.send(ctx.subtask, "barrier", checkpoint_id)
        if ctx.mutant("unaligned-committables") and ctx.task.job.scenario.checkpoints.mode == "unaligned":
            # FLINK-36287: the barrier overtook the committable on its way to the committer
            return [item for item in state if item[0] != checkpoint_id]
        return state

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        done = self.committer_op.notify_checkpoint_complete(checkpoint_id)
        if self.global_committer is not None:
            for cid, committables in done:
                self._send_on(cid, committables)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        self.committer_op.notify_checkpoint_aborted(checkpoint_id, self.writer)

    def close(self) -> None:
        """The task ends, finished or not (failover, cancel): the writer aborts its open
        transaction, as Flink's writers do; the committables stay in the committer's
        checkpointed state for the restored job to commit (none are left after the
        final commit)."""
        self.writer_op.close()
