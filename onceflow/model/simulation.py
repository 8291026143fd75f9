"""`run(scenario)` and `restore(result, snapshot)`: the entry points of the model."""

from __future__ import annotations

import hashlib

from attrs import evolve, field, frozen

from onceflow.errors import RestoreError
from onceflow.model.job import Job
from onceflow.model.records import Record
from onceflow.model.rescaling import UnsupportedRescale, redistribute_channel_state
from onceflow.model.snapshot import CHECKPOINT, SAVEPOINT, Snapshot
from onceflow.model.trace import Trace, store_digest
from onceflow.stores import Entry, Store, fork_of
from onceflow.scenario import MAX_PARALLELISM_LIMIT, SavepointRequest, Scenario, Topology
from onceflow.timelines import RestoreStep, TimelineSpec

__all__ = ["RunResult", "follow", "restore", "run", "timeline_of"]


@frozen(eq=False)
class RunResult:
    """What one timeline of a run left behind."""

    scenario: Scenario
    status: str
    end_time: float
    trace: Trace = field(repr=False)
    store: Store = field(repr=False)
    snapshots: tuple[Snapshot, ...] = field(repr=False)
    retained: tuple[Snapshot, ...] = field(repr=False)
    restarts: int
    timeline: int = 0
    restored_from: Snapshot | None = None
    parent: "RunResult | None" = field(default=None, repr=False)
    faults_fired: tuple[dict[str, object], ...] = ()
    run_id: str = ""
    savepoint_requests: dict[int, SavepointRequest] = field(factory=dict, repr=False)
    stopped_with: int | None = None
    error: str | None = None
    #: why the restore was refused, as Flink refuses it (a finished operator behind one
    #: that had not finished: `onceflow.model.finished`); the timeline then failed at once
    refused: str | None = None
    error_component: str = ""
    error_traceback: tuple[str, ...] = ()
    drained_at: float | None = None
    drained_offsets: dict[int, int] = field(factory=dict, repr=False)
    #: The store's version when this timeline started (what it holds from before).
    store_start: int = 0
    #: How this timeline was restored: "fork" (into the store as it stood when the
    #: snapshot completed), "rollback" (into the store as it stands later), or None.
    restored_into: str | None = None
    #: When this timeline started (a rollback starts when the store it restores into stood).
    started: float = 0.0
    #: The restore that made this timeline from its parent (None: the original run).
    step: RestoreStep | None = None
    _digests: dict[str, str] = field(factory=dict, repr=False, init=False)

    def snapshot(self, snapshot_id: int) -> Snapshot:
        for s in self.snapshots:
            if s.id == snapshot_id:
                return s
        raise KeyError(f"no completed snapshot {snapshot_id} in this run")

    @property
    def digest(self) -> str:
        """What the run's outcome depends on, as one hex string: its trace and every
        operation its sinks made on the store (a sink that writes differently from the
        same input changes it)."""
        cached = self._digests.get("run")
        if cached is None:
            store = self.store_digest
            cached = self._digests["run"] = hashlib.blake2b(
                f"{self.trace.digest()}|{store}".encode(), digest_size=16).hexdigest()
        return cached

    @property
    def store_digest(self) -> str:
        cached = self._digests.get("store")
        if cached is None:
            cached = self._digests["store"] = store_digest(getattr(self.store, "ops", ()))
        return cached

    def committed(self) -> list[Record]:
        """The output a read-committed reader sees at the end of the run."""
        return self.store.read_committed(self.end_time)

    def committed_entries(self) -> list[Entry]:
        return self.store.entries(self.end_time)

    def uncommitted(self) -> list[Record]:
        return self.store.read_uncommitted(self.end_time)

    @property
    def checkpoints(self) -> tuple[Snapshot, ...]:
        return tuple(s for s in self.snapshots if s.kind == CHECKPOINT)

    @property
    def savepoints(self) -> tuple[Snapshot, ...]:
        return tuple(s for s in self.snapshots if s.kind == SAVEPOINT)

    @property
    def records_in(self) -> int:
        return self.scenario.workload.records

    def summary(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "status": self.status,
            "mode": self.scenario.checkpoints.mode,
            "sink": self.scenario.sink,
            "records_in": self.records_in,
            "records_out": len(self.committed()),
            "checkpoints_completed": len(self.checkpoints),
            "savepoints_completed": len(self.savepoints),
            "restarts": self.restarts,
            "end_time": self.end_time,
            "events": len(self.trace),
            "faults_fired": list(self.faults_fired),
        }


def _run_id(scenario: Scenario) -> str:
    return hashlib.blake2b(scenario.to_json().encode(), digest_size=8).hexdigest()


def _finish(job: Job, scenario: Scenario, *, parent: RunResult | None = None,
            restored_from: Snapshot | None = None, step: RestoreStep | None = None) -> RunResult:
    return RunResult(
        scenario=scenario, status=job.status, end_time=job.end_time or job.env.now,
        trace=job.trace, store=job.store, snapshots=tuple(job.coordinator.history),
        retained=tuple(job.coordinator.retained), restarts=job.restarts,
        timeline=job.timeline, restored_from=restored_from, parent=parent,
        faults_fired=tuple(job.faults_fired), run_id=job.run_id,
        savepoint_requests=dict(job.savepoint_requests),
        stopped_with=job.stopping if job.status == "finished" else None,
        drained_at=job.drained_at, drained_offsets=dict(job.drained_offsets), error=job.error,
        refused=job.refused, error_component=job.error_component, error_traceback=job.error_traceback,
        store_start=job.store_start, restored_into=job.restored_into,
        started=job.started, step=step)


def run(scenario: Scenario) -> RunResult:
    """Run `scenario` to its end (finished, failed, or stuck at the horizon)."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"run() takes a Scenario, got {type(scenario).__name__}")
    job = Job(scenario, run_id=_run_id(scenario))
    _install_faults(job)
    job.run()
    return _finish(job, scenario)


def restore(result: RunResult, snapshot: Snapshot, parallelism: int | None = None, *,
            topology: Topology | None = None, into: str = "fork",
            at: float | None = None,
            savepoints: tuple[SavepointRequest, ...] = ()) -> RunResult:
    """Start a fresh job from `snapshot` of `result`, on its own timeline.

    `into="fork"` restores into the external store as it stood when the snapshot
    completed (a crash right after it); `into="rollback"` into the store as it
    stands at the end of `result`, or at the later moment `at` (stop the job,
    run on, restore an older snapshot: a rollback, an A/B upgrade), and the
    restored job starts then.
    Any snapshot, checkpoint or savepoint, aligned or unaligned, may be restored
    at another `parallelism` (every vertex rescaled to it) or into an upgraded job
    graph (`topology`): state is matched by operator uid, keyed state moves by key
    group, list state is split round-robin, in-flight channel state is
    redistributed as Flink does (`model/rescaling.py`); every uid that holds state
    must still exist with the same max parallelism.  `savepoints` are requested on
    the restored timeline (times from its start), so a restored timeline's
    snapshots can be restored in turn (rescale chains).
    """
    if not isinstance(result, RunResult):
        raise RestoreError(f"result must be the RunResult of run() or restore(), got "
                           f"{type(result).__name__}")
    if into not in ("fork", "rollback"):
        raise RestoreError(f"into must be 'fork' or 'rollback', got {into!r:.60}")
    if not isinstance(snapshot, Snapshot) or snapshot.run != result.run_id or \
            snapshot.timeline != result.timeline or \
            not any(s is snapshot for s in result.snapshots):
        raise RestoreError(
            f"{getattr(snapshot, 'label', snapshot)!r} is not a completed snapshot of this run; "
            "pick one from result.snapshots")
    scenario = result.scenario
    upgraded = topology
    if topology is None:
        topology = scenario.topology
    elif not isinstance(topology, Topology):
        raise RestoreError(f"topology must be a onceflow.Topology, got {type(topology).__name__}")
    if parallelism is not None:
        limit = min(MAX_PARALLELISM_LIMIT, topology.max_parallelism)
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or \
                not 1 <= parallelism <= limit:
            raise RestoreError(f"parallelism must be between 1 and {limit}, got {parallelism!r}")
        topology = topology.with_parallelism(parallelism)
    if not isinstance(savepoints, tuple) or not all(
            isinstance(s, SavepointRequest) for s in savepoints):
        raise RestoreError("savepoints must be a tuple of onceflow.SavepointRequest")
    _check_compatible(snapshot, topology)
    restored_scenario = _restored_scenario(scenario, topology, savepoints)
    label = _fork_label(result, snapshot, parallelism) + ("-rollback" if into == "rollback" else "")
    if into == "rollback":
        if at is None or at >= result.end_time:
            version, start = result.store.version(), max(result.end_time, snapshot.completed)
        elif not isinstance(at, (int, float)) or at < snapshot.completed:
            raise RestoreError(f"a rollback moment must be at or after t={snapshot.completed:g}, "
                               f"when {snapshot.label} completed; got {at!r}")
        else:
            ops = result.store.ops
            version = max(snapshot.store_version,
                          next((i for i, op in enumerate(ops) if op[1] > at), len(ops)))
            start = float(at)
        label += f"-at{start:g}" if at is not None and start < result.end_time else ""
        store = fork_of(result.store, version, label=label)
    else:
        store = fork_of(result.store, snapshot.store_version, label=label)
        start = None
    job = Job(restored_scenario, store=store, initial=snapshot, timeline=result.timeline + 1,
              run_id=result.run_id, start=start)
    job.restored_into = into
    job.run()
    step = RestoreStep(snapshot.id, snapshot.kind, into, parallelism,
                       at if into == "rollback" and start < result.end_time else None,
                       savepoints, upgraded)
    return _finish(job, restored_scenario, parent=result, restored_from=snapshot, step=step)


def timeline_of(result: RunResult) -> TimelineSpec:
    """The restores that lead from the original run to `result`'s timeline."""
    steps: list[RestoreStep] = []
    while result.parent is not None and result.step is not None:
        steps.append(result.step)
        result = result.parent
    return TimelineSpec(tuple(reversed(steps)))


def follow(result: RunResult, timeline: TimelineSpec) -> RunResult:
    """The timeline of `result` (an original run) that `timeline` names, restored step
    by step; RestoreError if a step names a snapshot the timeline before it lacks."""
    current = result
    for i, step in enumerate(timeline.steps):
        snapshot = next((s for s in current.snapshots
                         if s.id == step.snapshot and s.kind == step.snapshot_kind), None)
        if snapshot is None:
            where = "the original run" if i == 0 else f"the timeline after restore {i}"
            have = ", ".join(f"{s.kind} {s.id}" for s in current.snapshots) or "none"
            raise RestoreError(f"{where} has no completed {step.snapshot_kind} "
                               f"{step.snapshot} to restore (it has: {have}); the token was "
                               "made from another scenario or another onceflow version: "
                               "replay it with the onceflow that printed it")
        current = restore(current, snapshot, step.parallelism, topology=step.topology,
                          into=step.into, at=step.at, savepoints=step.savepoints)
        if step.chain:
            current = mark_chain(current)
    return current


def mark_chain(result: RunResult) -> RunResult:
    """`result` as a link of its scenario's rescale chain (judged as one)."""
    assert result.step is not None
    return evolve(result, step=evolve(result.step, chain=True))


#: restored scenarios of the last few runs: every restore of a run has the same one
#: (validating a scenario costs as much as a small restored timeline)
_RESTORED: dict[tuple[Scenario, Topology, tuple[SavepointRequest, ...]], Scenario] = {}


def _restored_scenario(scenario: Scenario, topology: Topology,
                       savepoints: tuple[SavepointRequest, ...]) -> Scenario:
    """The scenario a restored timeline runs: the job's (rescaled or upgraded) graph, its
    own savepoints, no faults and no rescale chain (a frozen value: shared safely)."""
    key = (scenario, topology, savepoints)
    hit = _RESTORED.get(key)
    if hit is None:
        hit = evolve(scenario, topology=topology, savepoints=savepoints, faults=(),
                     **_no_rescales(scenario))
        if len(_RESTORED) >= 32:
            _RESTORED.clear()
        _RESTORED[key] = hit
    return hit


def _no_rescales(scenario: Scenario) -> dict[str, object]:
    """A restored timeline does not follow the scenario's rescale chain itself."""
    return {"rescales": ()} if getattr(scenario, "rescales", ()) else {}


def _check_compatible(snapshot: Snapshot, topology: object) -> None:
    from onceflow.scenario import Topology  # noqa: PLC0415

    assert isinstance(topology, Topology)
    if snapshot.max_parallelism != topology.max_parallelism:
        raise RestoreError(
            f"{snapshot.label} was taken with max_parallelism {snapshot.max_parallelism}, "
            f"the job has {topology.max_parallelism}; max parallelism never changes")
    from onceflow.components.globalcommitter import global_uid  # noqa: PLC0415

    uids = {v.uid for v in topology.vertices}
    uids.add(global_uid(topology.vertices[-1].uid))  # a sink's global committer
    missing = sorted(set(snapshot.state) - uids)
    if missing:
        raise RestoreError(f"{snapshot.label} holds state of operator uid {missing[0]!r}, "
                           "which the job does not have")
    if snapshot.has_channel_state:
        try:  # refuses in-flight data on edges the job lost
            redistribute_channel_state(snapshot, topology)
        except UnsupportedRescale:
            pass  # Flink fails the restore itself: the restored job fails (Job.deploy)


def _install_faults(job: Job) -> None:
    """Hook the scenario's fault plan into the job (see `onceflow.faults`)."""
    if job.scenario.faults:
        from onceflow.faults.injector import install  # noqa: PLC0415

        install(job)


def _fork_label(result: RunResult, snapshot: Snapshot, parallelism: int | None) -> str:
    """Names a restored timeline's store (the file --keep-store keeps)."""
    at = f"-p{parallelism}" if parallelism is not None else ""
    return f"{result.run_id}-t{result.timeline + 1}-from-{snapshot.kind}{snapshot.id}{at}"
