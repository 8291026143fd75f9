"""A two-phase sink that speaks SQL to the SQLite store: stage, then move on commit.

Register it by importing this module (`onceflow --plugin examples.sql_sink ...`)
and run it on the SQLite store:

    onceflow --plugin examples.sql_sink run --store sqlite --sink sql_two_phase --keep-store out/

Each checkpoint's records go into the sink's own `sql_staging` table under a
transaction id (recorded in `sql_txns`); committing moves them into the
store's `data` table in one SQL transaction, which makes them visible to
read-committed readers, and marks the transaction committed, so a second
commit (after a failover) changes nothing.  `sql_two_phase_eager` is the same
sink with a planted bug: it commits at pre-commit, before the checkpoint
completes (found as `premature`, with no fault).
"""

from __future__ import annotations

from typing import Any

from onceflow.errors import OnceflowError
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.registry import register_sink

__all__ = ["SQLCommitter", "SQLTwoPhaseSink", "SQLWriter"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sql_txns (txn TEXT PRIMARY KEY, sink TEXT, subtask INTEGER, "
    "state TEXT)",
    "CREATE TABLE IF NOT EXISTS sql_staging (seq INTEGER PRIMARY KEY, txn TEXT, id TEXT, "
    'key INTEGER, value INTEGER, split INTEGER, "offset" INTEGER)',
)


class SQLWriter:
    """Writes a checkpoint's records into the staging table, under its transaction id."""

    def __init__(self) -> None:
        self.sequence = 0

    def begin(self, ctx: Any, ) -> str:
        self.sequence += 1
        txn = f"{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.sql(ctx.now, "INSERT INTO sql_txns VALUES (?, ?, ?, 'open')",
                      (txn, ctx.uid, ctx.subtask))
        return txn

    def write(self, ctx: Any, txn: str, records: list[Any]) -> None:
        ctx.store.sql(ctx.now, 'INSERT INTO sql_staging (txn, id, key, value, split, "offset") '
                      "VALUES (?, ?, ?, ?, ?, ?)", [(txn, *r) for r in records], many=True)

    def pre_commit(self, ctx: Any, txn: str) -> None:
        ctx.store.sql(ctx.now, "UPDATE sql_txns SET state = 'precommitted' WHERE txn = ? "
                      "AND state = 'open'", (txn,))

    def abort(self, ctx: Any, txn: str) -> None:
        ctx.store.sql(ctx.now, "UPDATE sql_txns SET state = 'aborted' WHERE txn = ? "
                      "AND state IN ('open', 'precommitted')", (txn,))
        ctx.store.sql(ctx.now, "DELETE FROM sql_staging WHERE txn = ? AND (SELECT state FROM "
                      "sql_txns WHERE txn = ?) = 'aborted'", (txn, txn))


class SQLCommitter:
    """Moves a transaction's staged rows into `data` at once; idempotent."""

    def commit(self, ctx: Any, txn: str) -> bool | None:
        store, now = ctx.store, ctx.now
        state = store.sql(now, "SELECT state FROM sql_txns WHERE txn = ?", (txn,))
        if not state or state[0][0] == "aborted":
            return False
        if state[0][0] == "committed":
            return True
        store.sql(now, "SAVEPOINT sql_commit")
        store.sql(now, 'INSERT INTO data (id, key, value, split, "offset", txn, written) '
                  'SELECT id, key, value, split, "offset", NULL, ? FROM sql_staging '
                  "WHERE txn = ? ORDER BY seq", (now, txn))
        store.sql(now, "DELETE FROM sql_staging WHERE txn = ?", (txn,))
        store.sql(now, "UPDATE sql_txns SET state = 'committed' WHERE txn = ?", (txn,))
        store.sql(now, "RELEASE sql_commit")
        return True


class SQLTwoPhaseSink(TwoPhaseCommitSink):
    """Flink's two-phase committing sink, its external system a SQL database."""

    def __init__(self, store: Any = None, *, eager: bool = False) -> None:
        if store is not None and not hasattr(store, "sql"):
            raise OnceflowError("the sql_two_phase sink speaks SQL: run it with --store sqlite "
                                "(Scenario(store='sqlite'))")
        super().__init__(writer=SQLWriter(), committer=SQLCommitter())
        self.eager = eager

    def open(self, ctx: Any, restored: Any) -> None:
        for statement in SCHEMA:
            ctx.store.sql(ctx.now, statement)
        super().open(ctx, restored)
        # abort what this subtask's earlier attempts left open (the store's own
        # transactions table knows nothing of ours)
        keep = {txn for _, txn in ctx.restored_union or ()} | {self.txn}
        for txn, subtask in ctx.store.sql(
                ctx.now, "SELECT txn, subtask FROM sql_txns WHERE sink = ? AND state IN "
                "('open', 'precommitted') ORDER BY rowid", (ctx.uid,)):
            if subtask % ctx.parallelism == ctx.subtask and txn not in keep:
                self.writer.abort(ctx, txn)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        txn = self.txn
        state = super().snapshot_state(checkpoint_id)
        if self.eager and txn is not None:  # the planted bug: visible before the
            self.committer.commit(self.ctx, txn)  # checkpoint completes
        return state

    def end_input(self, out: Any) -> None:
        txn = self.txn
        super().end_input(out)  # Sink V2: the last transaction is pre-committed now
        if self.eager and txn is not None:
            self.committer.commit(self.ctx, txn)


register_sink("sql_two_phase", factory=lambda store: SQLTwoPhaseSink(store), exactly_once=True)
register_sink("sql_two_phase_eager", factory=lambda store: SQLTwoPhaseSink(store, eager=True),
              exactly_once=True)
