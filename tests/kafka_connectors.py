"""Kafka-style exactly-once sinks written as connector authors write them (through the
public API and the store's transactional ids with producer epochs only), each beside
its corrected version: a plugin module (`--plugin kafka_connectors`).

Each sink is Flink's KafkaSink in one operator: a writer that runs one Kafka
transaction at a time under a transactional id (`store.init_producer` then
`store.begin(..., producer=(id, epoch))`), pre-commits it on the barrier and keeps
it as a committable in its (list) state; a committer that commits the committables
when a checkpoint completes and, after a restore, commits the restored ones.

- `kafka_one_id`: one transactional id per subtask, initialized again for every
  transaction (a producer per transaction); the committer takes ProducerFenced for
  "committed before" (FlinkKafkaProducer's recovery did, until apache/flink#16941,
  FLINK-23839).  The next transaction's init aborts the pre-committed one: its
  commit is fenced, and the records are lost.  Fixed: a new id per transaction
  (`prefix-subtask-attempt-n`: no other attempt or restored job initializes it).
- `kafka_fenced_fails`: a pool of transactional ids per subtask, an id reused once
  its transaction committed (FlinkKafkaProducer's pool); the committer fails the job
  on ProducerFenced.  A restore of a checkpoint whose committable was committed
  and its id reused is fenced on every attempt: the job fails until its restarts
  run out (FLINK-8086, apache/flink#5030: "restore twice from the same checkpoint
  or from an old savepoint").  Fixed: fenced on recovery means committed before
  (the pool only reuses an id after its transaction committed).
- `kafka_no_abort_lingering`: ids per transaction, but recovery does not abort the
  transactions an earlier attempt left open (a crashed worker runs no close(); a
  rollback restore finds the stopped run's): they hold read-committed readers
  back (the last stable offset) until they expire (evolution-gaming/kafka-flow#853
  describes the same pinned LSO).  Fixed: list the sink's open transactions
  (Kafka's listTransactions, KIP-664) and initialize the id of each one no
  restored committable holds, which aborts it.

Each `NAME` has a `NAME_fixed`.  Registered on import; `register()` is idempotent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from onceflow.registry import SINKS, register_sink
from onceflow.stores import ProducerFencedError


class KafkaTxnSink:
    """Writer and committer of one sink subtask.

    `naming` is "one_id", "sequence" (a new id per transaction) or "pool" (ids reused
    once committed); `fenced_ok` takes ProducerFenced on a commit as committed before;
    `abort_lingering` aborts, on recovery, what earlier attempts left open.
    """

    state_kind: ClassVar[str | None] = "list"

    def __init__(self, naming: str, fenced_ok: bool, abort_lingering: bool) -> None:
        self.naming = naming
        self.fenced_ok = fenced_ok
        self.abort_lingering = abort_lingering

    # -- recovery ---------------------------------------------------------------------

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.prefix = f"kafka-{ctx.uid}"
        owner = (ctx.uid, ctx.subtask)
        #: ids some restored committable still holds, whichever subtask restored it
        held = {entry[2] for entry in ctx.restored_union or ()}
        self.pending: list[tuple[int, str, str, int]] = []
        self.retired = set(held)  # never reuse an id a committable may still need
        self.free: list[int] = []
        self.next = 0
        self.ids: dict[str, int] = {}
        for cid, txn, tid, epoch in restored or ():
            ctx.phase("recovery_commit", cid)
            if not self._commit(txn):
                self.pending.append((cid, txn, tid, epoch))
            elif self.abort_lingering and self.naming == "pool":
                # a restore of an older snapshot: the run it rolls back may have reused
                # the id since (the commit was fenced); abort what it has open now
                ctx.store.init_producer(ctx.now, tid, owner)
        if self.abort_lingering:
            # Kafka's listTransactions (KIP-664): every transaction of this sink still
            # open under an id no committable holds, begun by a subtask whose work this
            # one took over; initializing its id aborts it
            p = ctx.parallelism
            for t in ctx.store.open_transactions(ctx.uid):
                if (t.producer is not None and t.producer[0] not in held
                        and t.owner[1] % p == ctx.subtask):
                    ctx.store.init_producer(ctx.now, t.producer[0], owner)
        self.current = self._begin()

    # -- the writer ---------------------------------------------------------------------

    def _tid(self, n: int) -> str:
        if self.naming == "one_id":
            return f"{self.prefix}-{self.ctx.subtask}"
        # unique per attempt and timeline: no other run of the job initializes it
        return f"{self.prefix}-{self.ctx.subtask}-{self.ctx.attempt}-{n}"

    def _begin(self) -> tuple[str, str, int]:
        ctx = self.ctx
        if self.naming == "pool" and self.free:
            n = self.free.pop(0)
        else:
            n = self.next
            self.next += 1
        tid = self._tid(n)
        epoch = ctx.store.init_producer(ctx.now, tid, (ctx.uid, ctx.subtask))
        txn = f"{tid}@{epoch}"
        ctx.store.begin(ctx.now, txn, (ctx.uid, ctx.subtask), (tid, epoch))
        self.ids[tid] = n
        return txn, tid, epoch

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.ctx.store.write(self.ctx.now, self.current[0], records)

    def end_input(self, out: list[Any]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        ctx = self.ctx
        txn, tid, epoch = self.current
        ctx.store.precommit(ctx.now, txn)
        ctx.phase("pre_commit", checkpoint_id)
        self.pending.append((checkpoint_id, txn, tid, epoch))
        self.current = self._begin()
        return list(self.pending)

    # -- the committer ------------------------------------------------------------------

    def _commit(self, txn: str) -> bool:
        """Commit, retrying a transient failure at once; False: keep it for later."""
        for _ in range(10):
            try:
                done = self.ctx.store.commit(self.ctx.now, txn)
            except ProducerFencedError:
                if not self.fenced_ok:
                    raise  # the bug: "fenced" is taken for a failure, every attempt
                done = True  # the id was reused, which the writer does only after a commit
            if done is not None:
                if done and self.naming == "pool":
                    self._release(txn)
                return True
        return False

    def _release(self, txn: str) -> None:
        """A committed transaction's id goes back to the pool (ids of this attempt only)."""
        tid = txn.rsplit("@", 1)[0]
        n = self.ids.get(tid)
        if n is not None and tid not in self.retired and n not in self.free:
            self.free.append(n)
            self.free.sort()

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        still = []
        for cid, txn, tid, epoch in self.pending:
            if cid <= checkpoint_id:
                self.ctx.phase("commit_before", checkpoint_id)
                if not self._commit(txn):
                    still.append((cid, txn, tid, epoch))
                self.ctx.phase("commit_after", checkpoint_id)
            else:
                still.append((cid, txn, tid, epoch))
        self.pending = still

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        current = getattr(self, "current", None)
        if current is not None:
            self.ctx.store.abort(self.ctx.now, current[0])


SPECS = {
    "kafka_one_id": ("one_id", True, True),
    "kafka_one_id_fixed": ("sequence", True, True),
    "kafka_fenced_fails": ("pool", False, True),
    "kafka_fenced_fails_fixed": ("pool", True, True),
    "kafka_no_abort_lingering": ("sequence", True, False),
    "kafka_no_abort_lingering_fixed": ("sequence", True, True),
}


def register() -> None:
    for name, (naming, fenced_ok, lingering) in SPECS.items():
        SINKS.pop(name, None)
        register_sink(name, kind="two_phase",
                      factory=lambda n=naming, f=fenced_ok, a=lingering: KafkaTxnSink(n, f, a))


register()
