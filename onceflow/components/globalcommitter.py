"""Sink V2's optional global committer (Flink's `SupportsPostCommitTopology` with
`StandardSinkTopologies.addGlobalCommitter`): one `GlobalCommitterOperator`, at
parallelism 1, behind the sink's committers.

- Each committer subtask, once it committed the committables of checkpoint n
  (on notify-complete), sends them on: a `CommittableSummary` and one
  `CommittableWithLineage` per committable.  Restored committables are sent on
  after their recovery commit by the subtasks that restored them, each summary
  counting the subtasks that do (Flink's `min(new, old subtask count)`,
  FLINK-37747); a subtask that restored none of a checkpoint sends nothing for it.
- The global committer collects them per checkpoint and commits a checkpoint
  (`GlobalCommitter.commit(ctx, committables, checkpoint_id)`, one call for all
  of them) once as many summaries as the first one names arrived, each with its
  committables (a subtask that ended before the checkpoint is not waited for),
  oldest first, stopping at the first incomplete one
  (Flink's `commitOnInput`: receiving them at all means the checkpoint completed).
- Its collector is operator list state, snapshotted by the same mechanism when the
  barriers of all committer subtasks arrived (aligned: sink-internal channels never
  take unaligned snapshots, FLINK-36287).  On restore it commits the checkpoints
  it holds in full (every committable it holds belongs to a completed checkpoint);
  a checkpoint split between its state and the committers' waits for the
  committers to send their part again and is committed in one call.
- A commit that fails transiently (None) is retried `COMMIT_RETRIES` times, then the
  task fails (the job fails over).  The job finishes when it finished: every
  committer subtask ended and everything it received is committed.

Its name in traces and fault targets is `<sink uid>.global[0]`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from onceflow.components.sinkv2 import COMMIT_RETRIES, CommittableSummary
from onceflow.model.task import OperatorContext, TaskCrash

if TYPE_CHECKING:
    from onceflow.model.job import Attempt, Job

__all__ = ["GLOBAL_SUFFIX", "GlobalCommitter", "GlobalCommitterOperator", "GlobalCommitterTask",
           "PassThroughCommitter", "StoreGlobalCommitter", "global_uid"]

#: The global committer's uid is the sink's uid with this suffix.
GLOBAL_SUFFIX = ".global"


def global_uid(sink_uid: str) -> str:
    return sink_uid + GLOBAL_SUFFIX


class GlobalCommitter(Protocol):
    """Flink's global `Committer` (behind `addGlobalCommitter`): commits all
    committables of one checkpoint at once.  Must be idempotent: a restored job
    commits again what may have been committed before the crash."""

    def commit(self, ctx: OperatorContext, committables: list[str],
               checkpoint_id: int) -> bool | None:
        """Commit `committables` (transaction ids) of `checkpoint_id`: True when
        committed (now or before), False when the external system lost them, None
        for a transient failure (retried)."""


class PassThroughCommitter:
    """A committer that leaves the commit to the global committer (as Delta's and
    Iceberg's sinks do: the writers' files become visible in one table commit)."""

    def commit(self, ctx: OperatorContext, txn: str, checkpoint_id: int = 0) -> bool | None:
        return True


class StoreGlobalCommitter:
    """Commits a checkpoint's transactions of the simulated store, one after another."""

    def commit(self, ctx: OperatorContext, committables: list[str],
               checkpoint_id: int) -> bool | None:
        store = ctx.store
        if ctx.mutant("global-skips-partly-committed") and any(
                (t := store.txns.get(txn)) is not None and t.state == "committed"
                for txn in committables):
            # apache/iceberg #14090: the checkpoint looks committed as soon as one of its
            # committables is, so a retry or a restored job skips the rest of it
            return True
        # one request per committable, as Flink's CommitRequest: a transient failure of one
        # does not stop the others; the whole checkpoint is retried (commits are idempotent)
        ok: bool | None = True
        for txn in committables:
            ctx.phase("global_commit_before", checkpoint_id)
            got = store.commit(ctx.now, txn)
            ctx.phase("global_commit_after", checkpoint_id)
            if got is None:
                ok = None
            elif not got and ok is not None:
                ok = False
        return ok


class _Checkpoint:
    """What the global committer holds of one checkpoint: the summaries and committables
    the committers sent in this attempt (subtask -> count, subtask -> committables, out
    of `parallelism` summaries), and what a restored snapshot held of it (`restored`,
    and whether that part still `awaits` the committers' re-emission after a restore)."""

    __slots__ = ("parallelism", "expected", "committables", "restored", "awaits")

    def __init__(self) -> None:
        self.parallelism = 0
        self.expected: dict[int, int] = {}
        self.committables: dict[int, list[str]] = {}
        self.restored: list[str] = []
        self.awaits = False

    def complete(self, ended: set[int], upstream: int) -> bool:
        """Flink's `hasGloballyReceivedAll`: `parallelism` summaries arrived, each with all
        its committables; a committer subtask in `ended` is not waited for.  A restored
        part that awaits the committers completes with their re-emission."""
        if self.restored and not self.awaits:
            return True
        if not self.parallelism:
            return False
        for s, count in self.expected.items():
            if count != len(self.committables.get(s, ())):
                return False
        if len(self.expected) >= self.parallelism:
            return True
        return all(s in self.expected or s in ended for s in range(upstream))

    def all(self) -> list[str]:
        return self.restored + [txn for s in sorted(self.committables)
                                for txn in self.committables[s]]


class GlobalCommitterOperator:
    """Flink's `GlobalCommitterOperator` behind a committer (commit on input)."""

    def __init__(self, committer: GlobalCommitter, upstream: int = 1) -> None:
        self.committer = committer
        self.upstream = upstream
        self.collector: dict[int, _Checkpoint] = {}
        self.ended: set[int] = set()
        #: the id of the snapshot restored (0: none); the committables of checkpoints up to
        #: it are the committers' re-emission, which waits for every summary it names
        self.restored_id = 0
        #: the checkpoints whose committables the restored committers hold (and send again)
        self.held_by_committers: set[int] = set()
        self.last_committed = 0  # only the global-commit-on-notify mutant uses it

    def initialize_state(self, ctx: OperatorContext, restored: Any) -> None:
        """Restore the collector; commit the checkpoints it holds in full (Flink's
        `commit(restoredCheckpointId)`).  A checkpoint split between this state and the
        committers' waits for the committers to send their part again after their
        recovery commit, and is then committed in one call, as in Flink."""
        self.ctx = ctx
        for cid, txns, waits in restored or ():
            got = self.collector.setdefault(cid, _Checkpoint())
            got.restored.extend(txns)
            got.awaits = got.awaits or waits or cid in self.held_by_committers
        for cid in sorted(self.collector):
            got = self.collector[cid]
            if got.awaits:
                break  # Flink's commit loop stops at the first incomplete checkpoint
            ctx.phase("recovery_commit", cid)
            del self.collector[cid]
            self._commit(got.all(), cid, "recovery")

    def receive(self, message: Any) -> None:
        cid = message.checkpoint_id
        if self.ctx.mutant("global-commit-on-notify") and cid <= self.last_committed:
            return  # FLINK-24530: taken for a checkpoint that was committed already
        got = self.collector.setdefault(cid, _Checkpoint())
        if message.__class__ is CommittableSummary:
            if not got.parallelism:
                got.parallelism = message.parallelism  # as Flink's manager: from the first
            got.expected[message.subtask] = message.count
        else:
            got.committables.setdefault(message.subtask, []).append(message.committable)

    def _complete(self, cid: int) -> bool:
        # a committer subtask that ended sends nothing more (the model's writer emits
        # nothing after its end of input); a restored checkpoint's re-emission names
        # exactly the subtasks that send it, so nobody is excused from it
        ended = self.ended if cid > self.restored_id else set()
        return self.collector[cid].complete(ended, self.upstream)

    def commit_ready(self) -> None:
        """Commit every fully received checkpoint, oldest first, up to the first that is not."""
        if self.ctx.mutant("global-commit-on-notify"):
            return  # commits on notify-complete instead
        for cid in sorted(self.collector):
            if not self._complete(cid):
                return
            got = self.collector.pop(cid)
            self._commit(got.all(), cid, "input")

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Nothing (commit on input); the FLINK-24530 mutant commits here what it holds."""
        if not self.ctx.mutant("global-commit-on-notify"):
            return
        for cid in sorted(c for c in self.collector if c <= checkpoint_id):
            self._commit(self.collector.pop(cid).all(), cid, "notify")
        self.last_committed = max(self.last_committed, checkpoint_id)

    def snapshot_state(self) -> list[tuple[int, tuple[str, ...], bool]]:
        """One item per checkpoint held: (checkpoint id, its committables, whether it still
        waits for summaries of a restored checkpoint: the committers re-send a restored
        checkpoint before any newer barrier, so it can only wait for summaries that never
        come, and goes on waiting after a restore, as Flink's restored collector does)."""
        return [(cid, tuple(self.collector[cid].all()),
                 self.collector[cid].awaits or (cid <= self.restored_id and not self._complete(cid)))
                for cid in sorted(self.collector)]

    @property
    def idle(self) -> bool:
        return not self.collector

    def _commit(self, committables: list[str], checkpoint_id: int, why: str) -> None:
        ctx = self.ctx
        for _ in range(COMMIT_RETRIES):
            ok = self.committer.commit(ctx, list(committables), checkpoint_id)
            if ok is not None:
                ctx.event("global_commit" if ok else "global_commit_lost", tuple(committables),
                          checkpoint_id, why)
                return
            ctx.event("global_commit_retry", tuple(committables), checkpoint_id)
        raise TaskCrash(f"global commit of checkpoint {checkpoint_id} failed "
                        f"{COMMIT_RETRIES} times")


class _Vertex:
    """The global committer's vertex: parallelism 1 behind the sink."""

    __slots__ = ("uid", "kind", "parallelism", "edge", "param")

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.kind = "sink"  # reports name it as part of the sink
        self.parallelism = 1
        self.edge = "global"
        self.param = 0


class GlobalCommitterTask:
    """The subtask running the global committer: receives the committers' messages over
    FIFO channels (one per committer subtask), aligns their barriers, snapshots,
    commits and finishes.  Dies with its attempt."""

    def __init__(self, job: "Job", attempt: "Attempt", sink_uid: str, sink_parallelism: int,
                 committer: GlobalCommitter) -> None:
        self.job = job
        self.attempt = attempt
        self.env = job.env
        self.vertex = _Vertex(global_uid(sink_uid))
        self.sink_uid = sink_uid
        self.subtask = 0
        self.name = f"{self.vertex.uid}[0]"
        self.upstream = sink_parallelism
        self.operator = GlobalCommitterOperator(committer, sink_parallelism)
        self.queues: list[deque[tuple[str, Any]]] = [deque() for _ in range(sink_parallelism)]
        self.aligning: int | None = None
        self.arrived: set[int] = set()
        self.last_snapshot = 0
        self.done = False
        self.restored_union = None
        self.finished_on_restore = False  # FLIP-147: never deployed as finished (it has state)
        self.outputs: list[Any] = []  # nothing downstream

    def senders(self) -> list[Any]:
        """No task channels feed it (the committers' messages come over its own queues,
        whose barriers it aligns itself)."""
        return []

    # -- lifecycle --------------------------------------------------------------------

    def start(self, restored: Any) -> None:
        self.ctx = OperatorContext(self, None)  # type: ignore[arg-type]
        snapshot = self.job.restoring
        if snapshot is not None:
            self.job.trace.add(self.env.now, "restore", self.name, snapshot.id, snapshot.kind)
        self._guarded(self.phase, "restore", snapshot.id if snapshot is not None else 0)
        self.operator.restored_id = snapshot.id if snapshot is not None else 0
        if snapshot is not None:
            from onceflow.model.snapshot import list_union  # noqa: PLC0415

            self.operator.held_by_committers = {
                cid for cid, _ in list_union(snapshot.state.get(self.sink_uid))}
        self._guarded(self.operator.initialize_state, self.ctx, restored)
        self._guarded(self._drain)  # every committer subtask deployed as finished: done

    def phase(self, name: str, checkpoint_id: int) -> None:
        self.job.phase(self, name, checkpoint_id)  # type: ignore[arg-type]

    @property
    def alive(self) -> bool:
        return self.attempt.alive and not self.done

    def _guarded(self, fn: Any, *args: Any) -> None:
        if not self.alive:
            return
        try:
            fn(*args)
        except TaskCrash as crash:
            self.job.fail(self, str(crash))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 (user code raised: report it as such)
            from onceflow.stores.protocol import StoreError  # noqa: PLC0415

            if isinstance(exc, StoreError):
                raise
            self.job.operator_error(self, exc, vertex=self.vertex)  # type: ignore[arg-type]

    # -- the channels from the committers ---------------------------------------------

    def send(self, subtask: int, kind: str, item: Any) -> None:
        """Committer subtask `subtask` sends `item` ("message", "barrier" or "end")."""
        attempt = self.attempt

        def arrive() -> None:
            if attempt.alive and not self.done:
                self.queues[subtask].append((kind, item))
                self._guarded(self._drain)

        # one fixed latency per hop keeps each channel FIFO (SimPy keeps equal times' order)
        self.job.later(self.job.scenario.timing.latency, arrive)

    def abort(self, checkpoint_id: int) -> None:
        """Snapshot `checkpoint_id` was aborted: stop aligning for it."""
        if self.aligning == checkpoint_id:
            self.aligning = None
            self.arrived = set()
            self._guarded(self._drain)

    def _drain(self) -> None:
        op = self.operator
        progress = True
        while progress and self.alive:
            progress = False
            for s, queue in enumerate(self.queues):
                while queue and s not in self.arrived:
                    kind, item = queue.popleft()
                    progress = True
                    if kind == "message":
                        op.receive(item)
                    elif kind == "end":
                        op.ended.add(s)
                    elif self.aligning is None or item > self.aligning:
                        # a newer barrier ends the alignment of an older snapshot
                        self.aligning, self.arrived = item, {s}
                    elif item == self.aligning:
                        self.arrived.add(s)
            if self.aligning is not None and self.arrived | op.ended >= set(range(self.upstream)):
                self._snapshot(self.aligning)
                self.aligning, self.arrived = None, set()
                progress = True
        if not self.alive:
            return
        op.commit_ready()
        if len(op.ended) == self.upstream and op.idle and not any(self.queues):
            self._finish()

    def _snapshot(self, checkpoint_id: int) -> None:
        from onceflow.model.records import Barrier  # noqa: PLC0415

        pending = self.job.coordinator.pending.get(checkpoint_id)
        kind = pending.kind if pending is not None else "checkpoint"
        self.phase("before_snapshot", checkpoint_id)
        state = self.operator.snapshot_state()
        self.last_snapshot = max(self.last_snapshot, checkpoint_id)
        self.job.trace.add(self.env.now, "snapshot", self.name, checkpoint_id, kind)
        self.phase("after_sync_snapshot", checkpoint_id)
        barrier = Barrier(checkpoint_id, kind, self.env.now)
        self.job.coordinator.acknowledge_later(self, barrier, state, {})  # type: ignore[arg-type]

    def notify_complete(self, checkpoint_id: int) -> None:
        if self.alive:
            self._guarded(self.operator.notify_checkpoint_complete, checkpoint_id)

    def _finish(self) -> None:
        self.done = True
        self.job.trace.add(self.env.now, "task_finished", self.name)
        self.job.coordinator.task_finished(self, [])  # type: ignore[arg-type]
        self.job.maybe_finish(self.attempt)
