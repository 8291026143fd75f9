"""Store faults on the store protocol: whatever store a scenario names gets them.

- `commit_failure`: the store's next commits fail transiently (the store counts
  them down itself: `transient_failures`).
- `lost_transaction`: the external system drops a sink subtask's open
  transaction (Kafka: producer fenced, coordinator failover, transaction
  timeout): those open at `at`, or, when none is, the next one the subtask
  writes into (the fault waits for the sink's progress).  The transaction is aborted through the protocol (`abort`); the
  writer's next write or pre-commit into it raises `TransactionLostError`,
  which fails the task (a failover that replays the records).  Only open
  transactions are lost: one lost after its pre-commit is data loss in Kafka
  and Flink alike (the store's `txn_timeout` models that case).
- `slow_commit`: the next commits take `delay` ms longer.  Flink's committer
  commits synchronously in notify-checkpoint-complete, so the committing task
  is busy meanwhile (`Job.stall`); the commit takes effect, and becomes visible,
  at its end.

Sinks reach the store through `FaultyStore`, a view that forwards every other
call to the store itself; the properties read the store directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from onceflow.stores.protocol import OPEN, StoreError, TransactionLostError

if TYPE_CHECKING:
    from onceflow.model.job import Job

__all__ = ["FaultyStore"]


class FaultyStore:
    """The store as sinks see it while a plan's lost-transaction and slow-commit
    faults act on it."""

    def __init__(self, store: Any, job: "Job") -> None:
        self._store = store
        self._job = job
        #: transactions the external system dropped (a fault aborted them)
        self.lost: set[str] = set()
        #: extra ms for each of the next commits
        self.slow: list[float] = []
        #: transaction id -> owner, for the transactions begun through this view
        self.owners: dict[str, tuple[str, int]] = {}
        #: lost-transaction faults that found nothing open: (owners or None for any,
        #: what to call with the transaction they drop), struck by the next write
        self.armed: list[tuple[set[tuple[str, int]] | None, Callable[[float, str], None]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_store", "_job", "lost", "slow", "owners", "armed"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._store, name, value)

    # -- what the faults change ---------------------------------------------------------

    def begin(self, now: float, txn_id: str, owner: tuple[str, int]) -> None:
        self._store.begin(now, txn_id, owner)
        self.owners[txn_id] = (owner[0], owner[1])

    def write(self, now: float, txn_id: str, records: list[Any]) -> None:
        if self.armed:
            self._strike(now, txn_id)
        self._store.write(now, txn_id, records)
        if txn_id in self.lost:  # a store that drops such writes silently: fail them here
            raise TransactionLostError(txn_id, "aborted", now)

    def precommit(self, now: float, txn_id: str) -> None:
        if self.armed:
            self._strike(now, txn_id)
        self._store.precommit(now, txn_id)
        if txn_id in self.lost:
            raise TransactionLostError(txn_id, "aborted", now)

    def _strike(self, now: float, txn_id: str) -> None:
        """An armed lost-transaction fault drops the transaction its target writes into."""
        owner = self.owners.get(txn_id)
        if owner is None or txn_id in self.lost:
            return
        for i, (owners, fire) in enumerate(self.armed):
            if owners is None or owner in owners:
                del self.armed[i]
                self._store.abort(now, txn_id)
                self.lost.add(txn_id)
                fire(now, txn_id)
                return

    def commit(self, now: float, txn_id: str) -> bool | None:
        if not self.slow:
            return self._store.commit(now, txn_id)
        delay = self.slow.pop(0)
        self._job.stall += delay  # the committing task waits for the commit
        return self._store.commit(now + delay, txn_id)

    def next_commit_delay(self) -> float:
        """How much longer the next commit will take (0: not slowed)."""
        return self.slow[0] if self.slow else 0.0

    # -- applied by the injector -----------------------------------------------------------

    def lose_open_transactions(self, now: float, owners: set[tuple[str, int]] | None
                               ) -> list[str]:
        """Abort the open (not pre-committed) transactions of `owners` (None: every
        owner), as the external system would; their ids."""
        store = self._store
        uids = sorted({uid for uid, _ in owners} if owners is not None else
                      {v.uid for v in self._job.topology.vertices})
        lost = []
        try:
            for uid in uids:
                for txn in store.open_transactions(uid):
                    if txn.state != OPEN or txn.id in self.lost:
                        continue
                    if owners is not None and (txn.owner[0], txn.owner[1]) not in owners:
                        continue
                    store.abort(now, txn.id)
                    self.lost.add(txn.id)
                    lost.append(txn.id)
        except StoreError:
            raise
        except Exception as exc:  # the store broke its protocol: named, never judged
            raise StoreError(
                f"the store ({type(store).__name__}) broke the store protocol while a "
                f"lost_transaction fault aborted its open transactions: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}; open_transactions() "
                "must return onceflow.stores.Transaction values and abort() must accept "
                "their ids") from None
        return lost
