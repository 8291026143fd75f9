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
  at its end.  The commit is in flight until then: a crash or failover of the
  job meanwhile leaves it as the fault's `on_crash` says, committed (the store
  got the request and completes it, even after the restored committer committed
  it again: the second commit finds it committed) or not committed (the
  restored committer commits it).  An in-flight commit the store completes
  cannot be aborted any more (Kafka refuses to abort a transaction in
  PrepareCommit): such an abort changes nothing.

Sinks reach the store through `FaultyStore`, a view that forwards every other
call to the store itself; the properties read the store directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from onceflow.stores.protocol import OPEN, PRECOMMITTED, StoreError, TransactionLostError

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
        #: for each of them, what a crash while it is in flight leaves ("committed", ...)
        self.outcomes: list[str] = []
        #: transaction id -> (attempt that sent the commit, outcome on a crash): commits
        #: in flight, landing when the commit returns
        self.inflight: dict[str, tuple[Any, str]] = {}
        #: (sent, lands) of the latest slow commit sent (a commit_in_flight crash aims
        #: halfway through it)
        self.last_flight = (0.0, 0.0)
        #: flights an init_producer of their id completed before they returned
        self.settled: list[tuple[Any, str]] = []
        #: transaction id -> owner, for the transactions begun through this view
        self.owners: dict[str, tuple[str, int]] = {}
        #: lost-transaction faults that found nothing open: (owners or None for any,
        #: what to call with the transaction they drop), struck by the next write
        self.armed: list[tuple[set[tuple[str, int]] | None, Callable[[float, str], None]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_store", "_job", "lost", "slow", "outcomes", "inflight", "last_flight",
                    "owners", "armed", "settled"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._store, name, value)

    # -- what the faults change ---------------------------------------------------------

    def begin(self, now: float, txn_id: str, owner: tuple[str, int],
              producer: tuple[str, int] | None = None) -> None:
        if producer is None:
            self._store.begin(now, txn_id, owner)
        else:
            self._store.begin(now, txn_id, owner, producer)
        self.owners[txn_id] = (owner[0], owner[1])

    def init_producer(self, now: float, transactional_id: str, owner: tuple[str, int]) -> int:
        """Kafka's coordinator completes a commit it got (PrepareCommit) before it
        initializes the id again: commits in flight of the id land first."""
        store = self._store
        for txn_id, flight in list(self.inflight.items()):
            txn = store.txns.get(txn_id)
            if txn is None or txn.producer is None or txn.producer[0] != transactional_id:
                continue
            attempt, on_crash = flight
            del self.inflight[txn_id]
            self.settled.append(flight)
            if attempt.alive or on_crash == "committed":
                pending, store.transient_failures = store.transient_failures, 0
                try:
                    store.commit(now, txn_id)
                finally:
                    store.transient_failures += pending
        return store.init_producer(now, transactional_id, owner)

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
        delay, on_crash = self.take_delay()
        job = self._job
        job.stall += delay  # the committing task waits for the commit (after any before it)
        lands = now + job.stall
        self.last_flight = (now, lands)
        store = self._store
        txn = store.txns.get(txn_id) if not store.transient_failures else None
        if (not job.committing or txn is None or txn.state != PRECOMMITTED
                or job.attempt is None or lands - txn.begun >= store.txn_timeout):
            # not a committer operator's commit (its task does not wait), nothing for the
            # commit to change, or it fails: no flight to interrupt
            return store.commit(lands, txn_id)
        flight = self.inflight[txn_id] = (job.attempt, on_crash)
        job.later(lands - now, self._land, txn_id, flight)
        return True

    def _land(self, txn_id: str, flight: tuple[Any, str]) -> None:
        """The slow commit of `txn_id` returns: it lands, unless a crash interrupted it
        before the request reached the store."""
        if any(f is flight for f in self.settled):
            return  # an init_producer of its id completed it already
        if self.inflight.get(txn_id) is flight:
            del self.inflight[txn_id]
        attempt, on_crash = flight
        job = self._job
        now = job.env.now
        # a job that finished had every commit return (its attempt ends, not fails)
        interrupted = not attempt.alive and not (job.attempt is attempt and job.status == "finished")
        if interrupted and on_crash == "not_committed":
            job.trace.add(now, "commit_interrupted", "store", txn_id, "not committed")
            return
        store = self._store
        before = store.txns.get(txn_id)
        again = before is not None and before.state == "committed"
        # transient failures that came after the commit was sent are not its own
        pending, store.transient_failures = store.transient_failures, 0
        try:
            ok = store.commit(now, txn_id)
        finally:
            store.transient_failures += pending
        if interrupted:
            job.trace.add(now, "commit_interrupted", "store", txn_id,
                          "already committed" if again else
                          "committed" if ok else "not committed")

    def abort(self, now: float, txn_id: str) -> None:
        flight = self.inflight.get(txn_id)
        if flight is not None and flight[1] == "committed":
            # the store is completing its commit: the abort fails and changes nothing
            self._job.trace.add(now, "abort_refused", "store", txn_id, "commit in flight")
            return
        self._store.abort(now, txn_id)

    def take_delay(self) -> tuple[float, str]:
        """The delay of the next slow commit and what a crash during it leaves; consumed."""
        return self.slow.pop(0), self.outcomes.pop(0)

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
