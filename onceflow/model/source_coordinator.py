"""The source coordinator: runs the split enumerator beside the checkpoint coordinator.

As Flink's `SourceCoordinator` (an operator coordinator):
- readers register at the start of every attempt and ask for splits; the
  enumerator answers with `assign_split` and `signal_no_more_splits`, sent to
  the reader as events over an ordered channel;
- a snapshot first takes the enumerator's state (the splits it holds), then,
  once that coordinator checkpoint is done, injects the barriers into the
  sources; events sent in between are held (the valve) and follow the barrier,
  so every split is in exactly one place in the snapshot: with the enumerator,
  with a reader, or finished;
- every assignment is tracked by the checkpoint it followed; on a failover the
  splits assigned to a failed reader after the checkpoint being restored go
  back to the enumerator (`add_splits_back`), and a global failover (the
  coordinator itself was lost) restores the enumerator from the checkpoint.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from onceflow.model.log import LogClient, produced_log
from onceflow.model.sources import DefaultEnumerator, Split, SplitEnumerator, conforms
from onceflow.registry import SOURCES

if TYPE_CHECKING:
    from onceflow.model.job import Job
    from onceflow.model.snapshot import Snapshot
    from onceflow.model.task import Task
    from onceflow.scenario import Vertex

__all__ = ["SourceCoordinator", "SourceProtocolError", "check_splits"]


def _job_start() -> float:
    return 0.0


class SourceProtocolError(Exception):
    """A source's reader or enumerator broke the source protocol (says how to fix it)."""


def check_splits(value: Any, who: str, partitions: int) -> list[Split]:
    """`value` as a list of Splits, or a SourceProtocolError saying what is wrong."""
    if not isinstance(value, (list, tuple)):
        raise SourceProtocolError(f"{who} returned {type(value).__name__}; return a list of "
                                  "onceflow.model.sources.Split")
    seen: set[int] = set()
    for item in value:
        if not isinstance(item, Split):
            raise SourceProtocolError(f"{who} returned a list holding {type(item).__name__}; "
                                      "return a list of onceflow.model.sources.Split")
        if not 0 <= item.partition < partitions or item.offset < 0:
            raise SourceProtocolError(f"{who} returned {item!r}: the log has partitions "
                                      f"0..{partitions - 1} and offsets start at 0")
        if item.partition in seen:
            raise SourceProtocolError(f"{who} returned partition {item.partition} twice; a "
                                      "split is held in one place at a time")
        seen.add(item.partition)
    return list(value)


class SourceCoordinator:
    """The coordinator side of the job's source vertex (one per job, across attempts)."""

    def __init__(self, job: "Job", vertex: "Vertex", initial: "Snapshot | None") -> None:
        self.job = job
        self.env = job.env
        self.uid = vertex.uid
        self.parallelism = vertex.parallelism
        self.spec = SOURCES[job.scenario.source]
        self.log = produced_log(job.scenario.workload)
        # the enumerator's client answers as of the job's start (t=0): a fresh enumerator
        # resolves the declared start position against the log as it was then, also when
        # a global failover with no checkpoint re-creates it (Flink's would resolve
        # `latest` anew at that restart and skip what was produced meanwhile)
        self.client = LogClient(self.log, _job_start)
        self.start_position = job.scenario.start_position
        self.readers: dict[int, "Task"] = {}
        #: assignments since the last checkpoint, and per checkpoint after it: (subtask, split)
        self.uncheckpointed: list[tuple[int, Split]] = []
        self.by_checkpoint: dict[int, list[tuple[int, Split]]] = {}
        self.closing: set[int] = set()  # snapshots between enumerator state and injection
        #: events held by the valve: (the newest snapshot closing when sent, subtask, event)
        self.held: list[tuple[int, int, Callable[["Task"], None]]] = []
        self.to_reader: dict[int, float] = {}  # ordered channels: last delivery time
        self.to_coordinator: dict[int, float] = {}
        #: what is in flight on each ordered channel, oldest first
        self._in_flight: dict[tuple[bool, int], deque[Callable[[], None]]] = {}
        self.enumerator: Any = None
        self.latest_state: list[Split] | None = None  # the enumerator's newest snapshot
        #: events a failed attempt's readers never took (mutant stale-events-to-new-reader)
        self.stale: dict[int, list[Callable[["Task"], None]]] = {}
        restored = None
        if initial is not None:
            restored = list(initial.coordinator_state.get(self.uid) or [])
            if job.mutant("split-lost-on-rescale") and \
                    initial.parallelism.get(self.uid) != vertex.parallelism:
                last = job.scenario.workload.splits - 1
                restored = [s for s in restored if s.partition != last]
            if job.finished_flag_lost(initial):
                restored = None  # FLINK-21088: a fully finished source keeps no state
        self.restored = restored

    def _now(self) -> float:
        return self.env.now

    # -- the enumerator's context (Flink's SplitEnumeratorContext) ------------------------

    def registered_readers(self) -> list[int]:
        return sorted(self.readers)

    def assign_split(self, split: Split, subtask: int) -> None:
        check_splits([split], "assign_split", self.log.partitions)
        if subtask not in self.readers:
            raise SourceProtocolError(f"assign_split to reader {subtask!r}, which is not "
                                      f"registered; assign only to ctx.registered_readers() "
                                      f"({self.registered_readers()})")
        self.uncheckpointed.append((subtask, split))
        self.job.trace.add(self.env.now, "split_assigned", f"{self.uid}[{subtask}]",
                           split.partition, split.offset)
        self._send(subtask, lambda task: task.receive_splits([split]))

    def signal_no_more_splits(self, subtask: int) -> None:
        if subtask not in self.readers:
            raise SourceProtocolError(f"signal_no_more_splits to reader {subtask!r}, which is "
                                      "not registered")
        self._send(subtask, lambda task: task.receive_no_more_splits())

    def stopping_offsets(self) -> dict[int, int]:
        return {p: len(log) for p, log in enumerate(self.log.logs)}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Create (or restore) the enumerator; called when the job deploys its first attempt."""
        self._create(self.restored)

    def _create(self, restored: list[Split] | None) -> None:
        factory = self.spec.enumerator or DefaultEnumerator
        enumerator = factory(self, restored)
        if not conforms(enumerator, SplitEnumerator):
            missing = [m for m in ("start", "add_reader", "handle_split_request",
                                   "add_splits_back", "snapshot_state", "close")
                       if not callable(getattr(enumerator, m, None))]
            raise SourceProtocolError(
                f"source {self.spec.name!r}: its enumerator factory returned "
                f"{type(enumerator).__name__}, which is not a SplitEnumerator (missing "
                f"{', '.join(missing)}); return an object with those methods, or register "
                "the source without enumerator= to use the default one")
        self.enumerator = enumerator
        enumerator.start()

    def close(self) -> None:
        if self.enumerator is not None:
            self.enumerator.close()

    # -- reader to coordinator ------------------------------------------------------------------

    def from_reader(self, task: "Task", action: Callable[[], None]) -> None:
        """Deliver a reader's event (registration, split request) in order, after an RPC."""
        self._ordered(self.to_coordinator, task.subtask, lambda: self._guarded(task, action))

    def _guarded(self, task: "Task", action: Callable[[], None]) -> None:
        attempt = self.job.attempt
        if attempt is not task.attempt or not attempt.alive or not self.job.running:
            return  # from an attempt that has ended
        try:
            action()
        except Exception as exc:  # the enumerator (user code) raised
            self.job.component_error(f"source {self.spec.name!r} enumerator", exc)

    def register_reader(self, task: "Task") -> None:
        self.readers[task.subtask] = task
        self.job.trace.add(self.env.now, "reader_registered", task.name)
        for action in self.stale.pop(task.subtask, ()):
            # FLINK-18071: an event addressed to the subtask, not to its attempt, reaches
            # the attempt that replaced the failed one
            self._ordered(self.to_reader, task.subtask,
                          lambda action=action: task.mail(lambda: action(task)))
        self.enumerator.add_reader(task.subtask)

    def split_request(self, task: "Task") -> None:
        if self.readers.get(task.subtask) is task:
            self.enumerator.handle_split_request(task.subtask)

    # -- coordinator to reader -----------------------------------------------------------------

    def _send(self, subtask: int, action: Callable[["Task"], None]) -> None:
        if self.closing and not self.job.mutant("enumerator-event-overtakes-barrier"):
            # the valve: the event follows the barrier of every snapshot whose enumerator
            # state was taken before it (and precedes those taken after it)
            self.held.append((max(self.closing), subtask, action))
            return
        self._deliver(subtask, action)

    def _release(self) -> None:
        """Send the held events whose snapshots have all injected their barriers."""
        if not self.held:
            return
        first = min(self.closing) if self.closing else None
        keep = []
        for tag, subtask, action in self.held:
            if first is None or tag < first:
                self._deliver(subtask, action)
            else:
                keep.append((tag, subtask, action))
        self.held = keep

    def _deliver(self, subtask: int, action: Callable[["Task"], None]) -> None:
        task = self.readers.get(subtask)
        if task is None:
            return  # its reader failed: the assignment comes back through the tracker
        if self.job.mutant("enumerator-event-overtakes-barrier"):
            # without the valve an event takes its own RPC and may pass the trigger
            self.job.later(self.job.rpc_delay() * 0.5, task.mail, lambda: action(task))
            return
        self._ordered(self.to_reader, subtask, lambda: self._arrive(task, action))

    def _arrive(self, task: "Task", action: Callable[["Task"], None]) -> None:
        if not task.attempt.alive and self.job.mutant("stale-events-to-new-reader"):
            self.stale.setdefault(task.subtask, []).append(action)
            return
        task.mail(lambda: action(task))

    def to_source(self, task: "Task", action: Callable[[], None]) -> None:
        """Send a mail (a checkpoint trigger) to source `task` on its ordered channel."""
        self._ordered(self.to_reader, task.subtask, lambda: task.mail(action))

    def _ordered(self, lanes: dict[int, float], subtask: int, fn: Callable[[], None]) -> None:
        """Send `fn` on an ordered channel (an RPC connection): it arrives after what was
        sent on it before.  Each arrival takes the oldest message in flight, so two
        messages due at the same moment (up to float rounding) keep their order."""
        now = self.env.now
        at = max(now + self.job.rpc_delay(), lanes.get(subtask, 0.0))
        lanes[subtask] = at
        queue = self._in_flight.setdefault((lanes is self.to_reader, subtask), deque())
        queue.append(fn)
        self.job.later(at - now, lambda: queue.popleft()())

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, checkpoint_id: int, inject: Callable[[], None]) -> list[Split]:
        """Snapshot the enumerator, then inject the barriers once that is done (after one
        RPC latency: the coordinator checkpoint is asynchronous) and open the valve."""
        state = check_splits(self.enumerator.snapshot_state(checkpoint_id),
                             f"source {self.spec.name!r} enumerator snapshot_state",
                             self.log.partitions)
        self.by_checkpoint[checkpoint_id] = self.uncheckpointed
        self.uncheckpointed = []
        self.closing.add(checkpoint_id)
        self.latest_state = list(state)
        attempt = self.job.attempt
        self.job.later(self.job.scenario.timing.rpc_latency, self._inject, checkpoint_id,
                       attempt, inject)
        return state

    def _inject(self, checkpoint_id: int, attempt: Any, inject: Callable[[], None]) -> None:
        if checkpoint_id not in self.closing or attempt is not self.job.attempt:
            return  # a failover reset the valve
        inject()
        self.closing.discard(checkpoint_id)
        self._release()

    def checkpoint_complete(self, checkpoint_id: int) -> None:
        """Assignments up to `checkpoint_id` are in a completed checkpoint: stop tracking."""
        if not self.job.mutant("splits-back-include-checkpointed"):
            for cid in [c for c in self.by_checkpoint if c <= checkpoint_id]:
                del self.by_checkpoint[cid]
        notify = getattr(self.enumerator, "notify_checkpoint_complete", None)
        if notify is not None:
            notify(checkpoint_id)

    def checkpoint_aborted(self, checkpoint_id: int) -> None:
        """An aborted snapshot's assignments belong to the next one (Flink keeps them
        until a later checkpoint completes)."""
        self.closing.discard(checkpoint_id)
        self._release()

    # -- failover ------------------------------------------------------------------------------

    def on_failover(self) -> None:
        """The attempt failed: its readers are gone, events in flight are lost."""
        if self.job.mutant("stale-events-to-new-reader"):
            for _tag, subtask, action in self.held:
                self.stale.setdefault(subtask, []).append(action)
        self.readers.clear()
        self.closing.clear()
        self.held = []

    def reset_subtasks(self, snapshot: "Snapshot | None") -> None:
        """A (regional) failover restores `snapshot`: splits assigned after it go back to the
        enumerator, reader by reader (Flink's subtaskReset -> addSplitsBack)."""
        restored = snapshot.id if snapshot is not None else 0
        back: dict[int, list[Split]] = {}
        kept: dict[int, list[tuple[int, Split]]] = {}
        for cid, items in sorted(self.by_checkpoint.items()):
            if cid > restored or self.job.mutant("splits-back-include-checkpointed"):
                for subtask, split in items:
                    back.setdefault(subtask, []).append(split)
            else:
                kept[cid] = items
        for subtask, split in self.uncheckpointed:
            back.setdefault(subtask, []).append(split)
        self.by_checkpoint = kept
        self.uncheckpointed = []
        if self.job.mutant("no-splits-back"):
            return
        if self.job.mutant("splits-back-only-failed-reader"):
            # FLINK-20290: only the subtask that failed is reset, not the others the
            # failover restarted with it: their splits assigned after the checkpoint vanish
            back = {s: v for s, v in back.items() if s in self.job.failed_readers}
        for subtask in sorted(back):
            self.job.trace.add(self.env.now, "splits_back", f"{self.uid}[{subtask}]",
                               tuple(s.partition for s in back[subtask]))
            self.enumerator.add_splits_back(back[subtask], subtask)

    def reset_to_checkpoint(self, snapshot: "Snapshot | None") -> None:
        """A global failover: the enumerator restarts from the snapshot's state."""
        if snapshot is None and self.job.mutant("enumerator-not-reset-without-checkpoint"):
            # FLINK-20222: with no completed checkpoint the coordinator gets no reset; the
            # enumerator goes on as it was, and the splits it had assigned are gone
            self.by_checkpoint = {}
            self.uncheckpointed = []
            return
        self.close()
        self.by_checkpoint = {}
        self.uncheckpointed = []
        if self.job.mutant("enumerator-restores-latest-snapshot") and \
                self.latest_state is not None:
            # FLINK-18071, FLINK-21996: the coordinator goes back to the newest state it
            # took (of a checkpoint that may never complete), the tasks to `snapshot`
            self._create(list(self.latest_state))
            return
        self._create(None if snapshot is None else
                     list(snapshot.coordinator_state.get(self.uid) or []))
