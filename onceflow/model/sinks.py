"""Sinks: how output reaches the external store.

- `append`: writes at once; replays after a failover duplicate (at-least-once).
- `idempotent`: upserts by record id; replays overwrite (exactly-once effects).
- `two_phase`: one transaction per checkpoint, shaped like Flink's
  `TwoPhaseCommitSinkFunction`: pre-commit on the barrier, commit of every
  pending transaction <= n on notify-complete(n), and on restore commit the
  restored pending ones (commit is idempotent) and abort the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from onceflow.model.records import Record
from onceflow.model.task import TaskCrash

#: How often a sink retries a commit that failed transiently before it fails.
COMMIT_RETRIES = 5

if TYPE_CHECKING:
    from onceflow.model.task import OperatorContext

__all__ = ["AppendSink", "Committer", "IdempotentSink", "SinkWriter", "StoreCommitter", "StoreWriter",
           "TwoPhaseCommitSink", "make_sink"]


class _Sink:
    state_kind: ClassVar[str | None] = None

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class AppendSink(_Sink):
    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.append(self.ctx.now, records)


class IdempotentSink(_Sink):
    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.upsert(self.ctx.now, records)


class SinkWriter(Protocol):
    """The writing half of a two-phase sink (Flink's `PrecommittingSinkWriter`)."""

    def begin(self, ctx: "OperatorContext") -> str:
        """Open a new transaction in the external system; return its id."""

    def write(self, ctx: "OperatorContext", txn: str, records: list[Record]) -> None:
        """Write records into open transaction `txn` (invisible to read-committed)."""

    def pre_commit(self, ctx: "OperatorContext", txn: str) -> None:
        """Flush `txn`: after this, committing it must succeed."""

    def abort(self, ctx: "OperatorContext", txn: str) -> None:
        """Drop transaction `txn` and what was written into it."""


class Committer(Protocol):
    """The committing half (Flink's `Committer`): commit must be idempotent, since
    a restored job commits again what may have committed before the crash."""

    def commit(self, ctx: "OperatorContext", txn: str) -> bool | None:
        """Commit `txn`: True when committed (now or before), False when the external
        system no longer has it (expired), None for a transient failure (retried)."""


class StoreWriter:
    """Writes into transactions of the simulated external store (one writer per subtask)."""

    def __init__(self) -> None:
        self.sequence = 0

    def begin(self, ctx: "OperatorContext") -> str:
        self.sequence += 1
        txn = f"{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.begin(ctx.now, txn, (ctx.uid, ctx.subtask))
        return txn

    def write(self, ctx: "OperatorContext", txn: str, records: list[Record]) -> None:
        ctx.store.write(ctx.now, txn, records)

    def pre_commit(self, ctx: "OperatorContext", txn: str) -> None:
        ctx.store.precommit(ctx.now, txn)

    def abort(self, ctx: "OperatorContext", txn: str) -> None:
        ctx.store.abort(ctx.now, txn)


class StoreCommitter:
    """Commits transactions of the simulated external store (idempotently)."""

    def commit(self, ctx: "OperatorContext", txn: str) -> bool | None:
        return ctx.store.commit(ctx.now, txn)


class TwoPhaseCommitSink:
    """A transaction per checkpoint, shaped like Flink's two-phase committing sink.

    On snapshot n the writer pre-commits the open transaction, which becomes the
    committable of n (the sink's list state) and a new one begins; on
    notify-complete(n) the committer commits every committable <= n; on restore
    the restored committables are committed again (idempotent) and every other
    transaction this subtask left open is aborted.  Plug in another external
    system with your own `writer` and `committer`.
    """

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, writer: SinkWriter | None = None,
                 committer: Committer | None = None) -> None:
        self.writer: SinkWriter = writer if writer is not None else StoreWriter()
        self.committer: Committer = committer if committer is not None else StoreCommitter()

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx
        self.pending: list[tuple[int, str]] = []  # (checkpoint id, transaction), ascending
        store = ctx.store
        if restored is not None:
            for checkpoint_id, txn_id in restored:
                ctx.phase("recovery_commit", checkpoint_id)
                self._commit(txn_id, checkpoint_id, "recovery")
        if not ctx.mutant("lingering-transactions"):
            keep = {txn for _, txn in ctx.restored_union or ()}
            p = ctx.parallelism
            for txn in store.open_transactions(ctx.uid):
                if txn.owner[1] % p == ctx.subtask and txn.id not in keep:
                    self.writer.abort(ctx, txn.id)
                    ctx.event("abort", txn.id)
        self.txn = self.writer.begin(ctx)

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.writer.write(self.ctx, self.txn, records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        ctx = self.ctx
        self.writer.pre_commit(ctx, self.txn)
        ctx.event("pre_commit", self.txn, checkpoint_id)
        ctx.phase("pre_commit", checkpoint_id)
        self.pending.append((checkpoint_id, self.txn))
        self.txn = self.writer.begin(ctx)
        if ctx.mutant("unaligned-committables") and ctx.task.job.scenario.checkpoints.mode == "unaligned":
            return list(self.pending[:-1])  # the committable was overtaken by the barrier
        return list(self.pending)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        ctx = self.ctx
        exact = ctx.mutant("commit-only-exact-id")
        still: list[tuple[int, str]] = []
        for pending_id, txn in self.pending:
            if pending_id == checkpoint_id or (pending_id < checkpoint_id and not exact):
                ctx.phase("commit_before", checkpoint_id)
                self._commit(txn, pending_id, "notify")
                ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((pending_id, txn))
        self.pending = still

    def close(self) -> None:
        """The task finished: abort what is still open (empty, after the final commit)."""
        ctx = self.ctx
        for _, txn in self.pending:
            self.writer.abort(ctx, txn)
        self.pending = []
        self.writer.abort(ctx, self.txn)

    def _commit(self, txn: str, checkpoint_id: int, why: str) -> None:
        """Commit `txn`, retrying transient failures; a commit that keeps failing fails the task."""
        ctx = self.ctx
        for _ in range(COMMIT_RETRIES):
            ok = self.committer.commit(ctx, txn)
            if ok is not None:
                ctx.event("commit" if ok else "commit_lost", txn, checkpoint_id, why)
                return
            ctx.event("commit_retry", txn, checkpoint_id)
        raise TaskCrash(f"commit of {txn} failed {COMMIT_RETRIES} times")

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        if self.ctx.mutant("abort-discards"):
            for pending_id, txn in self.pending:
                if pending_id == checkpoint_id:
                    self.writer.abort(self.ctx, txn)
                    self.ctx.event("abort", txn)
            self.pending = [p for p in self.pending if p[0] != checkpoint_id]


def make_sink(kind: str, store: Any = None) -> Any:
    """A fresh sink of `kind`; a registered factory that takes an argument gets the
    timeline's store (the sink also reaches it as `ctx.store` once opened)."""
    from onceflow.registry import SINKS  # noqa: PLC0415

    if kind in SINKS:
        factory = SINKS[kind].factory
        return factory(store) if _takes_argument(factory) else factory()
    return {"append": AppendSink, "idempotent": IdempotentSink,
            "two_phase": TwoPhaseCommitSink}[kind]()


def _takes_argument(factory: Any) -> bool:
    import inspect  # noqa: PLC0415

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in params)
