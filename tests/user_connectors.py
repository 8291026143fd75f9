"""Connector bugs written as connector authors write them (through the public API
only), each beside its corrected version: a plugin module for
tests/test_user_connector_bugs.py (`--plugin user_connectors`).

- `jdbc_commit_on_snapshot`: a transactional sink that commits on the barrier
  (in `snapshot_state`) instead of when the checkpoint completes (the
  TwoPhaseCommitSinkFunction contract; StarRocks connector PR #131 fixed the same
  shape in finish()): records become visible before any checkpoint covers them.
- `kafka_offset_off_by_one`: a Kafka-style reader that checkpoints the offset of
  the last record it emitted rather than the next one to read (librdkafka#1811,
  kafka-rust#161, FLINK-4618's shape): a restore reads that record again.
- `es_autogen_id`: an upsert sink declared idempotent whose document id is a
  writer-side sequence number, not derived from the record
  (elastic/elasticsearch#19286): a replayed record gets a new document.
- `release_on_commit`: a write-ahead operator that emits held batches from
  `notify_checkpoint_complete(id, out)` and trusts the final checkpoint's
  notification to release the last ones; with FLIP-147 it comes after finish(),
  when nothing may be emitted: a component error naming the fix.
- `file_committer_not_idempotent`: a file-style sink whose committer publishes a
  staged file again on recovery without asking whether it did before the crash
  (apache/iceberg#2808's shape).

Each `NAME` has a `NAME_fixed`.  Registered on import; `register()` is idempotent.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from onceflow.model import END_OF_INPUT, MORE_AVAILABLE, NOTHING_AVAILABLE, Split
from onceflow.registry import OPERATORS, SINKS, SOURCES, register_operator, register_sink, \
    register_source


def _commit(ctx: Any, txn: str) -> bool:
    """Commit, retrying a transient failure at once (a committable left for a later
    notification is lost when none comes: the final checkpoint's is the last)."""
    for _ in range(10):
        if ctx.store.commit(ctx.now, txn) is not None:
            return True
    return False


class JdbcTxnSink:
    """A transaction per checkpoint; `bug=True` commits it on the barrier."""

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, bug: bool) -> None:
        self.bug = bug
        self.seq = 0

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.pending: list[tuple[int, str]] = []
        keep = {t for _, t in ctx.restored_union or ()}
        for cid, txn in restored or ():
            ctx.phase("recovery_commit", cid)
            if not _commit(ctx, txn):
                self.pending.append((cid, txn))
        for t in ctx.store.open_transactions(ctx.uid):  # what a failed attempt left open
            if t.owner[1] % ctx.parallelism == ctx.subtask and t.id not in keep:
                ctx.store.abort(ctx.now, t.id)
        self.txn = self._begin()

    def _begin(self) -> str:
        self.seq += 1
        txn = f"jdbc.{self.ctx.uid}.{self.ctx.subtask}.{self.ctx.attempt}.{self.seq}"
        self.ctx.store.begin(self.ctx.now, txn, (self.ctx.uid, self.ctx.subtask))
        return txn

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.ctx.store.write(self.ctx.now, self.txn, records)

    def end_input(self, out: list[Any]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        ctx = self.ctx
        ctx.store.precommit(ctx.now, self.txn)
        ctx.phase("pre_commit", checkpoint_id)
        if self.bug:
            _commit(ctx, self.txn)  # the bug: "the checkpoint is being taken, so it is safe"
        else:
            self.pending.append((checkpoint_id, self.txn))
        self.txn = self._begin()
        return list(self.pending)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        still = []
        for cid, txn in self.pending:
            if cid <= checkpoint_id:
                self.ctx.phase("commit_before", checkpoint_id)
                if not _commit(self.ctx, txn):
                    still.append((cid, txn))
                self.ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((cid, txn))
        self.pending = still

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        self.ctx.store.abort(self.ctx.now, self.txn)


class OffsetReader:
    """Reads its splits through the Kafka-like client; `bug=True` checkpoints the offset
    of the last record emitted instead of the next one to read."""

    def __init__(self, bug: bool) -> None:
        self.bug = bug

    def open(self, ctx: Any) -> None:
        self.ctx, self.client = ctx, ctx.client
        self.splits: dict[int, Split] = {}
        self.next: dict[int, int] = {}
        self.no_more = False
        self.asked = False

    def add_splits(self, splits: list[Split]) -> None:
        for s in splits:
            self.splits[s.partition] = s
            self.next[s.partition] = s.offset
        self.client.assign(sorted(self.splits))
        for s in splits:
            self.client.seek(s.partition, s.offset)
        self.asked = False

    def start(self) -> None:
        self._ask()

    def _ask(self) -> None:
        if not self.splits and not self.no_more and not self.asked:
            self.asked = True
            self.ctx.send_split_request()

    def poll_next(self, out: list[Any], limit: int) -> str:
        done = [p for p, s in self.splits.items() if self.next[p] >= s.end]
        for p in done:
            del self.splits[p], self.next[p]
        if done:
            self.client.assign(sorted(self.splits))
        if not self.splits:
            if self.no_more:
                return END_OF_INPUT
            self._ask()
            return NOTHING_AVAILABLE
        batch = [r for r in self.client.poll(limit) if r.offset < self.splits[r.split].end]
        if not batch:
            return NOTHING_AVAILABLE
        for r in batch:
            self.next[r.split] = r.offset + 1
        out.extend(batch)
        return MORE_AVAILABLE

    def notify_no_more_splits(self) -> None:
        self.no_more = True

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        if self.bug:  # the last record emitted, not the next to read
            return [Split(p, max(s.offset, self.next[p] - 1), s.end)
                    for p, s in sorted(self.splits.items())]
        return [Split(p, self.next[p], s.end) for p, s in sorted(self.splits.items())]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        pass


class EsSink:
    """Upserts documents; `bug=True` ids them by a writer-side sequence number."""

    state_kind: ClassVar[str | None] = None

    def __init__(self, bug: bool) -> None:
        self.bug = bug

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.seq = 0

    def process(self, records: list[Any], out: list[Any]) -> None:
        if self.bug:
            keys = []
            for _ in records:
                self.seq += 1
                keys.append(f"{self.ctx.subtask}-{self.ctx.attempt}-{self.seq}")
        else:
            keys = [r.id for r in records]
        self.ctx.store.upsert(self.ctx.now, records, keys)

    def end_input(self, out: list[Any]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class ReleaseOnCommit:
    """Holds each checkpoint's records and emits them when a notification covers them;
    `bug=True` leaves the held batches to the final checkpoint's notification."""

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, bug: bool) -> None:
        self.bug = bug

    def open(self, ctx: Any, restored: Any) -> None:
        self.current: list[Any] = []
        self.held: list[tuple[int, list[Any]]] = [(c, list(r)) for c, r in restored or ()]

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.current.extend(records)

    def end_input(self, out: list[Any]) -> None:
        pass

    def finish(self, out: list[Any]) -> None:
        if not self.bug:  # nothing may be emitted after finish(): release what is held
            for _, records in self.held:
                out.extend(records)
            self.held = []
        out.extend(self.current)
        self.current = []

    def snapshot_state(self, checkpoint_id: int) -> Any:
        if self.current:
            self.held.append((checkpoint_id, self.current))
            self.current = []
        return list(self.held)

    def notify_checkpoint_complete(self, checkpoint_id: int, out: list[Any]) -> None:
        release = [b for b in self.held if b[0] <= checkpoint_id]
        for _, records in release:
            out.extend(records)
        self.held = [b for b in self.held if b[0] > checkpoint_id]

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class FileSink:
    """Stages each checkpoint's records as a pending file in its state and publishes it
    when the checkpoint completes, and again on recovery; `bug=True` publishes without
    asking the table whether it did before the crash (a committer not idempotent on
    retry; apache/iceberg#2808)."""

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, bug: bool) -> None:
        self.bug = bug

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.staged: list[Any] = []
        self.pending: list[Any] = []
        for cid, name, records in restored or ():
            ctx.phase("recovery_commit", cid)
            self._publish(cid, name, records)

    def _publish(self, cid: int, name: str, records: list[Any]) -> None:
        ctx = self.ctx
        if not self.bug and ctx.store.metadata(ctx.uid).get(name):
            return  # published before the crash
        ctx.store.append(ctx.now, records)
        if not self.bug:
            ctx.store.set_metadata(ctx.now, ctx.uid, name, cid)

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.staged.extend(records)

    def end_input(self, out: list[Any]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        if self.staged:
            digest = hashlib.sha1(",".join(r.id for r in self.staged).encode()).hexdigest()[:12]
            self.pending.append((checkpoint_id, f"part-{self.ctx.subtask}-{checkpoint_id}-{digest}",
                                 self.staged))
            self.staged = []
        self.ctx.phase("pre_commit", checkpoint_id)
        return list(self.pending)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        still = []
        for cid, name, records in self.pending:
            if cid <= checkpoint_id:
                self.ctx.phase("commit_before", checkpoint_id)
                self._publish(cid, name, records)
                self.ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((cid, name, records))
        self.pending = still

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


def _identity(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    return list(records)


def register() -> None:
    for name in ("jdbc_commit_on_snapshot", "es_autogen_id", "file_committer_not_idempotent"):
        for suffix in ("", "_fixed"):
            SINKS.pop(name + suffix, None)
    for suffix in ("", "_fixed"):
        SOURCES.pop("kafka_offset_off_by_one" + suffix, None)
        OPERATORS.pop("release_on_commit" + suffix, None)
    register_sink("jdbc_commit_on_snapshot", factory=lambda: JdbcTxnSink(True), kind="two_phase")
    register_sink("jdbc_commit_on_snapshot_fixed", factory=lambda: JdbcTxnSink(False),
                  kind="two_phase")
    register_sink("es_autogen_id", factory=lambda: EsSink(True), kind="idempotent")
    register_sink("es_autogen_id_fixed", factory=lambda: EsSink(False), kind="idempotent")
    register_sink("file_committer_not_idempotent", factory=lambda: FileSink(True),
                  kind="two_phase")
    register_sink("file_committer_not_idempotent_fixed", factory=lambda: FileSink(False),
                  kind="two_phase")
    register_source("kafka_offset_off_by_one", factory=lambda: OffsetReader(True))
    register_source("kafka_offset_off_by_one_fixed", factory=lambda: OffsetReader(False))
    register_operator("release_on_commit", factory=lambda p: ReleaseOnCommit(True),
                      fold=_identity, ids="keep")
    register_operator("release_on_commit_fixed", factory=lambda p: ReleaseOnCommit(False),
                      fold=_identity, ids="keep")


register()
