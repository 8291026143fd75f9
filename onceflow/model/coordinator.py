"""The checkpoint coordinator: triggers snapshots, collects acknowledgements, completes,
aborts, retains, and notifies.

Checkpoints (periodic, system-owned) and savepoints (on demand, user-owned)
go through the same `trigger` -> barrier -> `acknowledge` -> `complete` path;
`kind` decides only retention, failover use, and whether sinks are told to
commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from onceflow.model.failures import FailureCounter
from onceflow.model.records import Barrier
from onceflow.model.snapshot import CHECKPOINT, SAVEPOINT, Snapshot, assemble_state

if TYPE_CHECKING:
    from onceflow.model.job import Job
    from onceflow.model.task import Task

__all__ = ["CheckpointCoordinator", "PendingCheckpoint"]


class PendingCheckpoint:
    __slots__ = ("id", "kind", "triggered", "attempt", "acks", "channel_state", "expected",
                 "stop", "drain", "ended_sources", "fork_version", "coordinator_state",
                 "finished", "operators_finished", "to_trigger", "barrier")

    def __init__(self, checkpoint_id: int, kind: str, triggered: float, attempt: int,
                 expected: int, stop: bool, drain: bool) -> None:
        self.id = checkpoint_id
        self.kind = kind
        self.triggered = triggered
        self.attempt = attempt
        self.acks: dict[str, tuple[str, int, Any]] = {}
        self.channel_state: dict[str, list[Any]] = {}
        self.expected = expected
        self.stop = stop
        self.drain = drain
        self.ended_sources: set[str] = set()  # sources past end of input at their barrier
        self.fork_version: int | None = None
        self.coordinator_state: dict[str, Any] = {}
        self.finished: set[str] = set()  # tasks acknowledged as finished (FLIP-147)
        # running tasks whose snapshot came after their end of input (operators finished)
        self.operators_finished: set[str] = set()
        self.to_trigger: set[str] = set()  # the tasks this snapshot was triggered at
        self.barrier: Barrier | None = None


class CheckpointCoordinator:
    def __init__(self, job: "Job", first_id: int = 1) -> None:
        self.job = job
        self.env = job.env
        self.config = job.scenario.checkpoints
        self.next_id = first_id
        self.pending: dict[int, PendingCheckpoint] = {}
        self.retained: list[Snapshot] = []  # the completed-checkpoint store: N latest
        self.history: list[Snapshot] = []  # every snapshot that ever completed, in order
        self.final_wanted = False
        self.queued: list[tuple[bool, bool, Any]] = []  # savepoints waiting (unaligned mode)
        self.failures = FailureCounter(self.config.tolerable_failed_checkpoints)

    def start(self) -> None:
        self.env.process(self.periodic())

    def periodic(self) -> Generator[Any, Any, None]:
        interval = self.config.interval
        while self.job.running:
            yield self.env.timeout(interval)
            if self.job.running:
                self.trigger(CHECKPOINT)

    # -- triggering ---------------------------------------------------------------

    def trigger(self, kind: str, *, stop: bool = False, drain: bool = False,
                request: Any = None) -> int | None:
        job = self.job
        attempt = job.attempt
        if attempt is None or not attempt.alive or not job.running:
            if kind == SAVEPOINT:
                job.trace.add(self.env.now, "savepoint_failed", "coordinator", "job not running")
            return None
        if job.stopping is not None or any(p.stop for p in self.pending.values()):
            # nothing else is triggered while a stop-with-savepoint is in progress
            if kind == SAVEPOINT:
                job.trace.add(self.env.now, "savepoint_failed", "coordinator",
                              "stop-with-savepoint in progress")
            return None
        if self.pending and self.config.mode == "unaligned":
            # unaligned snapshots never run concurrently (FLIP-76): an overtaking barrier
            # would pass an older snapshot's barrier; a savepoint waits for its turn
            if kind == SAVEPOINT:
                self.queued.append((stop, drain, request))
            return None
        if kind == CHECKPOINT and len(self.pending) >= self.config.max_concurrent:
            return None
        cid = self.next_id
        self.next_id += 1
        if kind == CHECKPOINT:
            self.final_wanted = False
        pending = PendingCheckpoint(cid, kind, self.env.now, attempt.number,
                                    len(attempt.tasks) + (attempt.global_task is not None),
                                    stop, drain)
        pending.acks.update(attempt.finished)
        pending.finished.update(attempt.finished)
        self.pending[cid] = pending
        job.trace.add(self.env.now, "trigger", "coordinator", cid, kind)
        barrier = Barrier(cid, kind, self.env.now)
        pending.barrier = barrier
        sources = job.sources
        # the checkpoint plan (Flink's DefaultCheckpointPlanCalculator): trigger the first
        # still-running tasks, those none of whose upstream tasks is running
        plan = [t for t in attempt.tasks if not t.done and (
            t in attempt.sources or not any(not u.done for u in t.upstream))]
        pending.to_trigger = {t.name for t in plan}

        def inject() -> None:
            for task in plan:
                if task.upstream or task not in attempt.sources:
                    job.later(job.rpc_delay(), task.mail,
                              lambda t=task: t.trigger_direct(barrier))
                else:
                    sources.to_source(task, lambda s=task: s.trigger(barrier, stop, drain))

        # the operator coordinator (split enumerator) takes its checkpoint first; the
        # barriers are injected once it is done
        try:
            pending.coordinator_state = {sources.uid: sources.checkpoint(cid, inject)}
        except Exception as exc:  # the enumerator (user code) raised or broke the protocol
            job.component_error(f"source {job.scenario.source!r} enumerator", exc)
            return None
        job.later(self.config.timeout, self.expire, cid)
        if request is not None:
            job.savepoint_requests[cid] = request
        return cid

    def request_final(self) -> None:
        """All input has reached the sinks: take the final checkpoint now."""
        self.final_wanted = True
        self._maybe_final()

    def _maybe_final(self) -> None:
        if self.queued and not self.pending:
            stop, drain, request = self.queued.pop(0)
            self.trigger(SAVEPOINT, stop=stop, drain=drain, request=request)
        if self.final_wanted and self.job.running and not self.pending:
            self.trigger(CHECKPOINT)

    # -- acknowledgements -------------------------------------------------------

    def acknowledge_later(self, task: "Task", barrier: Barrier, state: Any,
                          channel_state: dict[str, list[Any]]) -> None:
        """The asynchronous part: upload the state, then acknowledge."""
        job = self.job
        # ended before it took this snapshot (its first snapshot after its end of input is
        # `final_after`); an unaligned snapshot is acknowledged once its channel state is
        # in, maybe after the end of input (a global committer has no input to end)
        final_after = getattr(task, "final_after", None)
        if final_after is not None and final_after <= barrier.id:
            pending = self.pending.get(barrier.id)
            if pending is not None and pending.attempt == task.attempt.number:
                pending.operators_finished.add(task.name)
        task.phase("async_upload", barrier.id)
        ok, extra = job.upload_filter(task, barrier.id) if job.upload_filter else (True, 0.0)
        delay = job.scenario.timing.upload_time + extra
        if ok:
            job.later(delay, self.acknowledge, task, barrier.id, state, channel_state)
        else:
            job.later(delay, self.decline, task, barrier.id, "storage write failed",
                      "async_failure")

    def decline(self, task: "Task", checkpoint_id: int, reason: str,
                cause: str = "declined") -> None:
        """Task `task` declined snapshot `checkpoint_id`; `cause` is the failure reason the
        failure counter judges (see `onceflow.model.failures`)."""
        pending = self.pending.get(checkpoint_id)
        if pending is None or pending.attempt != task.attempt.number or not task.attempt.alive:
            return
        self.job.trace.add(self.env.now, "declined", task.name, checkpoint_id, reason)
        self.abort(checkpoint_id, "declined")
        if pending.stop and not (self.job.mutant("drained-stop-resumes")
                                 or self.job.mutant("failed-stop-stays-stopped")):
            # a task-level failure of a synchronous savepoint fails the job at once
            self.job.fail(None, f"stop-with-savepoint {checkpoint_id} failed: {task.name} "
                                f"declined it ({reason})")
        elif self._escalates(checkpoint_id, cause):
            self.job.fail(None, f"exceeded checkpoint tolerable failure threshold: "
                                f"{pending.kind} {checkpoint_id} declined by {task.name} ({reason})")

    def _escalates(self, checkpoint_id: int, cause: str) -> bool:
        return self.failures.failure(checkpoint_id, cause)

    def acknowledge(self, task: "Task", checkpoint_id: int, state: Any,
                    channel_state: dict[str, list[Any]]) -> None:
        pending = self.pending.get(checkpoint_id)
        if pending is None or pending.attempt != task.attempt.number or not task.attempt.alive:
            return
        pending.acks[task.name] = (task.vertex.uid, task.subtask, state)
        if task.finished_on_restore:  # deployed as finished: it stays so (FLINK-21089)
            pending.finished.add(task.name)
        pending.channel_state.update(channel_state)
        self.job.trace.add(self.env.now, "ack", task.name, checkpoint_id)
        if len(pending.acks) == pending.expected:
            self.complete(pending)

    def source_ended(self, checkpoint_id: int, source: str) -> None:
        """Source task `source` took its part of `checkpoint_id` after its end of input."""
        pending = self.pending.get(checkpoint_id)
        if pending is not None:
            pending.ended_sources.add(source)

    def task_finished(self, task: "Task", final_state: Any) -> None:
        """A finished task counts as acknowledged, with its final state, from now on."""
        ack = (task.vertex.uid, task.subtask, final_state)
        task.attempt.finished[task.name] = ack
        for pending in list(self.pending.values()):
            if pending.id <= task.last_snapshot:
                continue  # it took part: its own acknowledgement is on its way
            if pending.attempt != task.attempt.number or task.name in pending.acks:
                continue
            if task.name in pending.to_trigger:
                # it finished between the plan and its trigger: the trigger finds no
                # running task and Flink declines the snapshot (not counted as a
                # failure); the next plan triggers the tasks after it.  (Handing the
                # trigger on instead completed snapshots whose restore read a finished
                # reader's split again: a false duplicate, regression token.)
                if pending.id in self.pending:
                    self.job.trace.add(self.env.now, "declined", task.name, pending.id,
                                       "task finished")
                    self.abort(pending.id, "task finished")
                continue
            if any(u.last_snapshot >= pending.id for u in task.senders()):
                # a sender took part, so its barrier came before its EndOfPartition and
                # this task let it pass (it had heard of a newer snapshot's abort): the
                # snapshot would hold the sender's state and this task as finished, which
                # no restore may start from (Flink's VertexFinishedStateChecker)
                if pending.id in self.pending:
                    self.job.trace.add(self.env.now, "declined", task.name, pending.id,
                                       "task finished")
                    self.abort(pending.id, "task finished")
                continue
            # it finished after its trigger went out but before its barriers came: it
            # forwards no barrier, so the tasks after it that now have no running sender
            # start the snapshot instead (as the next plan would trigger them)
            self._trigger_after(pending, task)
            pending.acks[task.name] = ack
            pending.finished.add(task.name)
            if len(pending.acks) == pending.expected:
                self.complete(pending)

    def _trigger_after(self, pending: PendingCheckpoint, task: "Task") -> None:
        job = self.job
        barrier = pending.barrier
        assert barrier is not None
        receivers: dict[str, Task] = {}
        for ch in task.outputs:
            receivers.setdefault(ch.receiver.name, ch.receiver)
        for receiver in receivers.values():
            if (receiver.done or receiver.name in pending.to_trigger
                    or any(not u.done for u in receiver.upstream)):
                continue
            pending.to_trigger.add(receiver.name)
            job.later(job.rpc_delay(), receiver.mail,
                      lambda r=receiver: r.trigger_direct(barrier))

    # -- completion and abortion ------------------------------------------------------

    def _partly_finished_union(self, pending: PendingCheckpoint) -> str | None:
        """An operator with union list state some but not all of whose subtasks finished
        in `pending` (Flink's DefaultCheckpointPlan.fulfillFinishedTaskStatus): its
        finished subtasks' union items would be missing from the snapshot.  Or, none of
        them finished, but some and not all had finished their operators (ended their
        input) when they took it: Flink aborts that too, so that the fast subtasks wait
        for the slow ones and all take the same final checkpoint (else the fast ones
        finish, every later checkpoint is partly finished, and the slow ones wait
        forever: checkNoPartlyOperatorsFinishedVertexUsedUnionListState)."""
        attempt = self.job.attempt
        if attempt is None or not attempt.union_state:
            return None
        parallelism = {v.uid: v.parallelism for v in self.job.topology.vertices}
        finished = self._count_union(pending, pending.finished)
        for uid in sorted(finished):
            if finished[uid] < parallelism[uid]:
                return uid
        ended = self._count_union(pending, pending.operators_finished - pending.finished)
        for uid in sorted(ended):
            if uid not in finished and ended[uid] < parallelism[uid]:
                return uid
        return None

    def _count_union(self, pending: PendingCheckpoint, names: set[str]) -> dict[str, int]:
        """How many of the tasks `names` belong to each operator with union list state."""
        attempt = self.job.attempt
        assert attempt is not None
        count: dict[str, int] = {}
        for name in names:
            uid = pending.acks[name][0]
            if uid in attempt.union_state:
                count[uid] = count.get(uid, 0) + 1
        return count

    def complete(self, pending: PendingCheckpoint) -> None:
        job = self.job
        partly = self._partly_finished_union(pending)
        if partly is not None:
            # Flink's PartialFinishingNotSupportedByStateException: the coordinator aborts
            # it (CHECKPOINT_DECLINED_TASK_CLOSING, not counted as a failure), so every
            # subtask of such an operator finishes on one final checkpoint (FLINK-21080)
            job.trace.add(self.env.now, "partly_finished", "coordinator", pending.id, partly)
            self.abort(pending.id, "partly finished")
            return
        del self.pending[pending.id]
        topology = job.topology
        attempt = job.attempt
        assert attempt is not None
        parts: dict[str, list[tuple[int, Any]]] = {}
        for uid, subtask, state in pending.acks.values():
            parts.setdefault(uid, []).append((subtask, state))
        kinds = attempt.state_kinds
        state = {uid: assemble_state(kinds[uid], [s for _, s in sorted(items, key=_first)],
                                     topology.max_parallelism)
                 for uid, items in parts.items()}
        snapshot = Snapshot(
            id=pending.id, kind=pending.kind, triggered=pending.triggered,
            completed=self.env.now, mode=self.config.mode,
            parallelism={v.uid: v.parallelism for v in topology.vertices},
            max_parallelism=topology.max_parallelism, state=state,
            channel_state=dict(pending.channel_state),
            store_version=(job.store.mark() if pending.fork_version is None
                           else pending.fork_version),
            run=job.run_id, stop=pending.stop, timeline=job.timeline,
            # every source had ended before its barrier or had finished (a source deployed
            # as finished is both: counted once), or was restored from a snapshot taken
            # after the end of input (the operators' restored state already holds its
            # effects, fired windows, even before the source ends its input again)
            input_ended=all(s.name in pending.ended_sources or s.name in pending.finished
                            or s.finished_before for s in attempt.sources),
            coordinator_state=dict(pending.coordinator_state),
            finished=frozenset(pending.finished))
        self.history.append(snapshot)
        self.failures.success(pending.id)
        if pending.kind == CHECKPOINT:
            self.retained.append(snapshot)
            del self.retained[:-self.config.retained]
        job.trace.add(self.env.now, "completed", "coordinator", pending.id, pending.kind)
        commits = (pending.kind == CHECKPOINT or pending.stop
                   or job.mutant("savepoint-commits"))
        if pending.stop:
            # before the older snapshots are aborted as subsumed: an abort frees a slot, and
            # nothing may be triggered once a stop-with-savepoint completed
            job.stopping = pending.id
        for older in sorted(cid for cid in self.pending if cid < pending.id):
            if self.pending[older].kind == CHECKPOINT:
                self.abort(older, "subsumed")
            elif commits and self.pending[older].fork_version is None:
                # from here on the store holds commits of epochs after that savepoint:
                # a restore of it forks the store as it stood before them
                self.pending[older].fork_version = job.store.mark()
        if commits:
            job.sources.checkpoint_complete(pending.id)
            for task in attempt.tasks:
                job.notify(task, pending.id,
                           lambda t=task, c=pending.id, s=pending.stop: t.notify_complete(c, s))
            if attempt.global_task is not None and job.mutant("global-commit-on-notify"):
                g = attempt.global_task  # it commits on input: only the mutant listens
                job.later(job.rpc_delay(), g.notify_complete, pending.id)
        if pending.stop:
            self.env.process(self._resend_stop(pending.id))
        self._maybe_final()

    def _resend_stop(self, checkpoint_id: int) -> Generator[Any, Any, None]:
        """The job ends only when every task heard that its stop-with-savepoint completed:
        repeat the notification to the tasks that did not finish yet."""
        job = self.job
        attempt = job.attempt
        while True:
            yield self.env.timeout(self.config.interval)
            if not job.running or attempt is not job.attempt or not attempt.alive:
                return
            for task in attempt.tasks:
                if not task.done:
                    job.notify(task, checkpoint_id,
                               lambda t=task: t.notify_complete(checkpoint_id, True))

    def expire(self, checkpoint_id: int) -> None:
        pending = self.pending.get(checkpoint_id)
        if pending is not None and self.job.running:
            self.abort(checkpoint_id, "timeout")
            # a job-level failure: only checkpoints count (a stop-with-savepoint's tasks
            # fail themselves when they hear of the abort)
            if pending.kind == CHECKPOINT and self._escalates(checkpoint_id, "expired"):
                self.job.fail(None, f"exceeded checkpoint tolerable failure threshold: "
                                    f"checkpoint {checkpoint_id} expired")

    def abort(self, checkpoint_id: int, reason: str) -> None:
        job = self.job
        self.pending.pop(checkpoint_id)
        job.trace.add(self.env.now, "aborted", "coordinator", checkpoint_id, reason)
        job.sources.checkpoint_aborted(checkpoint_id)
        attempt = job.attempt
        if attempt is not None and attempt.alive:
            # the message carries the latest completed checkpoint (Flink's
            # completedCheckpointStore.getLatestCheckpointId(), FLINK-21080)
            latest = 0
            if self.retained and not job.mutant("abort-drops-latest-completed"):
                latest = self.retained[-1].id
            for task in attempt.tasks:
                job.notify(task, checkpoint_id,
                           lambda t=task: t.notify_aborted(checkpoint_id, latest))
            if attempt.global_task is not None:
                attempt.global_task.abort(checkpoint_id)
        self._maybe_final()

    def shutdown(self, reason: str) -> None:
        """The job reached a terminal state: abort every pending snapshot (Flink's
        CHECKPOINT_COORDINATOR_SHUTDOWN) and fail the savepoint requests still queued."""
        queued, self.queued = self.queued, []
        for _ in queued:
            self.job.trace.add(self.env.now, "savepoint_failed", "coordinator", reason)
        self.final_wanted = False
        for cid in sorted(self.pending):
            self.abort(cid, reason)

    def on_failover(self) -> None:
        for cid in sorted(self.pending):
            self.job.trace.add(self.env.now, "aborted", "coordinator", cid, "failover")
        self.pending.clear()

    def latest_checkpoint(self) -> Snapshot | None:
        """What a failover restores: the newest retained checkpoint, else the snapshot this
        timeline was restored from (Flink registers it in the checkpoint store)."""
        return self.retained[-1] if self.retained else self.job.initial


def _first(item: tuple[int, Any]) -> int:
    return item[0]
