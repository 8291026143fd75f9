"""The external store the sinks write to: it lives outside the job and survives every crash.

A Kafka-like transactional log plus an upsert table.  Writes of a transaction
land in the log at once (read-uncommitted readers see them); read-committed
readers see committed data only and stop at the first open transaction (the
last stable offset), so an open transaction blocks them.  An uncommitted
transaction older than the transaction timeout is expired by the store: its
data is gone and a later commit fails.

Every mutating call is kept in an operation log, so `fork(version)` rebuilds
the store exactly as it stood at any earlier moment.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from onceflow.model.records import Record

__all__ = ["Entry", "Store", "Transaction"]

OPEN, PRECOMMITTED, COMMITTED, ABORTED, EXPIRED = (
    "open", "precommitted", "committed", "aborted", "expired")


class Transaction:
    """One external transaction; `owner` is (sink uid, subtask)."""

    __slots__ = ("id", "owner", "state", "begun", "ended", "positions")

    def __init__(self, txn_id: str, owner: tuple[str, int], begun: float) -> None:
        self.id = txn_id
        self.owner = owner
        self.state = OPEN
        self.begun = begun
        self.ended: float | None = None
        self.positions: list[int] = []

    def __repr__(self) -> str:
        return f"Transaction({self.id!r}, {self.state}, begun={self.begun:g})"


class Entry(NamedTuple):
    """One record as the store holds it, with its provenance."""

    record: Record
    txn: str | None
    written: float
    committed: float | None


class Store:
    def __init__(self, txn_timeout: float) -> None:
        self.txn_timeout = txn_timeout
        self.ops: list[tuple[Any, ...]] = []
        self._log: list[tuple[Record, str | None, float]] = []
        self._table: dict[str, tuple[Record, float]] = {}
        self.txns: dict[str, Transaction] = {}
        self.failed_commits: list[tuple[str, float]] = []
        self.transient_failures = 0

    # -- writes -----------------------------------------------------------

    def append(self, now: float, records: list[Record]) -> None:
        self.ops.append(("append", now, records))
        log = self._log
        for r in records:
            log.append((r, None, now))

    def upsert(self, now: float, records: list[Record]) -> None:
        self.ops.append(("upsert", now, records))
        table = self._table
        for r in records:
            table[r.id] = (r, now)

    def begin(self, now: float, txn_id: str, owner: tuple[str, int]) -> None:
        if txn_id in self.txns:
            raise ValueError(f"transaction id {txn_id!r} used twice")
        self.ops.append(("begin", now, txn_id, owner))
        self.txns[txn_id] = Transaction(txn_id, owner, now)

    def write(self, now: float, txn_id: str, records: list[Record]) -> None:
        self.ops.append(("write", now, txn_id, records))
        txn = self.txns[txn_id]
        self._expire(txn, now)
        if txn.state != OPEN:
            return  # a fenced or expired producer's writes go nowhere
        log = self._log
        positions = txn.positions
        for r in records:
            positions.append(len(log))
            log.append((r, txn_id, now))

    def precommit(self, now: float, txn_id: str) -> None:
        self.ops.append(("precommit", now, txn_id))
        txn = self.txns[txn_id]
        self._expire(txn, now)
        if txn.state == OPEN:
            txn.state = PRECOMMITTED

    def commit(self, now: float, txn_id: str) -> bool | None:
        """Commit; idempotent.  False when the transaction expired or was aborted,
        None on a transient failure (nothing happened; retry)."""
        if self.transient_failures:
            self.transient_failures -= 1
            self.ops.append(("fail_commit", now, txn_id))
            return None
        self.ops.append(("commit", now, txn_id))
        txn = self.txns.get(txn_id)
        if txn is None:
            return False
        self._expire(txn, now)
        if txn.state == COMMITTED:
            return True
        if txn.state in (ABORTED, EXPIRED):
            self.failed_commits.append((txn_id, now))
            return False
        txn.state = COMMITTED
        txn.ended = now
        return True

    def fail_commit(self, now: float, txn_id: str) -> None:
        """Replays a transient commit failure (it changed nothing)."""
        self.ops.append(("fail_commit", now, txn_id))

    def abort(self, now: float, txn_id: str) -> None:
        self.ops.append(("abort", now, txn_id))
        txn = self.txns.get(txn_id)
        if txn is not None and txn.state in (OPEN, PRECOMMITTED):
            txn.state = ABORTED
            txn.ended = now

    def _expire(self, txn: Transaction, now: float) -> None:
        if txn.state in (OPEN, PRECOMMITTED) and now - txn.begun >= self.txn_timeout:
            txn.state = EXPIRED
            txn.ended = txn.begun + self.txn_timeout

    # -- reads ------------------------------------------------------------

    def version(self) -> int:
        return len(self.ops)

    def unfinished(self, now: float) -> list[Transaction]:
        """Transactions neither committed nor aborted nor expired at `now`."""
        for txn in self.txns.values():
            self._expire(txn, now)
        return [t for t in self.txns.values() if t.state in (OPEN, PRECOMMITTED)]

    def open_transactions(self, sink_uid: str) -> list[Transaction]:
        return [t for t in self.txns.values()
                if t.owner[0] == sink_uid and t.state in (OPEN, PRECOMMITTED)]

    def entries(self, now: float, *, committed_only: bool = True,
                past_open: bool = False) -> list[Entry]:
        """The records a reader sees at `now`, in log order, then the upsert table.

        Read-committed stops at the first unfinished transaction (Kafka's LSO),
        unless `past_open` asks for every committed record wherever it lies.
        """
        txns = self.txns
        out: list[Entry] = []
        for record, txn_id, written in self._log:
            if txn_id is None:
                out.append(Entry(record, None, written, written))
                continue
            txn = txns[txn_id]
            self._expire(txn, now)
            if txn.state == COMMITTED:
                out.append(Entry(record, txn_id, written, txn.ended))
            elif txn.state in (OPEN, PRECOMMITTED):
                if committed_only:
                    if past_open:
                        continue
                    break
                out.append(Entry(record, txn_id, written, None))
        for record, written in self._table.values():
            out.append(Entry(record, None, written, written))
        return out

    def destroyed(self, now: float) -> list[tuple[Entry, Transaction]]:
        """Records written in transactions that were aborted or expired by `now`."""
        out = []
        for record, txn_id, written in self._log:
            if txn_id is None:
                continue
            txn = self.txns[txn_id]
            self._expire(txn, now)
            if txn.state in (ABORTED, EXPIRED) and txn.ended is not None and txn.ended <= now:
                out.append((Entry(record, txn_id, written, None), txn))
        return out

    def read_committed(self, now: float) -> list[Record]:
        return [e.record for e in self.entries(now)]

    def read_uncommitted(self, now: float) -> list[Record]:
        return [e.record for e in self.entries(now, committed_only=False)]

    def blocking_transaction(self, now: float) -> Transaction | None:
        """The open transaction that holds read-committed readers back, if any."""
        seen: set[str] = set()
        for _, txn_id, _ in self._log:
            if txn_id is None or txn_id in seen:
                continue
            seen.add(txn_id)
            txn = self.txns[txn_id]
            self._expire(txn, now)
            if txn.state in (OPEN, PRECOMMITTED):
                return txn
        return None

    # -- forks ------------------------------------------------------------

    def fork(self, version: int) -> "Store":
        """A new store as this one stood after its first `version` operations."""
        other = Store(self.txn_timeout)
        for op in self.ops[:version]:
            getattr(other, op[0])(*op[1:])
        return other
