"""The store protocol: what an external system must offer to be judged by onceflow.

A store is the external system a job's sinks write to (and, for a source that
reads back, read from).  It survives every crash of the job.  It offers:

- transactions: `begin`, `write`, `precommit`, `commit` (idempotent), `abort`,
  and expiry after `txn_timeout` simulated ms (a later commit fails); a `write`
  or `precommit` into a transaction the store aborted or expired raises
  `TransactionLostError` (as Kafka's producer does once fenced or timed out);
- non-transactional `append` and `upsert` by a key the sink chooses;
- transactional ids with producer epochs, as Kafka's: `init_producer(now, tid, owner)`
  bumps the id's epoch (0 on its first use), aborts the transaction the id has open
  (open or pre-committed: Kafka's coordinator aborts an ongoing one) and fences every
  older producer of the id: a transaction begun with `producer=(tid, epoch)` whose
  epoch is older than the id's raises `ProducerFencedError` on its next `write`,
  `precommit` or `commit`, whatever became of it; `producers()` lists the epochs
  (optional for a registered store: only sinks that call it need it);
- a small metadata map per owner (`set_metadata`, `metadata`);
- read-committed and read-uncommitted views (`entries`, `read_committed`,
  `read_uncommitted`);
- `visibility()`: every moment records became visible to a read-committed
  reader, recorded as it happens (the `premature` property reads it);
- `mark()` and `fork(version)`: a new store as this one stood at an earlier
  moment (a restore), and `version()` to name the moment now.

Every mutating call is kept in the operation log `ops` (the reports read it);
sinks and sources reach the store through their context (`ctx.store`), never
through a global.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol, runtime_checkable

from onceflow.errors import (OnceflowError, ProducerFencedError, ProducerStateError,
                             TransactionLostError)

__all__ = ["ABORTED", "COMMITTED", "EXPIRED", "OPEN", "PRECOMMITTED", "Entry", "ProducerFencedError",
           "Store", "StoreError", "Transaction", "TransactionLostError", "Visible"]

OPEN, PRECOMMITTED, COMMITTED, ABORTED, EXPIRED = (
    "open", "precommitted", "committed", "aborted", "expired")


class StoreError(OnceflowError, RuntimeError):
    """The external store cannot be used (missing, locked, corrupt, not writable) or
    broke its protocol; the message says which and what to do."""


class Transaction:
    """One external transaction; `owner` is (sink uid, subtask); `producer` is the
    (transactional id, epoch) it was begun with, or None."""

    __slots__ = ("id", "owner", "state", "begun", "ended", "positions", "producer")

    def __init__(self, txn_id: str, owner: tuple[str, int], begun: float,
                 producer: tuple[str, int] | None = None) -> None:
        self.id = txn_id
        self.owner = owner
        self.producer = producer
        self.state = OPEN
        self.begun = begun
        self.ended: float | None = None
        self.positions: list[int] = []

    def __repr__(self) -> str:
        return f"Transaction({self.id!r}, {self.state}, begun={self.begun:g})"


class Entry(NamedTuple):
    """One record as the store holds it, with its provenance."""

    record: Any
    txn: str | None
    written: float
    committed: float | None


class Visible(NamedTuple):
    """Records became visible to a read-committed reader at `time` (op `version`).

    `txn` is the transaction whose commit made them visible (None for an append
    or an upsert); `upsert` marks writes keyed by the sink (replays overwrite).
    """

    time: float
    version: int
    txn: str | None
    ids: tuple[str, ...]
    upsert: bool = False


@runtime_checkable
class Store(Protocol):
    """The protocol every store implements (the in-memory one and SQLite included)."""

    txn_timeout: float
    ops: list[tuple[Any, ...]]
    transient_failures: int
    failed_commits: list[tuple[str, float]]

    @property
    def txns(self) -> Mapping[str, Transaction]:
        """Every transaction by id, with its state as of the latest read."""

    # writes
    def append(self, now: float, records: list[Any]) -> None:
        """Write records visible at once (no transaction)."""

    def upsert(self, now: float, records: list[Any], keys: list[str] | None = None) -> None:
        """Write records keyed by `keys` (default: record ids); a later write replaces."""

    def begin(self, now: float, txn_id: str, owner: tuple[str, int],
              producer: tuple[str, int] | None = None) -> None:
        """Open transaction `txn_id` for `owner` (sink uid, subtask); with `producer`
        (transactional id, epoch from `init_producer`), as that producer: raise
        `ProducerFencedError` when the id has a newer epoch."""

    def init_producer(self, now: float, transactional_id: str, owner: tuple[str, int]) -> int:
        """Kafka's initTransactions: bump the id's epoch (0 on first use), abort the
        transaction it has open and fence older producers of the id; the new epoch."""

    def producers(self) -> dict[str, int]:
        """Every transactional id with its current epoch (JSON-able)."""

    def write(self, now: float, txn_id: str, records: list[Any]) -> None:
        """Write into an open transaction; raise `TransactionLostError` once it is aborted
        or expired (log the operation first, and let `fork` replay it without raising)."""

    def precommit(self, now: float, txn_id: str) -> None:
        """Flush the transaction; committing it must succeed unless it expires.  Raise
        `TransactionLostError` when it is aborted or expired already."""

    def commit(self, now: float, txn_id: str) -> bool | None:
        """Commit idempotently: True when committed (now or before), False when aborted
        or expired, None on a transient failure (nothing happened; retry)."""

    def abort(self, now: float, txn_id: str) -> None:
        """Drop an unfinished transaction and what was written into it."""

    def set_metadata(self, now: float, owner: str, name: str, value: Any) -> None:
        """Set one metadata value (a plain JSON value) of `owner` (e.g. a sink uid)."""

    def metadata(self, owner: str) -> dict[str, Any]:
        """`owner`'s metadata map as it stands now."""

    # reads
    def version(self) -> int:
        """The moment now, as a count of operations."""

    def mark(self) -> int:
        """`version()`, and make `fork` of it cheap (a restore may start there)."""

    def entries(self, now: float, *, committed_only: bool = True,
                past_open: bool = False) -> list[Entry]:
        """What a reader sees at `now`: read-committed stops at the first unfinished
        transaction unless `past_open`; read-uncommitted sees every live write."""

    def read_committed(self, now: float) -> list[Any]: ...

    def read_uncommitted(self, now: float) -> list[Any]: ...

    def destroyed(self, now: float) -> list[tuple[Entry, Transaction]]:
        """Records written in transactions aborted or expired by `now`."""

    def unfinished(self, now: float) -> list[Transaction]: ...

    def open_transactions(self, sink_uid: str) -> list[Transaction]: ...

    def blocking_transaction(self, now: float) -> Transaction | None: ...

    def visibility(self) -> list[Visible]:
        """Every change of what read-committed readers see, in order."""

    # forks
    def fork(self, version: int, *, label: str = "") -> "Store":
        """A new, independent store as this one stood after its first `version` ops."""

    def close(self) -> None:
        """Release what the store holds (files it does not keep, connections)."""


def check_begin(txn_id: str, tid: str, epoch: int, current: int | None, live: list[str],
                 now: float) -> None:
    """Kafka's rules for beginning a transaction as producer (tid, epoch)."""
    if current is None or epoch > current:
        raise ProducerStateError(
            f"transaction {txn_id} begun as producer {tid!r} epoch {epoch}, which was never "
            "initialized: call store.init_producer(now, transactional_id, owner) and begin "
            "with the epoch it returns")
    if epoch < current:
        raise ProducerFencedError(txn_id, tid, epoch, current, now)
    if live:
        raise ProducerStateError(
            f"transaction {txn_id} begun as producer {tid!r} epoch {epoch} while its "
            f"transaction {live[0]} is neither committed nor aborted: a producer has one "
            "transaction at a time; commit or abort it first, or use another transactional id")
