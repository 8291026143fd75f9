"""Applies a scenario's fault plan to a running job, in simulated time.

Timed faults are scheduled on the job's clock; phase crashes hook into the
points where a snapshot passes a phase (`Job.phase`); notification and
storage faults filter the coordinator's messages and uploads.  Every fault
that fires is recorded (`job.faults_fired`, and a "fault" trace event).

Each `faults_fired` entry has `kind` (the fault's kind), `phase` (where the
fault struck: the crash phase of a phase crash, `notify_complete` or
`notify_aborted` for a notification, `async_upload` for checkpoint storage;
None for timed faults), `effect` (what it did: the notification or storage
fault's effect, the store fault's effect (`commit_failure`, `lost_transaction`,
`slow_commit`); None for crashes and slowdowns),
`time`, `target`, `checkpoint` and `index` (the fault's position in the plan).
The trace event "fault" holds (kind, phase, checkpoint, effect, index).
A fault that never fired has no entry: `unfired(result)` lists those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from onceflow.faults.plan import (SLOTS_PER_WORKER, CoordinatorCrash, Crash, LatencySpike,
                                  NotifyFault, PhaseCrash, ProgressCrash,
                                  ProgressLostTransaction, SlowSubtask,
                                  StorageFault, StoreFault, WorkerCrash)
from onceflow.model.task import TaskCrash

if TYPE_CHECKING:
    from onceflow.model.job import Job
    from onceflow.model.task import Task

__all__ = ["HOLD", "Injector", "install", "unfired"]

#: The phase a storage fault strikes in: the asynchronous part of a snapshot.
STORAGE_PHASE = "async_upload"


class Injector:
    def __init__(self, job: "Job") -> None:
        self.job = job
        self.fired: list[dict[str, Any]] = []
        self.spent: set[int] = set()
        self.hit: set[tuple[int, str]] = set()
        faults = job.scenario.faults
        self.phase_faults = [(i, f) for i, f in enumerate(faults) if isinstance(f, PhaseCrash)]
        self.notify_faults = [(i, f) for i, f in enumerate(faults) if isinstance(f, NotifyFault)]
        self.storage_faults = [(i, f) for i, f in enumerate(faults) if isinstance(f, StorageFault)]
        self.progress_faults = [(i, f) for i, f in enumerate(faults)
                                if isinstance(f, (ProgressCrash, ProgressLostTransaction))]

    def install(self) -> None:
        job = self.job
        job.faults_fired = self.fired
        if any((isinstance(f, StoreFault) and f.effect != "commit_failure")
               or isinstance(f, ProgressLostTransaction) for f in job.scenario.faults):
            from onceflow.faults.store import FaultyStore  # noqa: PLC0415

            job.sink_store = FaultyStore(job.store, job)
        handlers: dict[type, Callable[[int, Any], None]] = {
            Crash: self._crash, WorkerCrash: self._worker_crash,
            CoordinatorCrash: self._coordinator_crash, StoreFault: self._store_fault,
            LatencySpike: self._latency_spike, SlowSubtask: self._slow_subtask,
        }
        for i, fault in enumerate(job.scenario.faults):
            handler = handlers.get(type(fault))
            if handler is not None:
                job.later(fault.at, handler, i, fault)
        if self.phase_faults:
            job.phase_hooks.append(self._on_phase)
        if self.notify_faults:
            job.notify_filter = self._filter_notification
        if self.storage_faults:
            job.upload_filter = self._filter_upload
        if self.progress_faults:
            job.progress_targets = {f.target for _, f in self.progress_faults}
            job.progress_hook = self._on_progress

    # -- bookkeeping ---------------------------------------------------------------

    def _record(self, index: int, fault: Any, *, phase: str | None = None,
                effect: str | None = None, target: str | None = None,
                checkpoint: int | None = None) -> None:
        job = self.job
        self.spent.add(index)
        entry = {"kind": type(fault).kind_name, "phase": phase, "effect": effect,
                 "time": job.env.now, "target": target, "checkpoint": checkpoint,
                 "index": index}
        self.fired.append(entry)
        job.trace.add(job.env.now, "fault", target or "job", type(fault).kind_name, phase,
                      checkpoint, effect, index)

    def _task(self, name: str) -> "Task | None":
        attempt = self.job.attempt
        if attempt is None or not attempt.alive:
            return None
        for task in attempt.tasks:
            if task.name == name:
                return task
        g = attempt.global_task
        return g if g is not None and g.name == name else None

    # -- timed faults ----------------------------------------------------------------

    def _crash(self, index: int, fault: Crash) -> None:
        task = self._task(fault.target)
        if task is not None and self.job.running:
            self._record(index, fault, target=fault.target)
            self.job.fail(task, f"crash of {fault.target} (fault {index})")

    def _worker_crash(self, index: int, fault: WorkerCrash) -> None:
        attempt = self.job.attempt
        if attempt is None or not attempt.alive or not self.job.running:
            return
        hosted = [t for slot, t in enumerate(attempt.tasks) if slot // SLOTS_PER_WORKER == fault.worker]
        if hosted:
            self._record(index, fault, target=f"worker {fault.worker}")
            names = ", ".join(t.name for t in hosted)
            for t in hosted:
                t.lost = True  # their process died with the worker: no close() runs
            self.job.fail(hosted[0], f"worker {fault.worker} lost with {names} (fault {index})",
                          crashed=hosted)

    def _coordinator_crash(self, index: int, fault: CoordinatorCrash) -> None:
        job = self.job
        if not job.running:
            return
        self._record(index, fault, target="coordinator")
        job.coordinator_crash(f"coordinator crash (fault {index})")

    def _store_fault(self, index: int, fault: StoreFault) -> None:
        job = self.job
        if fault.effect == "commit_failure":
            self._record(index, fault, effect=fault.effect, target="store")
            job.store.transient_failures += fault.times
            return
        view = job.sink_store
        if fault.effect == "slow_commit":
            self._record(index, fault, effect=fault.effect, target="store")
            view.slow.extend([fault.delay] * fault.times)
            view.outcomes.extend([fault.on_crash] * fault.times)
            return
        owners = None
        if fault.target != "*":
            uid, _, rest = fault.target.rpartition("[")
            owners = {(uid, int(rest[:-1]))}
        self._lose(index, fault, owners)

    def _lose(self, index: int, fault: Any, owners: set[tuple[str, int]] | None, *,
              phase: str | None = None) -> None:
        """The external system drops the open transactions of `owners` (None: of every
        sink subtask); when none is open, the next one they write into."""
        job = self.job
        self.spent.add(index)  # a fault timed by progress strikes once
        lost = job.sink_store.lose_open_transactions(job.env.now, owners)
        if lost:
            self._record(index, fault, phase=phase, effect="lost_transaction",
                         target=fault.target)
            for txn in lost:
                job.trace.add(job.env.now, "txn_lost", fault.target, txn, index)
            return

        def fire(now: float, txn: str) -> None:
            self._record(index, fault, phase=phase, effect="lost_transaction",
                         target=fault.target)
            job.trace.add(now, "txn_lost", fault.target, txn, index)
        # nothing open there now: the next transaction the target writes into is lost
        # (a fault that never strikes did not fire)
        job.sink_store.armed.append((owners, fire))

    def _latency_spike(self, index: int, fault: LatencySpike) -> None:
        task = self._task(fault.target)
        if task is None:
            return
        self._record(index, fault, target=fault.target)
        for ch in task.outputs:
            ch.extra_delay += fault.extra

        def calm() -> None:
            for ch in task.outputs:
                ch.extra_delay = max(0.0, ch.extra_delay - fault.extra)
        self.job.later(fault.duration, calm)

    def _slow_subtask(self, index: int, fault: SlowSubtask) -> None:
        task = self._task(fault.target)
        if task is None:
            return
        self._record(index, fault, target=fault.target)
        task.slowdown *= fault.factor

        def recover() -> None:
            task.slowdown /= fault.factor
        self.job.later(fault.duration, recover)

    # -- crashes timed by progress -------------------------------------------------------

    def _on_progress(self, task: "Task", seen: int) -> None:
        """Subtask `task` is about to handle input that brings it to `seen` records."""
        completed = None
        for index, fault in self.progress_faults:
            if index in self.spent or fault.target != task.name or seen < fault.record:
                continue
            if completed is None:
                completed = sum(1 for s in self.job.coordinator.history if s.kind == "checkpoint")
            if completed < fault.after_checkpoints:
                continue
            if isinstance(fault, ProgressLostTransaction):
                self._lose(index, fault, {(task.vertex.uid, task.subtask)}, phase="progress")
                continue
            self._record(index, fault, phase="progress", target=task.name)
            raise TaskCrash(f"crash of {task.name} at its record {fault.record} after "
                            f"{completed} completed checkpoints (fault {index})")

    # -- phase crashes -----------------------------------------------------------------

    def _on_phase(self, task: "Task", phase: str, checkpoint_id: int) -> None:
        for index, fault in self.phase_faults:
            if index in self.spent or fault.phase != phase or fault.target != task.name:
                continue
            if fault.checkpoint and fault.checkpoint != checkpoint_id:
                continue
            kind = self._kind_of(checkpoint_id)
            if fault.snapshot != "any" and fault.snapshot != kind:
                continue
            self._record(index, fault, phase=phase, target=task.name, checkpoint=checkpoint_id)
            reason = f"crash of {task.name} at {phase} of {kind} {checkpoint_id} (fault {index})"
            job = self.job
            if phase == "async_upload":
                job.later(job.scenario.timing.upload_time / 2, job.fail, task, reason)
                return
            if phase == "commit_after":
                flight = getattr(job.sink_store, "last_flight", None)
                if flight is not None and flight[0] == job.env.now < flight[1]:
                    # a slow commit was just sent: "after" it means once it returned
                    job.later(flight[1] - job.env.now, self._fail_attempt, task, reason)
                    return
            if phase == "commit_in_flight":
                # halfway through the slow commit just sent (the task is busy with it)
                sent, lands = job.sink_store.last_flight
                job.later((lands - sent) / 2 + sent - job.env.now, self._fail_attempt,
                          task, reason)
                return
            raise TaskCrash(reason)

    def _fail_attempt(self, task: "Task", reason: str) -> None:
        """Crash `task`, unless its attempt is over already."""
        if task.attempt is self.job.attempt and task.attempt.alive:
            self.job.fail(task, reason)

    def _kind_of(self, checkpoint_id: int) -> str:
        """Whether snapshot `checkpoint_id` is a checkpoint or a savepoint."""
        coordinator = self.job.coordinator
        pending = coordinator.pending.get(checkpoint_id)
        if pending is not None:
            return pending.kind
        for snapshot in reversed(coordinator.history):
            if snapshot.id == checkpoint_id:
                return snapshot.kind
        return "savepoint" if checkpoint_id in self.job.savepoint_requests else "checkpoint"

    # -- messages and uploads ------------------------------------------------------------

    def _message(self, checkpoint_id: int) -> str:
        """Which notification the coordinator is sending for `checkpoint_id`: a snapshot
        either completed (it is in the history before its notify-complete goes out)
        or was aborted, never both."""
        for snapshot in reversed(self.job.coordinator.history):
            if snapshot.id == checkpoint_id:
                return "complete"
        return "aborted"

    def _filter_notification(self, task: "Task", checkpoint_id: int) -> list[float]:
        """Extra delays of the copies of this notification to deliver ([] = lost)."""
        message: str | None = None
        for index, fault in self.notify_faults:
            if (index, task.name) in self.hit or (index in self.spent and fault.target != "*"):
                continue
            if fault.target != "*" and fault.target != task.name:
                continue
            if message is None:
                message = self._message(checkpoint_id)
            if fault.message == "final":
                # the completion that would release the target from its final wait
                if message != "complete" or task.final_after is None or task.final_done \
                        or checkpoint_id < task.final_after:
                    continue
            elif fault.checkpoint and fault.checkpoint != checkpoint_id:
                continue
            elif fault.message != "any" and fault.message != message:
                continue
            # a wildcard hits each subtask once, for one checkpoint
            self.hit.add((index, task.name))
            self._record(index, fault, phase=f"notify_{message}", effect=fault.effect,
                         target=task.name, checkpoint=checkpoint_id)
            if fault.target == "*":
                self._notify_wildcard_hit(index, checkpoint_id)
            if fault.effect == "lose":
                return []
            if fault.effect == "delay":
                return [fault.delay]
            if fault.effect == "duplicate":
                return [0.0, fault.delay]
            return HOLD(0.0)  # reorder: right after the next notification to this subtask
        return [0.0]

    def _notify_wildcard_hit(self, index: int, checkpoint_id: int) -> None:
        # a wildcard fault with checkpoint 0 binds to the first checkpoint it hit
        fault = self.job.scenario.faults[index]
        if not fault.checkpoint:
            self.notify_faults = [(i, f if i != index else _bound(f, checkpoint_id))
                                  for i, f in self.notify_faults]

    def _filter_upload(self, task: "Task", checkpoint_id: int) -> tuple[bool, float]:
        for index, fault in self.storage_faults:
            if index in self.spent:
                continue
            if fault.checkpoint and fault.checkpoint != checkpoint_id:
                continue
            if fault.target != "*" and fault.target != task.name:
                continue
            if fault.snapshot != "any" and fault.snapshot != self._kind_of(checkpoint_id):
                continue
            self._record(index, fault, phase=STORAGE_PHASE, effect=fault.effect,
                         target=task.name, checkpoint=checkpoint_id)
            if fault.effect == "fail_write":
                return False, 0.0
            return True, fault.delay
        return True, 0.0


class HOLD(float):
    """A notification held back until the next one to its subtask, then delivered
    this much later than it."""


def _bound(fault: NotifyFault, checkpoint_id: int) -> NotifyFault:
    from attrs import evolve  # noqa: PLC0415

    return evolve(fault, checkpoint=checkpoint_id)


def install(job: "Job") -> Injector:
    injector = Injector(job)
    injector.install()
    return injector


def unfired(result: Any) -> tuple[tuple[int, Any], ...]:
    """The faults of `result`'s plan that never fired, as (index, fault): a crash aimed
    at a phase or checkpoint the run never reached, a timed fault after the job ended,
    a notification fault whose message was never sent...  Such a fault changed nothing
    in the run, so a clean verdict says nothing about it."""
    fired = {entry["index"] for entry in result.faults_fired}
    return tuple((i, f) for i, f in enumerate(result.scenario.faults) if i not in fired)
