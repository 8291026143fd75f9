"""Sinks: how output reaches the external store.

- `append`: writes at once; replays after a failover duplicate (at-least-once).
- `idempotent`: upserts by record id; replays overwrite (exactly-once effects).
- `two_phase`: one transaction per checkpoint, shaped like Flink's
  `TwoPhaseCommitSinkFunction`: pre-commit on the barrier, commit of every
  pending transaction <= n on notify-complete(n), and on restore commit the
  restored pending ones (commit is idempotent) and abort the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from onceflow.model.records import Record
from onceflow.model.task import TaskCrash

#: How often a sink retries a commit that failed transiently before it fails.
COMMIT_RETRIES = 5

if TYPE_CHECKING:
    from onceflow.model.task import OperatorContext

__all__ = ["AppendSink", "IdempotentSink", "TwoPhaseCommitSink", "make_sink"]


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


class TwoPhaseCommitSink:
    """A transaction per checkpoint; its list state is the pending transactions."""

    state_kind: ClassVar[str | None] = "list"

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx
        self.pending: list[tuple[int, str]] = []  # (checkpoint id, transaction), ascending
        self.sequence = 0
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
                    store.abort(ctx.now, txn.id)
                    ctx.event("abort", txn.id)
        self._begin()

    def _begin(self) -> None:
        ctx = self.ctx
        self.sequence += 1
        self.txn = f"{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.begin(ctx.now, self.txn, (ctx.uid, ctx.subtask))

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.write(self.ctx.now, self.txn, records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        ctx = self.ctx
        ctx.store.precommit(ctx.now, self.txn)
        ctx.event("pre_commit", self.txn, checkpoint_id)
        ctx.phase("pre_commit", checkpoint_id)
        self.pending.append((checkpoint_id, self.txn))
        self._begin()
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
            ctx.store.abort(ctx.now, txn)
        self.pending = []
        ctx.store.abort(ctx.now, self.txn)

    def _commit(self, txn: str, checkpoint_id: int, why: str) -> None:
        """Commit `txn`, retrying transient failures; a commit that keeps failing fails the task."""
        ctx = self.ctx
        for _ in range(COMMIT_RETRIES):
            ok = ctx.store.commit(ctx.now, txn)
            if ok is not None:
                ctx.event("commit" if ok else "commit_lost", txn, checkpoint_id, why)
                return
            ctx.event("commit_retry", txn, checkpoint_id)
        raise TaskCrash(f"commit of {txn} failed {COMMIT_RETRIES} times")

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        if self.ctx.mutant("abort-discards"):
            for pending_id, txn in self.pending:
                if pending_id == checkpoint_id:
                    self.ctx.store.abort(self.ctx.now, txn)
                    self.ctx.event("abort", txn)
            self.pending = [p for p in self.pending if p[0] != checkpoint_id]


def make_sink(kind: str) -> Any:
    from onceflow.registry import SINKS  # noqa: PLC0415

    if kind in SINKS:
        return SINKS[kind].factory()
    return {"append": AppendSink, "idempotent": IdempotentSink,
            "two_phase": TwoPhaseCommitSink}[kind]()
