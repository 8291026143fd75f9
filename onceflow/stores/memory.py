"""The in-memory store (the default): a Kafka-like transactional log plus an upsert table.

Writes of a transaction land in the log at once (read-uncommitted readers see
them); read-committed readers see committed data only and stop at the first
open transaction (the last stable offset), so an open transaction blocks them.
An uncommitted transaction older than the transaction timeout is expired by
the store: its data is gone and a later commit fails.

Every mutating call is kept in an operation log, so `fork(version)` rebuilds
the store exactly as it stood at any earlier moment.
"""

from __future__ import annotations

from typing import Any

from onceflow.stores.protocol import (ABORTED, COMMITTED, EXPIRED, OPEN, PRECOMMITTED, Entry,
                                      ProducerFencedError, Transaction, TransactionLostError,
                                      Visible, check_begin)

__all__ = ["MemoryStore"]


class MemoryStore:
    """The default store: everything in Python objects, forked by replaying its log."""

    #: nothing to keep: `--keep-store` needs a store that writes files
    keeps_files = False

    def __init__(self, txn_timeout: float, *, label: str = "") -> None:
        self.txn_timeout = txn_timeout
        self.label = label
        self.ops: list[tuple[Any, ...]] = []
        self._log: list[tuple[Any, str | None, float]] = []
        self._table: dict[str, tuple[Any, float]] = {}
        self.txns: dict[str, Transaction] = {}
        #: transactional id -> current producer epoch; and the transactions of each id
        self._epochs: dict[str, int] = {}
        self._by_producer: dict[str, list[Transaction]] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._visible: list[Visible] = []
        self.failed_commits: list[tuple[str, float]] = []
        self.transient_failures = 0

    # -- writes -----------------------------------------------------------

    def append(self, now: float, records: list[Any]) -> None:
        self.ops.append(("append", now, records))
        log = self._log
        for r in records:
            log.append((r, None, now))
        self._visible.append(Visible(now, len(self.ops), None, tuple(r.id for r in records)))

    def upsert(self, now: float, records: list[Any], keys: list[str] | None = None) -> None:
        if keys is None:
            keys = [r.id for r in records]
        elif len(keys) != len(records):
            raise ValueError(f"upsert of {len(records)} records with {len(keys)} keys")
        self.ops.append(("upsert", now, records, keys))
        table = self._table
        for key, r in zip(keys, records):
            table[key] = (r, now)
        self._visible.append(Visible(now, len(self.ops), None, tuple(r.id for r in records), True))

    def set_metadata(self, now: float, owner: str, name: str, value: Any) -> None:
        self.ops.append(("set_metadata", now, owner, name, value))
        self._metadata.setdefault(owner, {})[name] = value

    def metadata(self, owner: str) -> dict[str, Any]:
        return dict(self._metadata.get(owner, {}))

    def begin(self, now: float, txn_id: str, owner: tuple[str, int],
              producer: tuple[str, int] | None = None) -> None:
        if txn_id in self.txns:
            raise ValueError(f"transaction id {txn_id!r} used twice")
        if producer is None:
            self.ops.append(("begin", now, txn_id, owner))
            self.txns[txn_id] = Transaction(txn_id, owner, now)
            return
        tid, epoch = producer[0], int(producer[1])
        mine = self._by_producer.get(tid, [])
        for t in mine:
            self._expire(t, now)
        check_begin(txn_id, tid, epoch, self._epochs.get(tid),
                     [t.id for t in mine if t.producer == (tid, epoch)
                      and t.state in (OPEN, PRECOMMITTED)], now)
        self.ops.append(("begin", now, txn_id, owner, (tid, epoch)))
        txn = self.txns[txn_id] = Transaction(txn_id, owner, now, (tid, epoch))
        mine.append(txn)
        self._by_producer[tid] = mine

    def init_producer(self, now: float, transactional_id: str, owner: tuple[str, int]) -> int:
        """Bump the id's epoch (0 on first use), abort its open transaction, fence older
        producers of it; the new epoch (Kafka's initTransactions)."""
        self.ops.append(("init_producer", now, transactional_id, owner))
        epoch = self._epochs.get(transactional_id, -1) + 1
        self._epochs[transactional_id] = epoch
        for txn in self._by_producer.get(transactional_id, ()):
            self._expire(txn, now)
            if txn.state in (OPEN, PRECOMMITTED):
                txn.state = ABORTED
                txn.ended = now
        return epoch

    def producers(self) -> dict[str, int]:
        return dict(sorted(self._epochs.items()))

    def _fence(self, txn: Transaction, now: float) -> None:
        if txn.producer is not None:
            tid, epoch = txn.producer
            current = self._epochs[tid]
            if epoch < current:
                raise ProducerFencedError(txn.id, tid, epoch, current, now)

    def write(self, now: float, txn_id: str, records: list[Any]) -> None:
        self.ops.append(("write", now, txn_id, records))
        txn = self.txns[txn_id]
        self._expire(txn, now)
        self._fence(txn, now)
        if txn.state != OPEN:
            # a fenced or expired producer's next send fails (Kafka raises on it)
            raise TransactionLostError(txn_id, txn.state, now, self.txn_timeout)
        log = self._log
        positions = txn.positions
        for r in records:
            positions.append(len(log))
            log.append((r, txn_id, now))

    def precommit(self, now: float, txn_id: str) -> None:
        self.ops.append(("precommit", now, txn_id))
        txn = self.txns[txn_id]
        self._expire(txn, now)
        self._fence(txn, now)
        if txn.state == OPEN:
            txn.state = PRECOMMITTED
        elif txn.state in (ABORTED, EXPIRED):
            raise TransactionLostError(txn_id, txn.state, now, self.txn_timeout)

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
        self._fence(txn, now)
        if txn.state == COMMITTED:
            return True
        if txn.state in (ABORTED, EXPIRED):
            self.failed_commits.append((txn_id, now))
            return False
        txn.state = COMMITTED
        txn.ended = now
        log = self._log
        self._visible.append(Visible(now, len(self.ops), txn_id,
                                     tuple(log[i][0].id for i in txn.positions)))
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

    def mark(self) -> int:
        return len(self.ops)

    def visibility(self) -> list[Visible]:
        return self._visible

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
        """Anys written in transactions that were aborted or expired by `now`."""
        out = []
        for record, txn_id, written in self._log:
            if txn_id is None:
                continue
            txn = self.txns[txn_id]
            self._expire(txn, now)
            if txn.state in (ABORTED, EXPIRED) and txn.ended is not None and txn.ended <= now:
                out.append((Entry(record, txn_id, written, None), txn))
        return out

    def read_committed(self, now: float) -> list[Any]:
        return [e.record for e in self.entries(now)]

    def read_uncommitted(self, now: float) -> list[Any]:
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

    def fork(self, version: int, *, label: str = "") -> "MemoryStore":
        """A new store as this one stood after its first `version` operations."""
        other = MemoryStore(self.txn_timeout, label=label)
        for op in self.ops[:version]:
            try:
                getattr(other, op[0])(*op[1:])
            except TransactionLostError:
                pass  # the write failed then too: it is logged, and changed nothing
        return other

    def close(self) -> None:
        pass

