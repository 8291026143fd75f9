"""A two-phase sink that writes to a ledger through a client-side batch.

The writer batches records on the client and sends a batch into the open
transaction when it is full (as Kafka's producer does).  Before a
transaction is pre-committed, the batch must be flushed into it: what the
barrier has passed must be in the checkpoint's transaction.

`LedgerSink(bug=True)` plants FLINK-5728/FLINK-4027's bug: pre-commit does
not flush the batch (only the end of input does).  The records still in the
batch slip into the next transaction; a crash after the checkpoint completed
loses them, since the restored source resumes after them.
"""

from __future__ import annotations

from typing import Any

from onceflow import Record
from onceflow.model.sinks import TwoPhaseCommitSink

__all__ = ["LedgerCommitter", "LedgerSink", "LedgerWriter"]


class LedgerWriter:
    """Writes into ledger transactions through a client-side batch of `batch` records."""

    def __init__(self, batch: int = 8, bug: bool = False) -> None:
        self.batch_size = batch
        self.bug = bug
        self.batch: list[Record] = []
        self.sequence = 0

    def begin(self, ctx: Any) -> str:
        self.sequence += 1
        txn = f"ledger.{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.begin(ctx.now, txn, (ctx.uid, ctx.subtask))
        return txn

    def write(self, ctx: Any, txn: str, records: list[Record]) -> None:
        self.batch.extend(records)
        if len(self.batch) >= self.batch_size:
            self.flush(ctx, txn)

    def flush(self, ctx: Any, txn: str) -> None:
        if self.batch:
            ctx.store.write(ctx.now, txn, self.batch)
            self.batch = []

    def pre_commit(self, ctx: Any, txn: str) -> None:
        if not self.bug:  # the planted bug: the batch is not flushed before pre-commit
            self.flush(ctx, txn)
        ctx.store.precommit(ctx.now, txn)

    def abort(self, ctx: Any, txn: str) -> None:
        ctx.store.abort(ctx.now, txn)


class LedgerCommitter:
    """Commits a ledger transaction (idempotently: the ledger knows what it committed)."""

    def commit(self, ctx: Any, txn: str, checkpoint_id: int) -> bool | None:
        return ctx.store.commit(ctx.now, txn)


class LedgerSink(TwoPhaseCommitSink):
    """Onceflow's two-phase sink with the ledger's writer and committer."""

    def __init__(self, batch: int = 8, bug: bool = False) -> None:
        super().__init__(writer=LedgerWriter(batch, bug), committer=LedgerCommitter())

    def end_input(self, out: list[Record]) -> None:
        """End of input: the batch goes into the open transaction first (the sink then
        hands that transaction to the final checkpoint's commit)."""
        if self.txn is not None:
            self.writer.flush(self.ctx, self.txn)  # type: ignore[attr-defined]
        super().end_input(out)
