"""Tasks: one SimPy process per subtask, running Flink's mailbox loop.

A task takes one buffer at a time from a ready, unblocked input channel,
runs its operator on it, routes the output to its output channels, and pays
`record_cost` per record in simulated time.  Mails (checkpoint triggers,
notifications) run between buffers, also while the task is backpressured.
A task whose attempt has failed stops at its next step; nothing is
interrupted mid-buffer.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator

from onceflow.model.barriers import make_handler
from onceflow.model.keygroups import subtask_for_key
from onceflow.errors import ProtocolError
from onceflow.model.usercode import accepts, check_output, check_state, is_user_code
from onceflow.stores.protocol import StoreError, TransactionLostError
from onceflow.model.log import LogClient
from onceflow.model.records import END_OF_INPUT as END_MARKER
from onceflow.model.records import END_OF_PARTITION, Barrier, CancelMarker, EndOfPartition, Record
from onceflow.model.source_coordinator import SourceProtocolError, check_splits
from onceflow.model.sources import END_OF_INPUT, INPUT_STATUSES, SourceReader, Split, conforms

if TYPE_CHECKING:
    import simpy

    from onceflow.model.channel import Channel
    from onceflow.model.job import Attempt, Job
    from onceflow.scenario import Vertex
    from onceflow.stores import Store

__all__ = ["OperatorContext", "SourceTask", "Task", "TaskCrash"]


class TaskCrash(Exception):
    """Raised inside a task to make it fail (an injected crash)."""


def _lost_transaction(exc: BaseException) -> TransactionLostError | None:
    """The `TransactionLostError` `exc` was raised from (its cause or context), if any."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 20:
        if isinstance(cur, TransactionLostError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


class OperatorContext:
    """What an operator may see of its runtime: identity, time, the store, hooks."""

    __slots__ = ("task", "uid", "subtask", "parallelism", "max_parallelism", "attempt",
                 "restored_union", "store", "job_id")

    def __init__(self, task: "Task", restored_union: list[Any] | None) -> None:
        self.task = task
        self.uid = task.vertex.uid
        self.subtask = task.subtask
        self.parallelism = task.vertex.parallelism
        self.max_parallelism = task.job.topology.max_parallelism
        job = task.job
        # unique across timelines (a restore forks the store) and attempts
        self.attempt = (f"t{job.timeline}a{task.attempt.number}" if job.timeline
                        else f"a{task.attempt.number}")
        self.restored_union = restored_union
        self.store: "Store" = task.job.sink_store
        #: Names the job (as Flink's JobID): kept across failovers, new for a job
        #: restored from a snapshot (each timeline), whatever it restores.
        self.job_id = f"{job.run_id or 'job'}-t{job.timeline}"

    @property
    def now(self) -> float:
        return self.task.env.now

    def phase(self, name: str, checkpoint_id: int) -> None:
        """Mark that this subtask reached `name` for `checkpoint_id` (faults may strike)."""
        self.task.phase(name, checkpoint_id)

    def mutant(self, name: str) -> bool:
        return self.task.job.mutant(name)

    def event(self, kind: str, *detail: Any) -> None:
        self.task.job.trace.add(self.task.env.now, kind, self.task.name, *detail)


class Task:
    def __init__(self, job: "Job", attempt: "Attempt", vertex: "Vertex", subtask: int,
                 operator: Any, out_edge: str | None, out_parallelism: int) -> None:
        self.job = job
        self.attempt = attempt
        self.env: "simpy.Environment" = job.env
        self.vertex = vertex
        self.subtask = subtask
        self.name = f"{vertex.uid}[{subtask}]"
        self.operator = operator
        self.inputs: list["Channel"] = []
        self.outputs: list["Channel"] = []
        self.out_edge = out_edge
        self.out_parallelism = out_parallelism
        self.pending: list[list[Record]] = []
        self.blocked: list[bool] = []
        self.mailbox: deque[Callable[[], None]] = deque()
        self.waiter: "simpy.Event | None" = None
        self.ended_channels: set[int] = set()
        self.ended = False
        self.final_after: int | None = None
        # FLIP-147: the task finishes once a checkpoint >= final_after completed
        # (`final_done`) and every receiver processed its end of input (`unconsumed`)
        self.final_done = False
        self.unconsumed = 0
        self.upstream: list["Task"] = []  # the tasks sending on its inputs
        self.input_finished: list[bool] = []  # per input: its sender finished
        self.finished_on_restore = False  # its operator was fully finished in the snapshot
        self.done = False
        self.finishing = False
        self.is_sink = out_edge is None
        self.handler = make_handler(job.scenario.checkpoints.mode, self)
        self.key_route: dict[int, int] = {}
        self.next_rebalance = subtask
        self.slowdown = 1.0
        self.record_cost = job.scenario.timing.record_cost
        self.process: "simpy.Process | None" = None
        self.deferred: Barrier | None = None
        self.forwarded_id = 0  # the newest snapshot whose barrier or cancel marker went out
        self.last_snapshot = 0  # the newest snapshot this task took its state for
        # the newest checkpoint whose completion its operators heard (Flink's StreamTask
        # latestReportCheckpointId): an older or repeated notification is ignored
        self.notified_id = 0
        self.notify_emits: bool | None = None  # notify_checkpoint_complete(id, out)?
        self.checked = is_user_code(operator)  # user code: its output and state are checked
        # crashes timed by progress (a fault plan's ProgressCrash): records seen so far
        self.progress = job.progress_hook if self.name in job.progress_targets else None
        self.seen = 0
        self.opened = False
        self.closed = False
        self.lost = False  # lost with its worker: no close() runs
        # restored in-flight items not yet taken: they go first, before any new data (as
        # Flink requests an input gate's partitions once its recovered state is consumed)
        self.recovering = 0

    # -- wiring -------------------------------------------------------------

    def connect(self) -> None:
        self.pending = [[] for _ in self.outputs]
        self.blocked = [False] * len(self.inputs)
        self.input_finished = [False] * len(self.inputs)
        self.unconsumed = len(self.outputs)
        seen: dict[str, Task] = {}
        for ch in self.inputs:
            seen.setdefault(ch.sender, ch.sender_task)
        self.upstream = list(seen.values())

    def senders(self) -> list["Task"]:
        """The tasks sending on this task's input channels."""
        return self.upstream

    def start(self, restored: Any, restored_union: list[Any] | None) -> None:
        self.restored = restored
        self.restored_union = restored_union
        self.process = self.env.process(self.run())

    # -- the mailbox loop -----------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.succeed()

    def mail(self, action: Callable[[], None]) -> None:
        if self.attempt.alive and not self.done:
            self.mailbox.append(action)
            self.wake()

    def run(self) -> Generator[Any, Any, None]:
        attempt = self.attempt
        job = self.job
        try:
            self.initialize()
            if job.stall:  # a slow commit (a recovery commit) kept the task busy
                yield self.env.timeout(job.take_stall())
            while attempt.alive and not self.done:
                if self.mailbox:
                    self.mailbox.popleft()()
                    self.flush()
                    if job.stall:  # the committer commits synchronously: the task is busy
                        yield self.env.timeout(job.take_stall())
                    continue
                if self.backpressured():
                    yield self.idle()
                    continue
                cost = self.step()
                if job.stall:
                    cost = (cost or 0.0) + job.take_stall() / self.slowdown
                if cost is None:
                    yield self.idle()
                elif cost:
                    yield self.env.timeout(cost * self.slowdown)
        except TaskCrash as crash:
            job.stall = 0.0
            self.job.fail(self, str(crash))
        except TransactionLostError as lost:
            # the external system dropped the sink's transaction: the write fails the task,
            # as Flink's KafkaWriter fails on the producer's error (the job fails over)
            job.stall = 0.0
            self.job.fail(self, str(lost))
        except StoreError:
            raise  # the external system failed, not the job: no verdict on this run
        except Exception as exc:  # user code raised: report it as such
            lost = _lost_transaction(exc)
            if lost is not None:  # ... unless it wraps a lost transaction (KafkaWriter
                job.stall = 0.0   # rethrows the producer's error as an IOException)
                self.job.fail(self, str(lost))
            else:
                self.job.operator_error(self, exc)
        self.close_operator()

    def close_operator(self) -> None:
        """The task terminates (finished, failed over, cancelled): Flink calls the
        operator's `close()` on every path, once; a subtask lost with its worker
        (its process died) runs nothing more."""
        if self.closed or self.lost or not self.opened:
            return
        self.closed = True
        close = getattr(self.operator, "close", None)
        if close is None:
            return
        try:
            close()
        except (TaskCrash, TransactionLostError):
            pass  # a crash during close changes nothing: the attempt is over
        except StoreError:
            raise  # the external system failed, not the job
        except Exception as exc:  # user code raised in close(): report it as such
            if self.job.error is None and self.job.running:
                self.job.operator_error(self, exc)

    def idle(self) -> "simpy.Event":
        self.waiter = self.env.event()
        return self.waiter

    def backpressured(self) -> bool:
        for ch in self.outputs:
            if ch.buffers >= ch.capacity:
                ch.wanted_by = self
                return True
        return False

    def initialize(self) -> None:
        snapshot = self.job.restoring
        if snapshot is not None:
            self.job.trace.add(self.env.now, "restore", self.name, snapshot.id, snapshot.kind)
        self.phase("restore", snapshot.id if snapshot is not None else 0)
        if self.finished_on_restore:
            return  # FLIP-147: a fully finished operator is neither opened nor run again
        self.operator.open(OperatorContext(self, self.restored_union), self.restored)
        self.opened = True

    def step(self) -> float | None:
        """Take and handle one input item; its cost, or None when nothing is ready."""
        channel = self.pick_recovered() if self.recovering else self.pick()
        if channel is None:
            if self.deferred is not None:
                self.take_deferred()
            return None
        item = channel.take()
        if self.recovering and channel.recovered:
            channel.recovered -= 1
            self.recovering -= 1
        if item.__class__ is list:
            if self.progress is not None:
                self.seen += len(item)
                self.progress(self, self.seen)
            handler = self.handler
            if handler.capturing:
                handler.captured(channel.index, item)
            self.job.trace.events.append((self.env.now, "process", self.name, (item,)))
            out: list[Record] = []
            self.operator.process(item, out)
            if out:
                if self.checked:
                    check_output(out, "process")
                self.route(out)
            self.flush()
            if self.deferred is not None:
                self.take_deferred()
            return len(item) * self.record_cost
        if item.__class__ is Barrier:
            self.handler.on_barrier(channel.index, item)
        elif item.__class__ is CancelMarker:
            self.handler.on_cancel(channel.index, item)
        elif item.__class__ is EndOfPartition:
            self.input_finished[channel.index] = True
            self.job.trace.add(self.env.now, "partition_finished", self.name, channel.index)
            self.handler.on_partition_end(channel.index)
            self.maybe_finish()  # the last one ends the input (Flink's END_OF_INPUT)
        else:
            if self.handler.capturing:
                self.handler.captured(channel.index, item)  # recorded for the oracle, never replayed
            self.end_of_channel(channel.index)
        self.flush()
        return 0.0

    def pick(self) -> "Channel | None":
        now = self.env.now
        ready = None
        count = 0
        blocked = self.blocked
        for i, ch in enumerate(self.inputs):
            items = ch.items
            if items and items[0][0] <= now and not blocked[i]:
                if ready is None:
                    ready = ch
                else:
                    if count == 1:
                        ready = [ready]
                    ready.append(ch)
                count += 1
        if count <= 1:
            return ready
        return ready[self.job.tie_break(count)]

    def pick_recovered(self) -> "Channel | None":
        """A ready input whose head is restored channel state (those go first)."""
        ready = [ch for ch in self.inputs if ch.recovered and ch.items]
        if len(ready) <= 1:
            return ready[0] if ready else None
        return ready[self.job.tie_break(len(ready))]

    # -- output ---------------------------------------------------------------

    def route(self, out: list[Record]) -> None:
        pending = self.pending
        edge = self.out_edge
        if edge == "forward":
            pending[0].extend(out)
        elif edge == "hash":
            route = self.key_route
            p = self.out_parallelism
            maxp = self.job.topology.max_parallelism
            for r in out:
                i = route.get(r.key)
                if i is None:
                    i = route[r.key] = self._key_target(r.key, p, maxp)
                pending[i].append(r)
        elif edge == "rebalance":
            n = len(pending)
            i = self.next_rebalance
            for r in out:
                i = (i + 1) % n
                pending[i].append(r)
            self.next_rebalance = i
        elif edge == "broadcast":
            for buf in pending:
                buf.extend(out)

    def _key_target(self, key: Any, p: int, maxp: int) -> int:
        job = self.job
        if (job.timeline or self.attempt.number > 1) and job.mutant("unstable-key-hash"):
            # an identity hashCode: another value in every restarted or restored process
            key = (key, job.timeline, self.attempt.number)
        return subtask_for_key(key, p, maxp)

    def flush(self) -> None:
        pending = self.pending
        for i, buf in enumerate(pending):
            if buf:
                self.outputs[i].send(buf)
                pending[i] = []

    def emit_barrier(self, barrier: Barrier, overtake: bool) -> dict[str, list[Any]]:
        """Send `barrier` on every output; overtaken buffers come back as channel state."""
        self.flush()
        self.forwarded_id = max(self.forwarded_id, barrier.id)
        if self.outputs:  # one event for all outputs (a sink has none)
            self.job.trace.add(self.env.now, "barrier_sent", self.name, barrier.id, barrier.kind)
        state: dict[str, list[Any]] = {}
        for ch in self.outputs:
            if overtake and not ch.pointwise:
                overtaken = ch.overtake(barrier)
                if overtaken and self.job.mutant("unaligned-misses-inflight"):
                    overtaken = overtaken[:-1]
                state[f"out:{ch.name}"] = overtaken
            else:
                ch.send(barrier)
        return state

    def forward_cancel(self, checkpoint_id: int) -> None:
        """Tell every downstream task that snapshot `checkpoint_id` will not come from
        here, so that none of them waits for its barrier (FLINK's CancelCheckpointMarker)."""
        if checkpoint_id <= self.forwarded_id:
            return
        self.forwarded_id = checkpoint_id
        self.flush()
        if self.outputs:
            self.job.trace.add(self.env.now, "cancel_sent", self.name, checkpoint_id)
            marker = CancelMarker(checkpoint_id)
            for ch in self.outputs:
                ch.send(marker)

    def unblock_all(self) -> None:
        blocked = self.blocked
        for i in range(len(blocked)):
            blocked[i] = False
        if self.inputs:
            self.wake()

    # -- end of input -----------------------------------------------------------

    def end_of_channel(self, index: int) -> None:
        # (defensive: restored channel state replays buffers only, never an end of input)
        if index in self.ended_channels:
            return
        self.ended_channels.add(index)
        # every record before it is processed: the sender may finish (FLINK-21086)
        ch = self.inputs[index]
        self.job.later(ch.latency, ch.sender_task.data_consumed, self.attempt)
        if len(self.ended_channels) == len(self.inputs):
            self.end_input()

    def data_consumed(self, attempt: Any) -> None:
        """A receiver processed this task's end of input (all its records)."""
        if attempt is not self.attempt or not attempt.alive or self.done:
            return
        self.unconsumed -= 1
        self.maybe_finish()

    def end_input(self) -> None:
        if self.ended:
            return
        self.phase("end_of_input", 0)
        out: list[Record] = []
        if not self.finished_on_restore:
            self.operator.end_input(out)
            finish = getattr(self.operator, "finish", None)
            if finish is not None:  # Flink 2.x: finish() after the end of input; flushes here
                finish(out)
        if out:
            if self.checked:
                check_output(out, "end_input")
            self.route(out)
        self.flush()
        for ch in self.outputs:
            ch.send(END_MARKER)
        self.ended = True
        self.job.trace.add(self.env.now, "end_of_input", self.name)
        if self.is_sink:
            self.job.sink_ended(self)

    # -- snapshots (checkpoints and savepoints alike) ------------------------------

    def snapshot(self, barrier: Barrier) -> None:
        """Aligned and at-least-once snapshot: state now, acknowledge after upload."""
        if self.job.mutant("snapshot-after-forward") and self.inputs:
            self.emit_barrier(barrier, False)
            self.deferred = barrier  # taken after the next buffer: epochs mix
            return
        state, channel_state = self.take_state(barrier, overtake=False)
        self.acknowledge(barrier, state, channel_state)

    def trigger_direct(self, barrier: Barrier) -> None:
        """Mail from the coordinator: every task upstream of this one finished, so no
        barrier comes; it starts snapshot `barrier` itself (FLIP-147, FLINK-21085)."""
        handler = self.handler
        if barrier.id <= handler.done_id or barrier.id <= self.forwarded_id:
            return
        if handler.take_aborted(barrier.id):
            return  # notified aborted before its trigger came: a cancel marker went out
        current = handler.current
        if current is not None:
            if current.id >= barrier.id:
                return
            self.job.trace.add(self.env.now, "alignment_cancelled", self.name, current.id,
                               barrier.id)
            handler.cancel()
        handler.done_id = barrier.id
        self.job.trace.add(self.env.now, "triggered", self.name, barrier.id, barrier.kind)
        self.snapshot(barrier)

    def take_deferred(self) -> None:
        barrier = self.deferred
        self.deferred = None
        assert barrier is not None
        state = self._operator_state(barrier.id)
        if self.ended and self.final_after is None:
            self.final_after = barrier.id
        self.last_snapshot = max(self.last_snapshot, barrier.id)
        self.job.trace.add(self.env.now, "snapshot", self.name, barrier.id, barrier.kind)
        self.acknowledge(barrier, state, {})

    def take_state(self, barrier: Barrier, *, overtake: bool) -> tuple[Any, dict[str, list[Any]]]:
        self.phase("before_snapshot", barrier.id)
        channel_state = self.emit_barrier(barrier, overtake)
        state = self._operator_state(barrier.id)
        if self.ended and self.final_after is None:
            self.final_after = barrier.id
        self.last_snapshot = max(self.last_snapshot, barrier.id)
        self.job.trace.add(self.env.now, "snapshot", self.name, barrier.id, barrier.kind)
        self.phase("after_sync_snapshot", barrier.id)
        return state, channel_state

    def _operator_state(self, checkpoint_id: int) -> Any:
        if self.finished_on_restore:  # never opened: it holds nothing
            return _empty_state(self.operator.state_kind)
        state = self.operator.snapshot_state(checkpoint_id)
        if self.checked:
            check_state(self.operator.state_kind, state)
        return state

    def acknowledge(self, barrier: Barrier, state: Any, channel_state: dict[str, list[Any]]) -> None:
        self.job.coordinator.acknowledge_later(self, barrier, state, channel_state)

    def notify_complete(self, checkpoint_id: int, stop: bool) -> None:
        self.phase("notify_complete", checkpoint_id)
        self.job.trace.add(self.env.now, "notified", self.name, checkpoint_id)
        if checkpoint_id <= self.notified_id and not stop:
            return  # as Flink's StreamTask: not newer than one it already reported
        self.notified_id = max(self.notified_id, checkpoint_id)
        if not self.finished_on_restore:  # deployed as finished: not run (FLINK-21089)
            if self.notify_emits is None:
                self.notify_emits = accepts(self.operator.notify_checkpoint_complete, 2)
            if self.notify_emits:
                # Flink's operators may emit from notifyCheckpointComplete: the records go
                # downstream in the next checkpoint's epoch
                out: list[Record] = []
                self.operator.notify_checkpoint_complete(checkpoint_id, out)
                if out:
                    if self.checked:
                        check_output(out, "notify_checkpoint_complete")
                    if self.ended:
                        raise ProtocolError(
                            f"notify_checkpoint_complete({checkpoint_id}) emitted {len(out)} "
                            "record(s) after the end of input, when no output may follow (Flink: "
                            "none after finish()); emit what is still held in finish(out)")
                    self.route(out)
                    self.flush()
            else:
                self.operator.notify_checkpoint_complete(checkpoint_id)
        if stop:
            # the stop-with-savepoint's side effects are committed here; the job is
            # not finished yet
            self.phase("stop_savepoint", checkpoint_id)
            if self.is_sink:
                if self.job.stall:
                    self.mail(self.finish)  # a slow commit is in flight: finish once it returns
                else:
                    self.finish()
                return
        final = self.final_after
        if final is not None and (
                checkpoint_id >= final if not self.job.mutant("final-notification-exact")
                else checkpoint_id == final):
            self.final_done = True
            self.maybe_finish()

    def maybe_finish(self) -> None:
        """FLIP-147: finish once the final checkpoint completed, every receiver
        processed this task's records (FLINK-21086) and every sender finished.

        As in Flink, a task's input ends (`END_OF_INPUT`, then `afterInvoke`) only when
        `EndOfPartition` arrived on all its input channels, which a sender sends when it
        finished: no task finishes before the tasks upstream of it.
        """
        if (self.final_done and not self.done and self.unconsumed <= 0
                and all(self.input_finished)):
            if self.job.stall:
                # a slow commit is still in flight: the task finishes once it returns
                self.mail(self.finish)
            else:
                self.finish()

    def finish(self) -> None:
        """Its final checkpoint completed (for a sink: all its output is committed):
        close the operator, end its partitions and leave the job.

        As with FLIP-147, later snapshots count a finished task as acknowledged,
        finished, with no state.
        """
        if self.done or self.finishing:
            return
        self.finishing = True
        mailbox = self.mailbox
        while mailbox:  # as Flink's StreamTask drains its mailbox before it closes
            mailbox.popleft()()
        self.handler.finishing()
        self.close_operator()
        self.done = True
        self.flush()
        for ch in self.outputs:
            ch.send(END_OF_PARTITION)
        self.job.trace.add(self.env.now, "task_finished", self.name)
        self.job.coordinator.task_finished(self, _empty_state(self.operator.state_kind))
        self.job.task_done(self)

    def notify_aborted(self, checkpoint_id: int, latest_completed: int = 0) -> None:
        """Snapshot `checkpoint_id` was aborted.  The message carries the id of the latest
        completed checkpoint, which the task takes as a completion first (Flink's
        notifyCheckpointAbortAsync, FLINK-21080): a task whose completion notification
        was lost still commits, and still finishes on its final checkpoint."""
        self.job.trace.add(self.env.now, "notified_aborted", self.name, checkpoint_id)
        if latest_completed > self.notified_id and not self.done:
            self.notify_complete(latest_completed, False)
            if self.done or self.finishing:
                return
        self.handler.cancel(checkpoint_id)
        if not self.finished_on_restore:
            self.operator.notify_checkpoint_aborted(checkpoint_id)

    def phase(self, name: str, checkpoint_id: int) -> None:
        self.job.phase(self, name, checkpoint_id)


def _empty_state(kind: str | None) -> Any:
    """What a finished subtask holds (Flink's FinishedOperatorSubtaskState)."""
    return {"list": [], "keyed": {}, "splits": {}}.get(kind) if kind else None


#: simulated ms after which an idle source polls its reader again, when neither new
#: data nor an event is due (a reader may wait on something the task cannot see); it
#: doubles with every empty poll in a row, so a long wait costs few events
POLL_BACKSTOP = 10.0


class _ReaderContext:
    """A reader's view of its runtime (Flink's `SourceReaderContext`)."""

    __slots__ = ("task", "uid", "subtask", "parallelism", "attempt", "client")

    def __init__(self, task: "SourceTask") -> None:
        self.task = task
        self.uid = task.vertex.uid
        self.subtask = task.subtask
        self.parallelism = task.vertex.parallelism
        job = task.job
        self.attempt = (f"t{job.timeline}a{task.attempt.number}" if job.timeline
                        else f"a{task.attempt.number}")
        self.client = task.client

    @property
    def now(self) -> float:
        return self.task.env.now

    def send_split_request(self) -> None:
        task = self.task
        sources = task.job.sources
        sources.from_reader(task, lambda: sources.split_request(task))

    def event(self, kind: str, *detail: Any) -> None:
        self.task.job.trace.add(self.task.env.now, kind, self.task.name, *detail)


class _ReaderOperator:
    """What the task runs for a source subtask: its reader behind the `SourceReader`
    protocol, with the split state checked (a broken protocol is named, not judged)."""

    state_kind: ClassVar[str | None] = "splits"

    def __init__(self, task: "SourceTask") -> None:
        self.task = task

    def open(self, ctx: OperatorContext, restored: Any) -> None:
        pass  # the task opens the reader itself

    def process(self, records: list[Record], out: list[Record]) -> None:
        out.extend(records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> dict[int, Any]:
        task = self.task
        splits = check_splits(task.reader.snapshot_state(checkpoint_id),
                              f"source {task.job.scenario.source!r} reader snapshot_state",
                              task.job.sources.log.partitions)
        state = {s.partition: s for s in splits}
        for s in task.parked:
            state.setdefault(s.partition, s)
        task.last_state = state
        return state

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.task.reader.notify_checkpoint_complete(checkpoint_id)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        aborted = getattr(self.task.reader, "notify_checkpoint_aborted", None)
        if aborted is not None:
            aborted(checkpoint_id)

    def close(self) -> None:
        self.task.close_reader()


class SourceTask(Task):
    """Runs a source reader; barriers are injected here by the coordinator."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operator = _ReaderOperator(self)
        self.stopped: int | bool = False
        self.last_barrier = 0  # the newest barrier this source emitted
        self.reader: Any = None
        self.parked: list[Split] = []  # splits that arrived after the input was drained
        self.last_state: dict[int, Any] = {}
        self.wake_at: float | None = None
        self.empty_polls = 0
        self.closed = False
        # restored from a snapshot taken after its end of input: it ends its input at once
        self.finished_before = False

    def initialize(self) -> None:
        job = self.job
        snapshot = job.restoring
        if snapshot is not None:
            job.trace.add(self.env.now, "restore", self.name, snapshot.id, snapshot.kind)
        self.phase("restore", snapshot.id if snapshot is not None else 0)
        sources = job.sources
        self.client = LogClient(sources.log, self._now)
        spec = sources.spec
        reader = spec.factory()
        if not conforms(reader, SourceReader):
            missing = [m for m in ("open", "add_splits", "start", "poll_next",
                                   "notify_no_more_splits", "snapshot_state",
                                   "notify_checkpoint_complete", "close")
                       if not callable(getattr(reader, m, None))]
            raise SourceProtocolError(
                f"source {spec.name!r}: factory() returned {type(reader).__name__}, which is "
                f"not a SourceReader (missing {', '.join(missing)}); return a new reader "
                "object with those methods (onceflow.model.sources.SourceReader)")
        self.reader = reader
        reader.open(_ReaderContext(self))
        restored = self.restored or {}
        if restored:
            reader.add_splits([restored[p] for p in sorted(restored)])
        sources.from_reader(self, lambda: sources.register_reader(self))
        reader.start()
        # FLIP-147: a source that had finished before the snapshot stays finished
        self.finished_before = snapshot is not None and not job.ignore_finished and (
            snapshot.input_ended or self.finished_on_restore)

    def _now(self) -> float:
        return self.env.now

    def close_reader(self) -> None:
        if not self.closed and self.reader is not None:
            self.closed = True
            self.reader.close()

    def step(self) -> float | None:
        if self.ended or self.stopped:
            return None
        if self.finished_before:
            self.end_input()
            return 0.0
        out: list[Record] = []
        status = self.reader.poll_next(out, self.job.scenario.timing.buffer_records)
        if status not in INPUT_STATUSES:
            raise SourceProtocolError(
                f"source {self.job.scenario.source!r}: poll_next returned {status!r}; return "
                "MORE_AVAILABLE, NOTHING_AVAILABLE or END_OF_INPUT "
                "(onceflow.model.sources)")
        cost = 0.0
        if out:
            self.empty_polls = 0
            if self.progress is not None:
                self.seen += len(out)
                self.progress(self, self.seen)
            self.job.trace.events.append((self.env.now, "read", self.name, (out,)))
            self.route(out)
            self.flush()
            cost = len(out) * self.record_cost
        if status == END_OF_INPUT:
            self.end_input()
            return cost
        if not out:
            self._wake_when_due()
            return None
        return cost

    def _wake_when_due(self) -> None:
        """Poll again when the next record of an assigned split is produced (as a
        consumer's poll returns when data arrives), or after the backstop."""
        now = self.env.now
        due = self.client.next_arrival()
        if due is None:
            at = now + POLL_BACKSTOP * 2.0 ** min(self.empty_polls, 60)
            self.empty_polls += 1
        else:
            at = due
        if self.wake_at is not None and now < self.wake_at <= at:
            return
        self.wake_at = at
        self.env.timeout(at - now).callbacks.append(self._due)

    def _due(self, _event: Any) -> None:
        if self.wake_at is not None and self.env.now >= self.wake_at:
            self.wake_at = None
        self.wake()

    # -- events from the enumerator ------------------------------------------------------

    def receive_splits(self, splits: list[Split]) -> None:
        self.empty_polls = 0
        if self.ended:
            self.parked.extend(splits)  # drained: kept unread in its state
            if self.job.drained_at is not None:
                self.job.note_drain({s.partition: s.offset for s in splits})
            return
        self.reader.add_splits(list(splits))

    def receive_no_more_splits(self) -> None:
        if not self.ended:
            self.reader.notify_no_more_splits()

    # -- snapshots ---------------------------------------------------------------------

    def trigger(self, barrier: Barrier, stop: bool = False, drain: bool = False) -> None:
        """Mail from the coordinator: start snapshot `barrier` at this source."""
        if barrier.id <= self.last_barrier:
            # triggers can arrive out of order; a barrier behind a newer one would cut
            # the stream inconsistently, so the source declines it (as Flink's subtask
            # checkpoint coordinator does with an out-of-order checkpoint)
            self.job.coordinator.decline(self, barrier.id, "out of order: a newer barrier "
                                                           "was already emitted", "subsumed")
            return
        self.last_barrier = barrier.id
        if self.stopped:
            if barrier.id < self.stopped:
                return
            # a newer snapshot: the stop-with-savepoint failed (its abort was lost)
            self._stop_failed()
        drained = stop and drain and not self.ended
        if drained:
            self.end_input()
        if self.ended:
            self.job.coordinator.source_ended(barrier.id, self.name)
        self.snapshot(barrier)
        if drained:
            self.job.note_drain({p: s.offset for p, s in self.last_state.items()})
        if stop:
            self.stopped = barrier.id

    def notify_aborted(self, checkpoint_id: int, latest_completed: int = 0) -> None:
        if latest_completed > self.notified_id and not self.done:
            self.notify_complete(latest_completed, False)
            if self.done or self.finishing:
                return
        if self.stopped == checkpoint_id:
            self._stop_failed()
        super().notify_aborted(checkpoint_id)

    def _stop_failed(self) -> None:
        """The stop-with-savepoint this source took part in failed: as Flink's StreamTask
        ("Stop-with-savepoint failed."), the task fails, and the job fails over to its
        latest checkpoint and reads the whole input again (also after --drain)."""
        if self.job.mutant("drained-stop-resumes"):
            self.stopped = False  # the old model: go on, with the input cut short by a drain
            self.wake()
            return
        if self.job.mutant("failed-stop-stays-stopped"):
            return
        raise TaskCrash(f"stop-with-savepoint {self.stopped} failed")
