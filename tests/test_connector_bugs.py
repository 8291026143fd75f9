"""Connector bugs from real bug trackers, written as a user writes a connector (through
the public API only), and found by onceflow; their fixed versions pass.

- apache/iceberg#16008: the committer de-duplicates commits by (job id, checkpoint id)
  recorded in the table; a restart gets a new job id, so a commit that succeeded but
  whose acknowledgement was lost is committed again: duplicate rows.
  The fixed version names each committable by a hash of what it holds (as Iceberg
  names manifests): keyed by checkpoint id alone it lost data when a job was restored
  from an older checkpoint into a table that kept later commits (apache/iceberg#10892;
  onceflow's rollback restores found that in the first fix written here).
- FLINK-26403: at the end of input the writer closes its last transaction in
  `finish()` and forgets its committable instead of handing it to the final
  checkpoint: the last records are never committed.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import pytest

import onceflow
from onceflow import Record
from onceflow.registry import register_sink
from onceflow.strategies import scenario_from_seed


class TableSink:
    """An Iceberg-like sink: each checkpoint's records become one committable (a data
    file); the committer appends it to the table when the checkpoint completes and
    records it in the table's metadata, so that a restored job does not append a
    committable twice.  `bug=True` keys that record by the job's id (here: the
    attempt, which a restart changes), as apache/iceberg#16008 did."""

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, bug: bool = False) -> None:
        self.bug = bug

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.buffer: list[Record] = []
        self.pending: list[tuple[int, str, list[Record]]] = []
        for checkpoint_id, name, records in restored or ():
            ctx.phase("recovery_commit", checkpoint_id)
            self._commit(checkpoint_id, name, records)

    def _owner(self) -> str:
        return f"{self.ctx.uid}@{self.ctx.attempt}" if self.bug else self.ctx.uid

    def _commit(self, checkpoint_id: int, name: str, records: list[Record]) -> None:
        ctx = self.ctx
        if ctx.store.metadata(self._owner()).get(name):
            return  # committed before (the acknowledgement was lost)
        ctx.store.append(ctx.now, records)
        ctx.store.set_metadata(ctx.now, self._owner(), name, checkpoint_id)

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.buffer.extend(records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        # a committable is named by what it holds, as Iceberg names a manifest by a hash
        # of its path: a job restored from an older checkpoint into a table that kept
        # later commits reuses checkpoint ids (apache/iceberg#10892), never contents
        digest = hashlib.sha1(",".join(r.id for r in self.buffer).encode()).hexdigest()[:16]
        name = f"{self.ctx.uid}-{self.ctx.subtask}-{checkpoint_id}-{digest}"
        if self.buffer:
            self.pending.append((checkpoint_id, name, self.buffer))
            self.buffer = []
        self.ctx.phase("pre_commit", checkpoint_id)
        return list(self.pending)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        still = []
        for cid, name, records in self.pending:
            if cid <= checkpoint_id:
                self.ctx.phase("commit_before", checkpoint_id)
                self._commit(cid, name, records)
                self.ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((cid, name, records))
        self.pending = still

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class TxnSink:
    """A transactional sink written from scratch: a transaction per checkpoint,
    pre-committed on the barrier and committed when the checkpoint completes.
    With `bug=True` its `finish()` pre-commits the last transaction at the end of
    input and opens a new one without keeping the old one's committable
    (FLINK-26403): the final checkpoint commits an empty transaction."""

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, bug: bool = False) -> None:
        self.bug = bug
        self.sequence = 0

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.pending: list[tuple[int, str]] = []
        keep = {txn for _, txn in ctx.restored_union or ()}
        for checkpoint_id, txn in restored or ():
            ctx.phase("recovery_commit", checkpoint_id)
            if not self._commit(txn):
                self.pending.append((checkpoint_id, txn))
        for txn in ctx.store.open_transactions(ctx.uid):  # what a failed attempt left open
            if txn.owner[1] % ctx.parallelism == ctx.subtask and txn.id not in keep:
                ctx.store.abort(ctx.now, txn.id)
        self.txn = self._begin()

    def _commit(self, txn: str) -> bool:
        """Commit, retrying transient failures (None) at once: a committable left for a
        later notification is lost when no later one comes (a stop-with-savepoint's is
        the last; onceflow found that in this sink's first version)."""
        for _ in range(10):
            if self.ctx.store.commit(self.ctx.now, txn) is not None:
                return True
        return False

    def _begin(self) -> str:
        ctx = self.ctx
        self.sequence += 1
        txn = f"txn.{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.begin(ctx.now, txn, (ctx.uid, ctx.subtask))
        return txn

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.write(self.ctx.now, self.txn, records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def finish(self, out: list[Record]) -> None:
        if self.bug:  # the planted bug: the last transaction is closed and forgotten
            self.ctx.store.precommit(self.ctx.now, self.txn)
            self.txn = self._begin()

    def snapshot_state(self, checkpoint_id: int) -> Any:
        ctx = self.ctx
        ctx.store.precommit(ctx.now, self.txn)
        ctx.phase("pre_commit", checkpoint_id)
        self.pending.append((checkpoint_id, self.txn))
        self.txn = self._begin()
        return list(self.pending)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        ctx = self.ctx
        still = []
        for cid, txn in self.pending:
            if cid <= checkpoint_id:
                ctx.phase("commit_before", checkpoint_id)
                if not self._commit(txn):
                    still.append((cid, txn))
                ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((cid, txn))
        self.pending = still

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        self.ctx.store.abort(self.ctx.now, self.txn)


register_sink("iceberg_like", factory=lambda: TableSink(), kind="two_phase")
register_sink("iceberg_like_16008", factory=lambda: TableSink(bug=True), kind="two_phase")
register_sink("txn_sink", factory=lambda: TxnSink(), kind="two_phase")
register_sink("txn_sink_26403", factory=lambda: TxnSink(bug=True), kind="two_phase")


def _verdicts(sink: str, seeds: range) -> list[tuple[int, str, str]]:
    found = []
    for seed in seeds:
        scenario = scenario_from_seed(seed, sink=sink, max_faults=4)
        try:
            onceflow.check(onceflow.run(scenario), deterministic=False)
        except onceflow.Violation as violation:
            found.append((seed, violation.finding.property, violation.finding.anomaly))
    return found


@pytest.mark.parametrize("fixed, buggy, anomaly", [
    ("iceberg_like", "iceberg_like_16008", "duplicate"),
    ("txn_sink", "txn_sink_26403", "lost"),
])
def test_a_real_connector_bug_is_found_and_its_fix_passes(fixed: str, buggy: str,
                                                          anomaly: str) -> None:
    assert _verdicts(fixed, range(60)) == []
    found = _verdicts(buggy, range(120))
    assert found, f"{buggy}: no violation in 120 scenarios"
    assert anomaly in {a for _, _, a in found}, found


def test_the_iceberg_bug_needs_a_lost_commit_acknowledgement() -> None:
    """The duplicate appears only where a commit succeeded and the task failed before it
    knew (a crash right after the commit), then the restarted job committed again."""
    from onceflow.faults.plan import PhaseCrash

    base = onceflow.Scenario(sink="iceberg_like_16008")
    assert onceflow.run(base).committed()
    onceflow.check(onceflow.run(base), deterministic=False)
    crashed = onceflow.Scenario(sink="iceberg_like_16008",
                                faults=(PhaseCrash("commit_after", "sink[0]", 1),))
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(onceflow.run(crashed), deterministic=False)
    assert info.value.finding.anomaly == "duplicate"
    fixed = onceflow.Scenario(sink="iceberg_like",
                              faults=(PhaseCrash("commit_after", "sink[0]", 1),))
    onceflow.check(onceflow.run(fixed))
