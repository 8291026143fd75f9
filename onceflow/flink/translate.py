"""A scenario translated into what a real Flink job needs: a `FlinkPlan`.

The plan is a frozen value: the topology with its operators, edges and
parallelism; the checkpoint mode, interval and restart strategy; every fault as
a point where an operator fails once (the n-th record of a subtask, after k
completed checkpoints, the snapshot or the notification of checkpoint k, the
savepoint of a stop-with-savepoint); every savepoint as the number of records
the sources have read when it is triggered.  Model faults timed in simulated
milliseconds are placed by progress, read from the model's own run of the same
scenario (how many records the target had processed by then).  A part with no
Flink equivalent raises `Untranslatable` naming it.
"""

from __future__ import annotations

from typing import Any, Callable

from attrs import frozen

from onceflow.faults.plan import FAULT_KINDS, Crash, PhaseCrash
from onceflow.flink.errors import Untranslatable
from onceflow.model.simulation import RunResult
from onceflow.registry import SINKS
from onceflow.scenario import Scenario

__all__ = ["FailPoint", "FlinkPlan", "SavepointPoint", "TRANSLATORS", "translatable", "translate"]

#: built-in operator kinds with a Flink equivalent (user operators have none: their
#: code is Python)
OPERATOR_KINDS = ("source", "map", "filter", "flat_map", "reduce", "window", "sink")
#: how each sink kind is written on Flink
SINK_KINDS = ("two_phase", "idempotent", "append")
#: the model phases a failing operator can reproduce, and the Flink hook it throws in
PHASES = {
    "alignment": "snapshot",            # the barrier arrived: fails before its snapshot
    "after_sync_snapshot": "snapshot",  # the synchronous snapshot of the checkpoint
    "notify_complete": "notify",        # CheckpointListener.notifyCheckpointComplete
    "stop_savepoint": "stop_savepoint",  # the notification of a stop's savepoint
}
WHICH = {"any": 0, "checkpoint": 1, "savepoint": 2}
#: why a fault kind has no equivalent in a local Flink run
WHY_NOT = {
    "worker_crash": "killing a TaskManager with its slots needs a cluster of several "
                    "TaskManagers; the local MiniCluster runs one",
    "coordinator_crash": "a JobManager crash and recovery needs HA services (ZooKeeper or "
                         "Kubernetes), which a local run does not have",
    "notify": "Flink's JobManager-to-task RPC cannot be made to lose, delay, duplicate or "
              "reorder a notification",
    "storage": "failing or slowing one checkpoint upload needs a faulty file-system plug-in",
    "store": "the sink's output is a local file; it cannot be made to refuse a commit",
    "latency_spike": "network latency is not controllable in a local run",
    "slow_subtask": "a subtask's speed is not controllable in a local run",
}

#: real milliseconds: Flink's checkpoint interval is at least this
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 1000
#: the sources' pace keeps a real run between these (the model's pace, scaled)
MIN_RUN_SECONDS = 0.2
MAX_RUN_SECONDS = 30.0


@frozen
class FailPoint:
    """Subtask `subtask` of vertex `vertex` fails once at `point` (see FailOnce in the Java)."""

    fault: int       # index in scenario.faults
    vertex: int      # index in topology.vertices
    subtask: int
    point: str       # record | progress | snapshot | notify | stop_savepoint
    n: int = 0
    which: int = 0   # 0 any snapshot, 1 checkpoints, 2 savepoints
    k: int = 0       # progress: checkpoints completed first

    @property
    def label(self) -> str:
        return f"faults[{self.fault}]"


@frozen
class SavepointPoint:
    """A savepoint triggered once the sources have read `records` records."""

    records: int
    stop: bool
    drain: bool
    restore: int  # restore parallelism after a stop; 0 the job's own; -1 no restore


@frozen
class FlinkPlan:
    scenario: Scenario
    faults: tuple[FailPoint, ...]
    savepoints: tuple[SavepointPoint, ...]
    interval_ms: int
    pause_nanos: int   # the source's pace, per record and subtask
    timeout_s: int     # per savepoint request


def _processed_before(result: RunResult, where: str, at: float) -> int:
    """Records subtask `where` processed in the model's first attempt before time `at`."""
    count = 0
    for time, kind, name, detail in result.trace:
        if time >= at:
            break
        if kind == "failed":
            break
        if kind == "process" and name == where and detail and isinstance(detail[0], list):
            count += len(detail[0])
    return count


def _read_before(result: RunResult, at: float) -> int:
    """Records that reached the first operator (all subtasks) before time `at`."""
    first = result.scenario.topology.vertices[1].uid
    prefix = first + "["
    count = 0
    for time, kind, name, detail in result.trace:
        if time >= at:
            break
        if kind == "process" and name.startswith(prefix) and detail and isinstance(detail[0], list):
            count += len(detail[0])
    return count


def _target(scenario: Scenario, target: str) -> tuple[int, int]:
    uid, _, rest = target.partition("[")
    subtask = int(rest.rstrip("]"))
    for i, v in enumerate(scenario.topology.vertices):
        if v.uid == uid:
            return i, subtask
    raise Untranslatable("fault target", f"no vertex {uid!r}")  # validated scenarios never get here


def _crash(i: int, fault: Crash, scenario: Scenario, model: RunResult) -> FailPoint:
    vertex, subtask = _target(scenario, fault.target)
    before = _processed_before(model, fault.target, fault.at)
    return FailPoint(i, vertex, subtask, "record", before + 1)


def _phase_crash(i: int, fault: PhaseCrash, scenario: Scenario, model: RunResult) -> FailPoint:
    point = PHASES.get(fault.phase)
    if point is None:
        raise Untranslatable(
            f"faults[{i}] (phase_crash at {fault.phase})",
            "it happens inside Flink's runtime or a connector, where no operator can throw; "
            f"phases that translate: {', '.join(PHASES)}")
    vertex, subtask = _target(scenario, fault.target)
    return FailPoint(i, vertex, subtask, point, fault.checkpoint, WHICH[fault.snapshot])


def _progress_crash(i: int, fault: Any, scenario: Scenario, model: RunResult) -> FailPoint:
    """`progress_crash`: the target's `record`-th record (counted per attempt) once at
    least `after_checkpoints` checkpoints completed, as Flink's own failing mappers."""
    vertex, subtask = _target(scenario, fault.target)
    return FailPoint(i, vertex, subtask, "progress", fault.record, k=fault.after_checkpoints)


#: fault class -> translator(index, fault, scenario, model run) -> FailPoint.
#: A fault class without an entry has no Flink equivalent (refused, named).
TRANSLATORS: dict[type, Callable[[int, Any, Scenario, RunResult], FailPoint]] = {
    Crash: _crash,
    PhaseCrash: _phase_crash,
}
if "progress_crash" in FAULT_KINDS:  # faults timed by progress, where the model has them
    TRANSLATORS[FAULT_KINDS["progress_crash"]] = _progress_crash


def translate(scenario: Scenario, model: RunResult) -> FlinkPlan:
    """The Flink plan of `scenario`; `model` is the model's run of it (for fault timing)."""
    vertices = scenario.topology.vertices
    for i, v in enumerate(vertices):
        if v.kind not in OPERATOR_KINDS:
            raise Untranslatable(f"topology.vertices[{i}] ({v.uid}: {v.kind})",
                                 "a user operator is Python code; only the built-in operators "
                                 f"({', '.join(OPERATOR_KINDS[1:-1])}) run on Flink")
    if scenario.sink not in SINK_KINDS:
        spec = SINKS.get(scenario.sink)
        raise Untranslatable(f"sink ({scenario.sink})",
                             "a user sink is Python code; only two_phase, idempotent and append "
                             "run on Flink" + (" (it is registered here)" if spec else ""))
    if scenario.source != "log":
        raise Untranslatable(f"source ({scenario.source})",
                             "a user source is Python code; only the built-in log source runs "
                             "on Flink")
    w = scenario.workload
    if (scenario.start_position.mode != "earliest" or w.produce_interval
            or w.first_produce > 0):
        raise Untranslatable("start_position / workload.produce_interval",
                             "the Flink job reads a log that exists from the start, from its "
                             "beginning; a log produced while the job runs, or a start at "
                             "'latest' or a timestamp, does not translate")
    if scenario.mutants:
        raise Untranslatable(f"mutants ({', '.join(scenario.mutants)})",
                             "mutants are bugs planted in the model; real Flink has none of them")
    faults: list[FailPoint] = []
    for i, fault in enumerate(scenario.faults):
        translator = TRANSLATORS.get(type(fault))
        if translator is None:
            kind = getattr(type(fault), "kind_name", type(fault).__name__)
            raise Untranslatable(
                f"faults[{i}] ({kind})",
                WHY_NOT.get(kind, "no Flink equivalent") + " (translatable: crash, phase_crash)")
        faults.append(translator(i, fault, scenario, model))
    savepoints: list[SavepointPoint] = []
    for i, sp in enumerate(scenario.savepoints):
        if sp.drain:
            raise Untranslatable(f"savepoints[{i}] (stop --drain)",
                                 "where a drained job's input ends depends on timing, so the "
                                 "model's and Flink's outputs cover different inputs")
        # a plain savepoint is restored by the model on a side timeline; Flink's run goes on
        restore = (sp.restore_parallelism or 0) if sp.stop else -1
        savepoints.append(SavepointPoint(_read_before(model, sp.at), sp.stop, sp.drain, restore))
    interval = int(min(MAX_INTERVAL_MS, max(MIN_INTERVAL_MS, scenario.checkpoints.interval)))
    return FlinkPlan(scenario, tuple(faults), tuple(savepoints), interval,
                     _pace(scenario, model, interval), timeout_s=60)


def _pace(scenario: Scenario, model: RunResult, interval_ms: int) -> int:
    """Nanoseconds each source subtask waits per record, so that Flink's run sees as many
    records per checkpoint interval as the model's did (real time = simulated time x
    interval_ms / scenario interval), within MIN_RUN_SECONDS..MAX_RUN_SECONDS in all."""
    first = scenario.topology.vertices[1].uid + "["
    count, last = 0, 0.0
    for time, kind, name, detail in model.trace:
        if kind == "process" and name.startswith(first) and detail and isinstance(detail[0], list):
            count += len(detail[0])
            last = time
    records = scenario.workload.records
    if not records:
        return 0
    scale = interval_ms / scenario.checkpoints.interval  # real ms per simulated ms
    seconds = (last * scale / 1000) * (records / count) if count else MIN_RUN_SECONDS
    seconds = min(MAX_RUN_SECONDS, max(MIN_RUN_SECONDS, seconds))
    readers = min(scenario.topology.vertices[0].parallelism, scenario.workload.splits)
    return int(seconds * 1e9 / max(1, -(-records // readers)))
    return FlinkPlan(scenario, tuple(faults), tuple(savepoints), interval, pause, timeout_s=60)


def translatable(scenario: Scenario) -> tuple[Scenario, list[str]]:
    """`scenario` without the faults and mutants Flink cannot reproduce, and what was
    dropped (one line each); the rest is left for `translate` to judge."""
    keep, dropped = [], []
    for i, fault in enumerate(scenario.faults):
        kind = getattr(type(fault), "kind_name", type(fault).__name__)
        if type(fault) not in TRANSLATORS:
            dropped.append(f"faults[{i}] ({kind}): {WHY_NOT.get(kind, 'no Flink equivalent')}")
        elif isinstance(fault, PhaseCrash) and fault.phase not in PHASES:
            dropped.append(f"faults[{i}] (phase_crash at {fault.phase}): inside Flink's runtime")
        else:
            keep.append(fault)
    if scenario.mutants:
        dropped.append(f"mutants ({', '.join(scenario.mutants)}): bugs planted in the model")
    from attrs import evolve  # noqa: PLC0415

    return evolve(scenario, faults=tuple(keep), mutants=()), dropped
