"""Barrier handling, one variant per barrier mode: aligned, unaligned, at-least-once.

Each handler decides, as barriers arrive on a task's input channels, when the
task snapshots and which channels are blocked meanwhile.  The snapshot
itself is always `Task.snapshot` (checkpoints and savepoints alike).

- aligned: a channel that delivered barrier n is blocked until n has arrived
  on every input; then the task snapshots and unblocks (buffered input first).
- unaligned (FLIP-76): the first barrier n triggers the snapshot at once; the
  barrier overtakes the task's output buffers, which become channel state,
  and records taken from inputs before their barrier n arrives become channel
  state too.  Pointwise (forward, broadcast) inputs still align.  With an
  aligned-checkpoint timeout (`CheckpointConfig.aligned_timeout`) a checkpoint
  starts aligned: a task aligns as in aligned mode until `timeout` ms after the
  checkpoint was triggered (the barrier's timestamp), then switches to unaligned
  (snapshots at once, overtakes its outputs, keeps the inputs whose barrier has
  not come as channel state); a barrier arriving after the deadline starts
  unaligned.  Pointwise inputs always align (Flink forces their barriers aligned).
- at-least-once: nothing is blocked; the snapshot is taken when barrier n has
  arrived on every input, after records that followed it on early channels.

FLIP-147: a channel whose sender finished (its `EndOfPartition` arrived) counts
as arrived for the snapshot being aligned and for every later one, in every mode.

Trace events (on the task's lane; `n` is the barrier's snapshot id):

- `barrier_received (n, channel, sender)`: barrier n arrived on input `channel`
  (its index among the task's inputs) from subtask `sender`, in every mode, also
  when it straggles in for a snapshot the task already finished or gave up;
- `aligned (n, kind, waited)`: barrier n arrived on every input of an aligning
  task (aligned mode, savepoints, pointwise inputs in unaligned mode): it
  snapshots now; `waited` is the simulated ms since its first barrier n;
- `barrier_overtaken (n, channel, records)`: unaligned mode, barrier n (on
  `channel`) made the task snapshot: at once, the first one, or once aligned on
  pointwise inputs (recorded right after its `snapshot`); its barrier overtook
  `records` in flight on its exchange outputs, which became channel state;
- `barriers_complete (n, kind, records)`: unaligned and at-least-once modes,
  barrier n arrived on every input; `records` is the number of records kept as
  channel state (0 in at-least-once mode);
- `alignment_timed_out (n, waited)`: the aligned-checkpoint timeout of snapshot n
  passed while this task aligned: it switches to unaligned now;
- `alignment_cancelled (n, newer)`: a newer barrier (or a cancel marker of `newer`)
  arrived before barrier n had arrived everywhere; the task gives snapshot n up;
- `cancel_received (n, channel)`: a cancel marker of snapshot n arrived (Flink's
  CancelCheckpointMarker): an upstream task gave n up, so its barrier n will not come.

A barrier of a snapshot the task already gave up (its abort arrived first) is not
forwarded; the task sends a cancel marker instead (`cancel_sent (n)`), so that no
downstream task keeps its channels blocked waiting for it.

Aborted ids are remembered exactly, as Flink's `SubtaskCheckpointCoordinatorImpl`
does (`abortedCheckpointIds`, `checkAndClearAbortedStatus`): a notified abort of a
snapshot the task has not reached yet marks that id alone, so an abort of checkpoint 7
does not make savepoint 6's barrier count as given up.  Barriers, cancel markers and
completed alignments move the handler on by the highest id, as Flink's
`SingleCheckpointBarrierHandler` (`currentCheckpointId`) does: a barrier older than
one the task already aligned on, snapshotted or cancelled is obsolete.  (One shortcut:
an abort of the snapshot being aligned ends the alignment at once, where Flink aligns
to the end and then sends the cancel marker; no snapshot is taken either way.)

The task itself records `barrier_sent (n, kind)` (once, for all its outputs) and
`snapshot (n, kind)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from onceflow.model.records import Barrier, CancelMarker

if TYPE_CHECKING:
    from onceflow.model.task import Task

__all__ = ["AlignedHandler", "AtLeastOnceHandler", "BarrierHandler", "UnalignedHandler",
           "make_handler"]


class BarrierHandler(ABC):
    """Tracks the barriers of the one snapshot a task is taking part in."""

    def __init__(self, task: "Task") -> None:
        self.task = task
        self.current: Barrier | None = None
        self.arrived: list[bool] = []
        self.count = 0
        self.started = 0.0  # when the first barrier of `current` arrived
        self.capturing = False
        # barriers up to this id belong to snapshots this task finished or gave up
        # (completed, cancelled, subsumed): they are ignored when they straggle in
        self.done_id = 0
        # notified aborts of snapshots newer than any this task reached (Flink's
        # abortedCheckpointIds): exactly those ids are skipped when their barrier comes
        self.aborted: set[int] = set()

    def on_barrier(self, channel: int, barrier: Barrier) -> None:
        task = self.task
        task.job.trace.add(task.env.now, "barrier_received", task.name, barrier.id, channel,
                           task.inputs[channel].sender)
        if barrier.id <= self.done_id:
            # a snapshot given up here (its abort arrived first): pass a cancel marker on
            # instead of the barrier, so that no downstream task waits for it forever
            task.forward_cancel(barrier.id)
            return
        current = self.current
        if current is not None and barrier.id < current.id:
            return  # obsolete: this task already aligns on a newer snapshot
        if self.take_aborted(barrier.id):
            return
        if current is None or barrier.id > current.id:
            if current is not None:
                task.job.trace.add(task.env.now, "alignment_cancelled", task.name, current.id,
                                   barrier.id)
                self.cancel()
            self._start(barrier)
        if self.arrived[channel]:
            return
        self.arrived[channel] = True
        self.count += 1
        self._arrive(channel, barrier)

    def on_cancel(self, channel: int, marker: CancelMarker) -> None:
        """Snapshot `marker.id` was given up upstream: stop aligning on it, pass it on."""
        task = self.task
        task.job.trace.add(task.env.now, "cancel_received", task.name, marker.id, channel)
        current = self.current
        if current is not None and current.id <= marker.id:
            task.job.trace.add(task.env.now, "alignment_cancelled", task.name, current.id,
                               marker.id)
            self.cancel()
        self.done_id = max(self.done_id, marker.id)
        task.forward_cancel(marker.id)

    def take_aborted(self, checkpoint_id: int) -> bool:
        """Was snapshot `checkpoint_id`, which reaches this task now, notified aborted
        before?  Then the task takes no part: it gives up an older alignment, passes a
        cancel marker on and forgets the id (Flink's checkAndClearAbortedStatus)."""
        aborted = self.aborted
        if checkpoint_id not in aborted:
            return False
        task = self.task
        current = self.current
        if current is not None and current.id < checkpoint_id:
            task.job.trace.add(task.env.now, "alignment_cancelled", task.name, current.id,
                               checkpoint_id)
            self.cancel()
        self.done_id = max(self.done_id, checkpoint_id)
        self.aborted = {cid for cid in aborted if cid > checkpoint_id}
        task.forward_cancel(checkpoint_id)
        return True

    def _start(self, barrier: Barrier) -> None:
        self.current = barrier
        # a channel whose sender finished brings no barrier: it counts as arrived
        # (FLINK-21086), unless the mutant makes alignment wait for it
        finished = self.task.input_finished
        if self.task.job.mutant("alignment-waits-finished-input"):
            finished = [False] * len(finished)
        self.arrived = list(finished)
        self.count = sum(finished)
        self.started = self.task.env.now

    def on_partition_end(self, channel: int) -> None:
        """The sender of `channel` finished: no barrier comes on it any more; the
        snapshot being aligned counts it as arrived (Flink's processEndOfPartition)."""
        current = self.current
        if (current is None or self.arrived[channel]
                or self.task.job.mutant("alignment-waits-finished-input")):
            return
        self.arrived[channel] = True
        self.count += 1
        self._arrive(channel, current)

    def _event(self, kind: str, *detail: Any) -> None:
        task = self.task
        task.job.trace.add(task.env.now, kind, task.name, *detail)

    @abstractmethod
    def _arrive(self, channel: int, barrier: Barrier) -> None:
        """Barrier `barrier` arrived on `channel` (first time for this snapshot)."""

    def cancel(self, checkpoint_id: int | None = None) -> None:
        """Give up the snapshot in progress (aborted, or subsumed by a newer one).

        A notified abort (`checkpoint_id`) of a snapshot this task has not reached yet
        is remembered by its id alone (Flink records only ids newer than the last it
        triggered), so that its barriers, when they come, start no alignment; older
        snapshots still pending are not affected.
        """
        current = self.current
        if checkpoint_id is not None:
            reached = max(self.done_id, self.task.forwarded_id,
                          current.id if current is not None else 0)
            if checkpoint_id > reached:
                self.aborted = {cid for cid in self.aborted if cid > reached}
                self.aborted.add(checkpoint_id)
                return
            if current is None or checkpoint_id != current.id:
                return
        if current is None:
            return
        self.done_id = max(self.done_id, self.current.id)
        self.task.unblock_all()
        self.current = None
        self.capturing = False

    def captured(self, channel: int, item: Any) -> None:
        """An item (a buffer, or end of input) taken from `channel` while this handler
        records channel state."""

    def finishing(self) -> None:
        """The task finishes (FLIP-147): every input has ended, so no more data comes;
        a snapshot taken but not yet acknowledged is complete now."""


class AlignedHandler(BarrierHandler):
    def _arrive(self, channel: int, barrier: Barrier) -> None:
        task = self.task
        if self.count == len(self.arrived):
            self._event("aligned", barrier.id, barrier.kind, task.env.now - self.started)
            task.snapshot(barrier)
            task.unblock_all()
            self.current_done()
        else:
            task.blocked[channel] = True
            if self.count == 1:
                task.phase("alignment", barrier.id)

    def current_done(self) -> None:
        assert self.current is not None
        self.done_id = max(self.done_id, self.current.id)
        self.current = None


class AtLeastOnceHandler(AlignedHandler):
    def _arrive(self, channel: int, barrier: Barrier) -> None:
        if self.count == len(self.arrived):
            self._event("barriers_complete", barrier.id, barrier.kind, 0)
            self.task.snapshot(barrier)
            self.current_done()


class UnalignedHandler(AlignedHandler):
    """Overtakes on exchange (hash, rebalance) inputs; aligns pointwise ones; with an
    aligned-checkpoint timeout, starts aligned and switches at the deadline."""

    def _start(self, barrier: Barrier) -> None:
        super()._start(barrier)
        self.snapshotted = False
        self.state: Any = None
        self.channel_state: dict[str, list[Any]] = {}
        self.capturing = False
        self.aligning = False  # aligned phase of a checkpoint with an aligned timeout
        task = self.task
        timeout = task.job.scenario.checkpoints.aligned_timeout
        #: a checkpoint that starts aligned and switches at its deadline (Flink's
        #: timeoutable barrier; a timeout of 0 makes it unaligned from the start)
        self.timeoutable = bool(timeout) and barrier.kind == "checkpoint"
        if timeout is not None and barrier.kind == "checkpoint":
            delay = barrier.timestamp + timeout - task.env.now
            if delay > 0:
                self.aligning = True
                cid = barrier.id
                task.job.later(delay, task.mail, lambda: self._timed_out(cid))

    def _pointwise(self) -> bool:
        """Does this task align because of pointwise inputs (Flink forces their barriers
        aligned, timed-out ones too since FLINK-33693)?"""
        return any(ch.pointwise for ch in self.task.inputs)

    def _arrive(self, channel: int, barrier: Barrier) -> None:
        task = self.task
        inputs = task.inputs
        if barrier.kind != "checkpoint":
            AlignedHandler._arrive(self, channel, barrier)  # savepoints are always aligned
            return
        if self._pointwise():
            # pointwise inputs align (FLINK-21945), but the barrier still overtakes
            # the task's exchange outputs once it is aligned (unless it is still within
            # its aligned-checkpoint timeout)
            if self.count == len(self.arrived):
                self._event("aligned", barrier.id, barrier.kind, task.env.now - self.started)
                overtake = not self.aligning
                state, out_state = task.take_state(barrier, overtake=overtake)
                if overtake:
                    self._event("barrier_overtaken", barrier.id, channel, _records(out_state))
                task.unblock_all()
                task.acknowledge(barrier, state, out_state)
                self.current_done()
            else:
                task.blocked[channel] = True
            return
        if self.aligning:
            if self.count == len(self.arrived):  # aligned before the deadline
                self._event("aligned", barrier.id, barrier.kind, task.env.now - self.started)
                task.snapshot(barrier)
                task.unblock_all()
                self.current_done()
            else:
                task.blocked[channel] = True
            return
        if not self.snapshotted:
            self._go_unaligned(barrier, channel)
        if self.count == len(self.arrived):
            self.capturing = False
            self._event("barriers_complete", barrier.id, barrier.kind,
                        _records(self.channel_state))
            task.acknowledge(barrier, self.state, self.channel_state)
            self.current_done()

    def _go_unaligned(self, barrier: Barrier, channel: int) -> None:
        """Snapshot now: the barrier overtakes the outputs; inputs whose barrier has not
        arrived are recorded as channel state until it does."""
        task = self.task
        self.snapshotted = True
        # FLINK-27251: a timed-out (timeoutable) checkpoint that persists none of the data
        # still ahead of the barriers that have not arrived
        self.capturing = not (self.timeoutable and task.job.mutant("timeout-misses-inflight"))
        for i, ch in enumerate(task.inputs):
            if not self.arrived[i]:
                self.channel_state[f"in:{ch.name}"] = []
        self.state, out_state = task.take_state(barrier, overtake=True)
        self.channel_state.update(out_state)
        self._event("barrier_overtaken", barrier.id, channel, _records(out_state))

    def _timed_out(self, checkpoint_id: int) -> None:
        """The aligned-checkpoint timeout of `checkpoint_id` passed (a mail)."""
        current = self.current
        if current is None or current.id != checkpoint_id or not self.aligning:
            return
        task = self.task
        self.aligning = False
        self._event("alignment_timed_out", checkpoint_id, task.env.now - self.started)
        if self._pointwise():
            return  # forced aligned: it snapshots once aligned, overtaking its outputs
        self._go_unaligned(current, -1)
        task.unblock_all()  # what follows a barrier that arrived is after the snapshot

    def finishing(self) -> None:
        current = self.current
        if current is None or not getattr(self, "snapshotted", False):
            return
        self.capturing = False
        self.task.acknowledge(current, self.state, self.channel_state)
        self.current_done()

    def captured(self, channel: int, item: Any) -> None:
        if self.arrived[channel]:
            return
        self.channel_state[f"in:{self.task.inputs[channel].name}"].append(item)


def _records(channel_state: dict[str, list[Any]]) -> int:
    """How many records the buffers of `channel_state` hold."""
    return sum(len(item) for items in channel_state.values() for item in items
               if item.__class__ is list)


def make_handler(mode: str, task: "Task") -> BarrierHandler:
    if task.job.mutant("at-least-once-mode"):
        mode = "at_least_once"
    return {"aligned": AlignedHandler, "unaligned": UnalignedHandler,
            "at_least_once": AtLeastOnceHandler}[mode](task)
