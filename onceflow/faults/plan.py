"""Fault values of a scenario, their JSON form and their validation.

Every fault is a frozen value; its JSON form is its fields plus `kind`.
Targets name subtasks as ``"uid[i]"``; checkpoint ids count from 1 (0 means
"the first one that reaches the phase").  A fault may name only a checkpoint id
the run can reach: at most `max_checkpoint_id(scenario)` snapshots are ever
triggered before the run's horizon.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import field, frozen

from onceflow.errors import ScenarioError

if TYPE_CHECKING:
    from onceflow.scenario import Scenario

__all__ = [
    "CRASH_PHASES",
    "FAULT_KINDS",
    "IN_FLIGHT_OUTCOMES",
    "CoordinatorCrash",
    "Crash",
    "LatencySpike",
    "NotifyFault",
    "PhaseCrash",
    "ProgressCrash",
    "ProgressLostTransaction",
    "SlowSubtask",
    "StorageFault",
    "StoreFault",
    "WorkerCrash",
    "fault_from_data",
    "max_checkpoint_id",
    "validate_faults",
]

#: The phases a `PhaseCrash` can aim at, in the order a snapshot passes them.
CRASH_PHASES = (
    "alignment",            # a barrier arrived; the task is aligning its inputs
    "after_sync_snapshot",  # state taken, before the acknowledgement
    "async_upload",         # halfway through the asynchronous upload
    "pre_commit",           # a 2PC sink pre-committed, before its commit
    "notify_complete",      # checkpoint completed, before the task handles its notification
    "commit_before",        # committing, before the external effect
    "commit_in_flight",     # a slow commit was sent; the crash comes halfway through it
    "commit_after",         # committing, after the external effect
    "restore",              # a task is restoring its state
    "recovery_commit",      # a 2PC sink re-commits restored transactions
    "global_commit_before",  # a global committer, before committing a transaction
    "global_commit_after",   # a global committer, after committing a transaction
    "stop_savepoint",       # stop-with-savepoint committed here, before the job finished
    "end_of_input",         # end of input reached, before the final checkpoint
)

#: Which snapshots a `PhaseCrash` waits for.
SNAPSHOT_KINDS = ("any", "checkpoint", "savepoint")

NOTIFY_EFFECTS = ("lose", "delay", "duplicate", "reorder")
#: Which notifications a `NotifyFault` intercepts: notify-complete, notify-aborted, or
#: whichever of the two comes first ("any", the behaviour before the field existed), or
#: "final": the notify-complete that would let its target finish (FLIP-147: the first
#: completion at or after its final checkpoint; `checkpoint` is ignored).
NOTIFY_MESSAGES = ("complete", "aborted", "any", "final")
STORAGE_EFFECTS = ("fail_write", "slow_upload")
STORE_EFFECTS = ("commit_failure", "lost_transaction", "slow_commit")
#: What a crash (or failover) while a slow commit is in flight leaves in the store: the
#: commit request reached it and completes ("committed"), or never did ("not_committed").
IN_FLIGHT_OUTCOMES = ("committed", "not_committed")

_TARGET = re.compile(r"(?P<uid>[^\[\]\s]+)\[(?P<subtask>0|[1-9][0-9]*)\]")


def _show(value: Any) -> str:
    from onceflow.scenario import _show as show  # noqa: PLC0415 (cycle)

    return show(value)


def _fail(path: str, name: str, reason: str) -> None:
    raise ScenarioError(f"{path}.{name}" if path else name, reason)


def _num(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # beyond any float: validation refuses it
            return value
    return value


def _has_global_committer(scenario: "Scenario") -> bool:
    from onceflow.registry import SINKS  # noqa: PLC0415

    spec = SINKS.get(scenario.sink)
    return spec is not None and spec.global_committer


def check_target(scenario: "Scenario", target: str, path: str, *, wildcard: bool = False) -> None:
    if wildcard and target == "*":
        return
    m = _TARGET.fullmatch(target) if isinstance(target, str) else None
    if m is None:
        _fail(path, "target", f"expected a subtask like 'map[0]'{' or *' if wildcard else ''}, "
                              f"got {target!r}")
        return
    uid, subtask = m["uid"], int(m["subtask"])
    sink_uid = scenario.topology.vertices[-1].uid
    if uid == sink_uid + ".global" and _has_global_committer(scenario):
        if subtask != 0:
            _fail(path, "target", f"{uid} (the global committer) has parallelism 1, so no "
                                  f"subtask {subtask}")
        return
    try:
        vertex = scenario.topology.vertex(uid)
    except ScenarioError:
        uids = ", ".join(v.uid for v in scenario.topology.vertices)
        _fail(path, "target", f"no vertex with uid {uid!r}; the topology has {uids}")
        return
    if subtask >= vertex.parallelism:
        _fail(path, "target", f"{uid} has parallelism {vertex.parallelism}, so no subtask {subtask}")


def _check_time(path: str, name: str, value: Any, *, positive: bool = False) -> None:
    if not isinstance(value, float) or not 0 <= value <= 1e9 or (positive and value == 0):
        _fail(path, name, f"must be a {'positive' if positive else 'non-negative'} time in "
                          f"simulated ms up to 1e9, got {_show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: No run triggers more snapshots than this (a fixed cap, whatever the horizon).
MAX_CHECKPOINT_ID = 10_000


def _check_checkpoint(path: str, value: Any) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_CHECKPOINT_ID:
        _fail(path, "checkpoint", f"must be a checkpoint id between 1 and {MAX_CHECKPOINT_ID} "
                                  f"(0 for any), got {value!r}")


@frozen
class Crash:
    """Subtask `target` crashes at simulated time `at`."""

    kind_name: ClassVar[str] = "crash"
    at: float = field(converter=_num)
    target: str

    def validate(self, scenario: "Scenario", path: str) -> None:
        _check_time(path, "at", self.at)
        check_target(scenario, self.target, path)


@frozen
class WorkerCrash:
    """The worker `worker` crashes at `at`, with every subtask in its slots."""

    kind_name: ClassVar[str] = "worker_crash"
    at: float = field(converter=_num)
    worker: int

    def validate(self, scenario: "Scenario", path: str) -> None:
        _check_time(path, "at", self.at)
        workers = worker_count(scenario)
        if not _is_int(self.worker) or not 0 <= self.worker < workers:
            _fail(path, "worker", f"the job runs on workers 0..{workers - 1}, got {self.worker!r}")


@frozen
class CoordinatorCrash:
    """The job manager crashes at `at`: recovered from the durable checkpoint store, or lost."""

    kind_name: ClassVar[str] = "coordinator_crash"
    at: float = field(converter=_num)

    def validate(self, scenario: "Scenario", path: str) -> None:
        _check_time(path, "at", self.at)


@frozen
class PhaseCrash:
    """Subtask `target` crashes when snapshot `checkpoint` reaches `phase` there.

    `snapshot` narrows which snapshots count: "checkpoint", "savepoint" or "any";
    with `checkpoint=0`, the first of that kind to reach the phase.
    """

    kind_name: ClassVar[str] = "phase_crash"
    phase: str
    target: str
    checkpoint: int = 0
    snapshot: str = "any"

    def validate(self, scenario: "Scenario", path: str) -> None:
        if self.phase not in CRASH_PHASES:
            _fail(path, "phase", f"unknown phase {self.phase!r}; phases: {', '.join(CRASH_PHASES)}")
        if self.snapshot not in SNAPSHOT_KINDS:
            _fail(path, "snapshot", f"unknown snapshot kind {self.snapshot!r}; one of "
                                    f"{', '.join(SNAPSHOT_KINDS)}")
        check_target(scenario, self.target, path)
        _check_checkpoint(path, self.checkpoint)
        if self.phase == "end_of_input" and self.checkpoint:
            _fail(path, "checkpoint", "end_of_input is reached once, not per checkpoint; use 0")



def _check_progress(fault: Any, path: str) -> None:
    """A fault timed by progress: its record count and completed-checkpoint count."""
    if not _is_int(fault.record) or not 1 <= fault.record <= 1_000_000:
        _fail(path, "record", f"must be a record count between 1 and 1000000, "
                              f"got {fault.record!r}")
    if not _is_int(fault.after_checkpoints) or not 0 <= fault.after_checkpoints <= MAX_CHECKPOINT_ID:
        _fail(path, "after_checkpoints", f"must be between 0 and {MAX_CHECKPOINT_ID}, "
                                         f"got {fault.after_checkpoints!r}")

@frozen
class ProgressCrash:
    """Subtask `target` crashes when its `record`-th record arrives, once at least
    `after_checkpoints` checkpoints have completed (as Flink's own tests time failures:
    a mapper that fails after n records and k completed checkpoints).

    Records count per attempt from the subtask's start (a restarted subtask counts
    again); the crash comes before the record is processed, and happens once.
    """

    kind_name: ClassVar[str] = "progress_crash"
    target: str
    record: int = 1
    after_checkpoints: int = 0

    def validate(self, scenario: "Scenario", path: str) -> None:
        check_target(scenario, self.target, path)
        _check_progress(self, path)


@frozen
class NotifyFault:
    """Notify-complete/-aborted messages of `checkpoint` to `target` are lost,
    delayed by `delay`, duplicated (a second copy `delay` later), or reordered: held
    back until the next, newer notification to the same subtask is sent, and then
    delivered right after it.

    `message` picks the notifications it intercepts: "complete", "aborted", or
    "any" (the first of either kind; a checkpoint either completes or aborts).
    """

    kind_name: ClassVar[str] = "notify"
    effect: str
    checkpoint: int = 0
    target: str = "*"
    delay: float = field(default=0.0, converter=_num)
    message: str = "any"

    def validate(self, scenario: "Scenario", path: str) -> None:
        if self.effect not in NOTIFY_EFFECTS:
            _fail(path, "effect", f"unknown effect {self.effect!r}; one of {', '.join(NOTIFY_EFFECTS)}")
        if self.message not in NOTIFY_MESSAGES:
            _fail(path, "message", f"unknown message {self.message!r}; one of "
                                   f"{', '.join(NOTIFY_MESSAGES)}")
        _check_checkpoint(path, self.checkpoint)
        check_target(scenario, self.target, path, wildcard=True)
        _check_time(path, "delay", self.delay)


@frozen
class StorageFault:
    """Checkpoint storage fails the write of `target`'s state for `checkpoint`,
    or uploads it `delay` ms slower (which can run into the checkpoint timeout).

    `snapshot` narrows which snapshots count ("checkpoint", "savepoint" or "any"),
    as for `PhaseCrash`."""

    kind_name: ClassVar[str] = "storage"
    effect: str
    checkpoint: int = 0
    target: str = "*"
    delay: float = field(default=0.0, converter=_num)
    snapshot: str = "any"

    def validate(self, scenario: "Scenario", path: str) -> None:
        if self.effect not in STORAGE_EFFECTS:
            _fail(path, "effect", f"unknown effect {self.effect!r}; one of {', '.join(STORAGE_EFFECTS)}")
        if self.snapshot not in SNAPSHOT_KINDS:
            _fail(path, "snapshot", f"unknown snapshot kind {self.snapshot!r}; one of "
                                    f"{', '.join(SNAPSHOT_KINDS)}")
        _check_checkpoint(path, self.checkpoint)
        check_target(scenario, self.target, path, wildcard=True)
        _check_time(path, "delay", self.delay)


@frozen
class StoreFault:
    """The external store misbehaves from `at` on:

    - `commit_failure`: the first `times` commits fail transiently (the sink retries);
    - `lost_transaction`: the open transactions of sink subtask `target` ("*": of
      every subtask) are dropped by the external system (a fenced producer, a
      coordinator failover); when none is open at `at`, the next one the target
      writes into is; the writer's next write or pre-commit into one fails, and
      with it the task;
    - `slow_commit`: the first `times` commits take `delay` ms longer (the committing
      task is busy meanwhile; the data becomes visible at the end).  A crash or
      failover while one is in flight leaves it `on_crash`: "committed" (the request
      reached the store, which completes it) or "not_committed" (it never did); the
      restored committer commits it again either way.
    """

    kind_name: ClassVar[str] = "store"
    effect: str
    at: float = field(converter=_num)
    times: int = 1
    target: str = "*"
    delay: float = field(default=0.0, converter=_num)
    on_crash: str = field(default="committed", metadata={"omit_default": True})

    def validate(self, scenario: "Scenario", path: str) -> None:
        if self.effect not in STORE_EFFECTS:
            _fail(path, "effect", f"unknown effect {self.effect!r}; one of {', '.join(STORE_EFFECTS)}")
        _check_time(path, "at", self.at)
        if not _is_int(self.times) or not 1 <= self.times <= 10:
            _fail(path, "times", f"must be between 1 and 10, got {self.times!r}")
        check_target(scenario, self.target, path, wildcard=True)
        if self.target != "*" and self.effect != "lost_transaction":
            _fail(path, "target", f"only a lost_transaction names a subtask; a {self.effect} "
                                  "acts on the store: use '*'")
        _check_time(path, "delay", self.delay, positive=self.effect == "slow_commit")
        if self.delay and self.effect != "slow_commit":
            _fail(path, "delay", f"only a slow_commit takes a delay; drop it from the "
                                 f"{self.effect}")
        if self.on_crash not in IN_FLIGHT_OUTCOMES:
            _fail(path, "on_crash", f"unknown outcome {self.on_crash!r}; one of "
                                    f"{', '.join(IN_FLIGHT_OUTCOMES)}")
        if self.on_crash != "committed" and self.effect != "slow_commit":
            _fail(path, "on_crash", f"only a slow_commit has a commit in flight; drop "
                                    f"on_crash from the {self.effect}")


@frozen
class ProgressLostTransaction:
    """The external system drops the open transaction of sink subtask `target` when
    its `record`-th record arrives, once at least `after_checkpoints` checkpoints have
    completed: a `StoreFault` lost_transaction timed by progress, as `ProgressCrash`
    times a crash.  Records count per attempt from the subtask's start; when nothing
    is open then, the next transaction it writes into is lost.  Its next write or
    pre-commit into the lost transaction fails, and with it the task; it happens once.
    """

    kind_name: ClassVar[str] = "progress_lost_transaction"
    target: str
    record: int = 1
    after_checkpoints: int = 0

    def validate(self, scenario: "Scenario", path: str) -> None:
        check_target(scenario, self.target, path)
        sink = scenario.topology.vertices[-1].uid
        if self.target.rpartition("[")[0] != sink:
            _fail(path, "target", f"only a sink subtask writes into transactions; name one of "
                                  f"{sink}[0]..{sink}[{scenario.topology.vertices[-1].parallelism - 1}]")
        _check_progress(self, path)


@frozen
class LatencySpike:
    """Channels out of `target` take `extra` ms longer from `at` for `duration` ms."""

    kind_name: ClassVar[str] = "latency_spike"
    at: float = field(converter=_num)
    target: str
    duration: float = field(default=10.0, converter=_num)
    extra: float = field(default=5.0, converter=_num)

    def validate(self, scenario: "Scenario", path: str) -> None:
        _check_time(path, "at", self.at)
        check_target(scenario, self.target, path)
        _check_time(path, "duration", self.duration)
        _check_time(path, "extra", self.extra)


@frozen
class SlowSubtask:
    """Subtask `target` processes `factor` times slower from `at` for `duration` ms."""

    kind_name: ClassVar[str] = "slow_subtask"
    at: float = field(converter=_num)
    target: str
    duration: float = field(default=10.0, converter=_num)
    factor: float = field(default=10.0, converter=_num)

    def validate(self, scenario: "Scenario", path: str) -> None:
        _check_time(path, "at", self.at)
        check_target(scenario, self.target, path)
        _check_time(path, "duration", self.duration)
        if not isinstance(self.factor, float) or not 1 <= self.factor <= 1000:
            _fail(path, "factor", f"must be between 1 and 1000, got {self.factor!r}")


#: kind name -> fault class
FAULT_KINDS: dict[str, type] = {cls.kind_name: cls for cls in (  # type: ignore[attr-defined]
    Crash, WorkerCrash, CoordinatorCrash, PhaseCrash, ProgressCrash, NotifyFault, StorageFault,
    StoreFault, ProgressLostTransaction, LatencySpike, SlowSubtask)}


def worker_count(scenario: "Scenario") -> int:
    """Workers the job's subtasks are spread over: `slots_per_worker` slots each."""
    subtasks = sum(v.parallelism for v in scenario.topology.vertices)
    return (subtasks + SLOTS_PER_WORKER - 1) // SLOTS_PER_WORKER


#: Slots per worker: subtask i of the job (vertices in order, subtasks in order) runs
#: in slot i, on worker i // SLOTS_PER_WORKER.
SLOTS_PER_WORKER = 4


def fault_from_data(data: Any, path: str) -> Any:
    from onceflow.scenario import _from_data  # noqa: PLC0415

    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ScenarioError(path, "a fault is a JSON object with a string 'kind'")
    cls = FAULT_KINDS.get(data["kind"])
    if cls is None:
        raise ScenarioError(f"{path}.kind", f"unknown fault kind {data['kind']!r}; known: "
                                            f"{', '.join(sorted(FAULT_KINDS))}")
    body = {k: v for k, v in data.items() if k != "kind"}
    return _from_data(cls, body, path)


def max_checkpoint_id(scenario: "Scenario") -> int:
    """The highest snapshot id a run of `scenario` can possibly trigger.

    A run lasts until its horizon; the periodic timer triggers at most one
    checkpoint per interval until then; on top come the savepoint requests and
    one final checkpoint per attempt (FLIP-147), of which there are at most
    `restart.attempts + 1`.  (Restored timelines run without faults.)
    """
    from onceflow.model.job import horizon  # noqa: PLC0415 (the model imports scenarios)

    ticks = int(horizon(scenario) // scenario.checkpoints.interval)
    return ticks + len(scenario.savepoints) + scenario.restart.attempts + 1


def validate_faults(scenario: "Scenario") -> None:
    """Check every fault against the scenario it is part of (subtasks, phases, times,
    and checkpoint ids the run can reach)."""
    kinds = tuple(FAULT_KINDS.values())
    for i, fault in enumerate(scenario.faults):
        if not isinstance(fault, kinds):
            raise ScenarioError(f"faults[{i}]", f"not a fault value: {fault!r}")
        fault.validate(scenario, f"faults[{i}]")
    # every time is valid now, so the horizon (which the fault times extend) is known
    named = [(i, f.checkpoint) for i, f in enumerate(scenario.faults)
             if getattr(f, "checkpoint", 0)]
    if named:
        limit = max_checkpoint_id(scenario)
        for i, checkpoint in named:
            if checkpoint > limit:
                _fail(f"faults[{i}]", "checkpoint",
                      f"checkpoint {checkpoint} is never reached: this run triggers at most "
                      f"{limit} snapshots (one per {scenario.checkpoints.interval:g} ms interval "
                      f"until its horizon, plus savepoints and final checkpoints), so the "
                      f"fault could never fire")
