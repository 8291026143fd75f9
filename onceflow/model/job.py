"""The job: deploys tasks and channels for one attempt, fails over, restarts, finishes.

Failover restarts the whole job (all edges are potentially all-to-all, so
the failover region is the job) from the latest completed *checkpoint*:
sources seek, state is restored, two-phase sinks recover their transactions.
Savepoints are never used for failover.

Trace events of this module and of the tasks it deploys: `deploy`, one
`restore (snapshot id, kind)` per task that starts from a snapshot, one
`crash (attempt, reason)` per subtask that crashed (on the "coordinator" lane
for a lost coordinator) followed by the attempt's `failed`, `restart`,
`finished`.  When the job reaches a terminal state (finished, or an operator
error) the coordinator shuts down: every pending snapshot gets its `aborted`
event, as Flink's CHECKPOINT_COORDINATOR_SHUTDOWN.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

import simpy

from onceflow.cost import QUIET_PERIOD, horizon
from onceflow.model.channel import Channel
from onceflow.model.coordinator import CheckpointCoordinator
from onceflow.model.finished import FinishedStateError, check_finished_state
from onceflow.model.records import Barrier, CancelMarker, Record
from onceflow.model.rescaling import UnsupportedRescale, redistribute_channel_state
from onceflow.model.sinks import make_sink
from onceflow.model.snapshot import SAVEPOINT, Snapshot, list_union, state_for_subtask
from onceflow.model.source_coordinator import SourceCoordinator
from onceflow.model.task import SourceTask, Task
from onceflow.model.trace import Trace
from onceflow.model.usercode import check_operator, is_user_code
from onceflow.stores.protocol import StoreError
from onceflow.registry import operator_spec
from onceflow.stores import Store, make_store

if TYPE_CHECKING:
    from onceflow.scenario import Scenario, Vertex

__all__ = ["Attempt", "Job", "QUIET_PERIOD", "horizon"]

RUNNING, FINISHED, FAILED, STUCK, ERROR = "running", "finished", "failed", "stuck", "error"


class Attempt:
    """One deployment of the job's tasks; a failover ends it and starts the next."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.alive = True
        self.tasks: list[Task] = []
        self.sources: list[SourceTask] = []
        self.sinks: list[Task] = []
        self.channels: list[Channel] = []
        self.state_kinds: dict[str, str | None] = {}
        self.finished: dict[str, tuple[str, int, Any]] = {}
        #: operators whose list state is read back as a union (Flink's union list state)
        self.union_state: set[str] = set()
        self.sinks_ended = 0
        self.sinks_done = 0
        self.tasks_done = 0
        #: the sink's global committer (`components/globalcommitter.py`), if it has one
        self.global_task: Any = None


def make_operator(vertex: "Vertex", sink_kind: str, store: Any = None) -> Any:
    """A new operator for `vertex`: its registered factory (built-ins are registered too)."""
    if vertex.kind == "sink":
        return make_sink(sink_kind, store)
    return operator_spec(vertex.kind).factory(vertex.param)


class Job:
    def __init__(self, scenario: "Scenario", *, store: Store | None = None,
                 initial: Snapshot | None = None, timeline: int = 0, run_id: str = "",
                 start: float | None = None) -> None:
        self.scenario = scenario
        self.topology = scenario.topology
        # a restored timeline goes on from the moment its snapshot completed
        # (a rollback restore goes on from later: from where the external system stands)
        self.env = simpy.Environment(initial_time=start if start is not None else
                                     initial.completed if initial else 0.0)
        self.rng = random.Random(scenario.seed)
        self.schedule = scenario.schedule
        self.schedule_at = 0
        self.trace = Trace()
        self.mutants = frozenset(scenario.mutants)
        self.store = (store if store is not None else
                      make_store(scenario.store, txn_timeout=self._txn_timeout(),
                                 label=f"{run_id}-t{timeline}"))
        if getattr(self.store, "record_type", False) is None:
            self.store.record_type = Record  # rows a sink wrote by SQL read back as records
        self.store_start = self.store.version()
        #: the store as sinks and sources reach it (`ctx.store`): the store itself, or a
        #: view that applies the plan's store faults (`onceflow.faults.store`)
        self.sink_store: Any = self.store
        #: simulated ms the running task's last store calls took longer (a slow commit)
        self.stall = 0.0
        #: a committer operator is committing (its task waits for a slow commit, which
        #: is in flight until then; other callers' slow commits land at once)
        self.committing = False
        self.started = self.env.now
        self.restored_into: str | None = None
        self.initial = initial
        self.timeline = timeline
        self.run_id = run_id
        self.mutants = frozenset(scenario.mutants)
        self.coordinator = CheckpointCoordinator(self, initial.id + 1 if initial else 1)
        self.status = RUNNING
        self.attempt: Attempt | None = None
        self.attempts = 0
        self.restarts = 0
        self.stopping: int | None = None
        self.restoring: Snapshot | None = None
        self.savepoint_requests: dict[int, Any] = {}
        self.error: str | None = None
        #: why the restore was refused (Flink's VertexFinishedStateChecker), if it was
        self.refused: str | None = None
        self.error_component = ""
        self.error_traceback: tuple[str, ...] = ()
        self.drained_at: float | None = None
        self.recovered_coordinator = False  # the next restart follows a coordinator crash
        self.drained_offsets: dict[int, int] = {}
        self.end_time = 0.0
        self.phase_hooks: list[Callable[[Task, str, int], None]] = []
        self.notify_filter: Callable[[Task, int], list[float]] | None = None
        self.upload_filter: Callable[[Task, int], tuple[bool, float]] | None = None
        #: crashes timed by progress: called with (task, records it will have seen)
        self.progress_hook: Callable[[Task, int], None] | None = None
        self.progress_targets: set[str] = set()
        #: notifications held back (a reorder fault) until the next one to that subtask
        self.held: dict[str, list[tuple[float, Callable[[], None]]]] = {}
        self.faults_fired: list[dict[str, Any]] = []
        self.global_failover = False
        #: source subtasks that crashed in the latest failover (mutant splits-back-only-failed-reader)
        self.failed_readers: set[int] = set()
        #: the restore under way does not honour fully finished operators (a mutant)
        self.ignore_finished = False
        self.sources = SourceCoordinator(self, self.topology.vertices[0], initial)

    # -- helpers -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def _txn_timeout(self) -> float:
        scenario = self.scenario
        if self.mutant("short-txn-timeout"):
            # long enough for a checkpoint cycle, shorter than one plus a restart
            t = scenario.timing
            return (2 * scenario.checkpoints.interval + t.upload_time + 4 * t.rpc_latency
                    + 10 * t.latency)
        return scenario.txn_timeout

    def tie_break(self, count: int) -> int:
        """Which of `count` simultaneously ready inputs goes first: the scenario's drawn
        schedule while it lasts, then its seeded generator."""
        at = self.schedule_at
        if at < len(self.schedule):
            self.schedule_at = at + 1
            return self.schedule[at] % count
        return self.rng.randrange(count)

    def mutant(self, name: str) -> bool:
        return name in self.mutants

    def take_stall(self) -> float:
        """The extra time the calling task's store calls took; reset."""
        stall, self.stall = self.stall, 0.0
        return stall

    def finished_flag_lost(self, snapshot: Snapshot | None) -> bool:
        """Does restoring `snapshot` lose its fully finished sources (a mutant)?"""
        return bool(snapshot is not None and self.mutant("finished-on-restore-reruns")
                    and snapshot.fully_finished(self.topology.vertices[0].uid))

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` after `delay` simulated ms."""
        self.env.timeout(delay).callbacks.append(lambda _e: fn(*args))

    def notify(self, task: Task, checkpoint_id: int, action: Callable[[], None]) -> None:
        """Send a checkpoint notification to `task` (best effort: faults may interfere).

        A notification a reorder fault holds back goes out right after the next one sent
        to the same subtask (a newer checkpoint's), and so arrives after it."""
        if self.notify_filter is None:
            self.later(self.rpc_delay(), task.mail, action)
            return
        delays = self.notify_filter(task, checkpoint_id)
        if isinstance(delays, float):  # held back
            self.held.setdefault(task.name, []).append((delays, action))
            return
        rpc = self.rpc_delay()
        for extra in delays:
            self.later(rpc + extra, task.mail, action)
        held = self.held.pop(task.name, None)
        if held:
            # right behind the newer one (SimPy keeps the order of equal times)
            last = max(delays, default=0.0)
            for extra, older in held:
                self.later(rpc + last + extra, task.mail, older)

    def rpc_delay(self) -> float:
        """One message's latency from the coordinator: its order among simultaneous
        messages is drawn from the scenario's seed when the timing has jitter."""
        timing = self.scenario.timing
        if timing.jitter:
            return timing.rpc_latency + self.rng.random() * timing.jitter
        return timing.rpc_latency

    def phase(self, task: Task, name: str, checkpoint_id: int) -> None:
        """Task `task` reached phase `name` of snapshot `checkpoint_id` (fault hook)."""
        for hook in self.phase_hooks:
            hook(task, name, checkpoint_id)

    # -- running -------------------------------------------------------------------

    def run(self) -> None:
        if self.initial is not None and not self.may_restore(self.initial):
            return
        try:
            self.sources.start()
        except Exception as exc:  # the enumerator (user code) raised or broke the protocol
            self.component_error(f"source {self.scenario.source!r} enumerator", exc)
            return
        self.deploy(self.initial)
        self.coordinator.start()
        for request in self.scenario.savepoints:  # on a restored timeline: from its start
            self.later(request.at, self.savepoint, request)
        collecting = gc.isenabled()
        gc.disable()  # the run allocates much and frees little: collections are pure cost
        try:
            self.env.run(until=self.env.now + horizon(self.scenario))
        finally:
            if collecting:
                gc.enable()
        if self.status == RUNNING:
            self.status = STUCK
            self.end_time = self.env.now

    def may_restore(self, snapshot: Snapshot) -> bool:
        """Start from `snapshot` only where Flink would (False: the job failed to start).

        Flink's `VertexFinishedStateChecker` refuses a job whose finished operators follow
        ones that had not finished; the job fails before it runs, as here."""
        try:
            check_finished_state(snapshot, self.topology)
        except FinishedStateError as exc:
            self.refused = str(exc)
            self.trace.add(self.env.now, "restore_refused", "job", snapshot.id, self.refused)
            self.status = FAILED
            self.end_time = self.env.now
            return False
        return True

    def note_drain(self, offsets: dict[int, int]) -> None:
        """A source ended its input early for stop-with-savepoint --drain."""
        if self.drained_at is None:
            self.drained_at = self.env.now
        self.drained_offsets.update(offsets)

    def savepoint(self, request: Any) -> None:
        self.coordinator.trigger(SAVEPOINT, stop=request.stop, drain=request.drain,
                                 request=request)

    def deploy(self, snapshot: Snapshot | None) -> None:
        """Start a new attempt, restoring `snapshot` (None: from the beginning)."""
        self.attempts += 1
        self.ignore_finished = self.finished_flag_lost(snapshot)
        attempt = Attempt(self.attempts)
        self.attempt = attempt
        self.restoring = snapshot
        if self.drained_at is not None and not (snapshot and snapshot.input_ended):
            self.drained_at = None  # restored from before the drain: the whole input is read
            self.drained_offsets = {}
        scenario = self.scenario
        timing = scenario.timing
        vertices = self.topology.vertices
        layers: list[list[Task]] = []
        for i, vertex in enumerate(vertices):
            nxt = vertices[i + 1] if i + 1 < len(vertices) else None
            out_edge = nxt.edge if nxt else None
            out_p = nxt.parallelism if nxt else 0
            layer: list[Task] = []
            for s in range(vertex.parallelism):
                if i == 0:
                    task: Task = SourceTask(self, attempt, vertex, s, None, out_edge, out_p)
                    attempt.sources.append(task)  # type: ignore[arg-type]
                else:
                    try:
                        operator = make_operator(vertex, scenario.sink, self.sink_store)
                        if is_user_code(operator):
                            check_operator(operator)
                    except StoreError:
                        raise  # the external system failed: no verdict on this run
                    except Exception as exc:  # a user factory raised
                        self.operator_error(None, exc, vertex=vertex,
                                            where=f"{vertex.uid}[{s}] (its factory)")
                        attempt.alive = False
                        return
                    task = Task(self, attempt, vertex, s, operator, out_edge, out_p)
                layer.append(task)
            attempt.state_kinds[vertex.uid] = layer[0].operator.state_kind
            if (layer[0].operator.state_kind == "list"
                    and getattr(layer[0].operator, "union_state", False) is True):
                attempt.union_state.add(vertex.uid)
            layers.append(layer)
        attempt.sinks = list(layers[-1])
        if not self._deploy_global_committer(attempt, layers[-1]):
            return
        for i in range(1, len(vertices)):
            edge = vertices[i].edge
            pointwise = ((edge == "forward" and not self.mutant("unaligned-pointwise-rescale"))
                         or (edge == "broadcast" and not self.mutant("unaligned-broadcast")))
            for sender in layers[i - 1]:
                receivers = [layers[i][sender.subtask]] if edge == "forward" else layers[i]
                for receiver in receivers:
                    ch = Channel(self.env, sender.name, receiver, len(receiver.inputs),
                                 latency=timing.latency, jitter=timing.jitter, rng=self.rng,
                                 capacity=timing.channel_capacity, pointwise=pointwise)
                    ch.sender_task = sender
                    sender.outputs.append(ch)
                    receiver.inputs.append(ch)
                    attempt.channels.append(ch)
        attempt.tasks = [t for layer in layers for t in layer]
        for task in attempt.tasks:
            task.connect()
            # FLIP-147 (FLINK-21089): the tasks of an operator that had fully finished in
            # the snapshot finish at once, without running it again
            task.finished_on_restore = (snapshot is not None and not self.ignore_finished
                                        and snapshot.fully_finished(task.vertex.uid))
        if snapshot is not None:
            try:
                self._restore_channels(snapshot, layers)
            except UnsupportedRescale as exc:  # Flink's restore throws: the job cannot start
                self.trace.add(self.env.now, "failed", "job", f"restore failed: {exc}")
                attempt.alive = False
                self.status = FAILED
                self.end_time = self.env.now
                self.coordinator.shutdown("job failed")
                return
        maxp = self.topology.max_parallelism
        for task in attempt.tasks:
            uid = task.vertex.uid
            kind = attempt.state_kinds[uid]
            merged = snapshot.state.get(uid) if snapshot is not None else None
            if (kind == "splits" and merged and self.mutant("split-lost-on-rescale")
                    and snapshot.parallelism.get(uid) != task.vertex.parallelism):
                merged = merged.without(scenario.workload.splits - 1)
            restored = state_for_subtask(kind, merged, task.subtask, task.vertex.parallelism, maxp)
            task.start(restored, list_union(merged) if kind == "list" and merged is not None
                       else None)
        if attempt.global_task is not None:
            g = attempt.global_task
            merged = snapshot.state.get(g.vertex.uid) if snapshot is not None else None
            # FLIP-147: a committer subtask deployed as finished sends nothing, ever
            g.operator.ended.update(t.subtask for t in attempt.sinks if t.finished_on_restore)
            g.start(state_for_subtask("list", merged, 0, 1, maxp))
        label = f"{snapshot.kind} {snapshot.id}" if snapshot else "start"
        self.trace.add(self.env.now, "deploy", "job", attempt.number, label)

    def _deploy_global_committer(self, attempt: Attempt, sinks: list[Task]) -> bool:
        """Create the sink's global committer (parallelism 1), if the sink has one;
        False when the sink contradicts its registration (the run stops with the error)."""
        from onceflow.components.globalcommitter import GlobalCommitterTask  # noqa: PLC0415
        from onceflow.errors import ProtocolError  # noqa: PLC0415
        from onceflow.registry import sink_spec  # noqa: PLC0415

        sink = sinks[0]
        committer = getattr(sink.operator, "global_committer", None)
        declared = sink_spec(self.scenario.sink).global_committer
        if declared != (committer is not None):
            self.operator_error(sink, ProtocolError(
                f"was registered with global_committer={declared} but its "
                f"global_committer attribute is {'set' if committer is not None else 'None'}; "
                "pass global_committer= to register_sink to match the sink"))
            attempt.alive = False
            return False
        if committer is not None:
            attempt.global_task = GlobalCommitterTask(self, attempt, sink.vertex.uid,
                                                      sink.vertex.parallelism, committer)
            attempt.state_kinds[attempt.global_task.vertex.uid] = "list"
        return True

    def _restore_channels(self, snapshot: Snapshot, layers: list[list[Task]]) -> None:
        """Replay unaligned channel state ahead of any new data, redistributed to the new
        channels when the job was rescaled (`model/rescaling.py`)."""
        stateless = frozenset(uid for uid, kind in self.attempt.state_kinds.items()
                              if kind is None) if self.mutant("rescale-skips-stateless") \
            else frozenset()
        restored = redistribute_channel_state(
            snapshot, self.topology, skip_stateless=stateless,
            drop_downscaled_output=self.mutant("rescale-drops-output-state"),
            unfiltered=self.mutant("rescale-unfiltered-inflight"))
        for layer in layers[1:]:
            for receiver in layer:
                for ch in receiver.inputs:
                    items = restored.get(ch.name, [])
                    edge = receiver.vertex.edge
                    if edge == "forward" and self.mutant("unaligned-pointwise-rescale"):
                        # FLINK-21945: the forward channel's data goes to the neighbour
                        n = len(layer)
                        src = layer[(receiver.subtask - 1) % n].inputs[0]
                        items = restored.get(src.name, [])
                    elif edge == "broadcast" and self.mutant("unaligned-broadcast") and \
                            receiver.subtask != 0:
                        # FLINK-22815: subtask 0's broadcast state lands everywhere
                        first = layer[0].inputs[ch.index]
                        items = items + restored.get(first.name, [])
                    if items:
                        ch.prefill(items)
                        receiver.recovering += len(items)

    def fail(self, task: Task | None, reason: str, crashed: Sequence[Task] = ()) -> None:
        """Task `task` failed (None: the job, for a recovered coordinator): fail over.

        Each subtask that crashed (`crashed`, or else `task`) gets a `crash` event;
        then the job records `failed` and restarts every task.
        """
        attempt = self.attempt
        if attempt is None or not attempt.alive:
            return
        attempt.alive = False
        now = self.env.now
        self.failed_readers = set()
        for t in crashed or ((task,) if task is not None else ()):
            self.trace.add(now, "crash", t.name, attempt.number, reason)
            if isinstance(t, SourceTask):
                self.failed_readers.add(t.subtask)
        self.trace.add(now, "failed", task.name if task else "job", reason)
        for ch in attempt.channels:
            ch.close()
        for t in attempt.tasks:
            t.wake()
        self.coordinator.on_failover()
        self.sources.on_failover()
        self._close_readers(attempt)
        if task is None:
            self.global_failover = True
        if self.stopping is not None and not self.mutant("stop-savepoint-fallback"):
            self.status = FAILED  # never fall back behind a stop-with-savepoint
            self.end_time = self.env.now
            return
        self.stopping = None
        if self.restarts < self.scenario.restart.attempts:
            self.restarts += 1
            self.later(self.scenario.restart.delay, self.restart)
        else:
            self.status = FAILED
            self.end_time = self.env.now

    def component_error(self, what: str, exc: Exception) -> None:
        """A component outside the tasks (a source's split enumerator) raised or broke
        its protocol: stop the run and keep the error for the report."""
        self.operator_error(None, exc, vertex=self.topology.vertices[0], where="coordinator",
                            label=what)

    def operator_error(self, task: Task | None, exc: Exception, *,
                       vertex: "Vertex | None" = None, where: str = "",
                       label: str = "") -> None:
        """User code raised (or broke its protocol): stop the run and keep the error,
        naming the component, with its traceback folded, for the report."""
        from onceflow.errors import ProtocolError  # noqa: PLC0415
        from onceflow.model.usercode import component, fold_traceback, innermost, text  # noqa: PLC0415

        if self.status == ERROR:
            return
        vertex = vertex if vertex is not None else task.vertex  # type: ignore[union-attr]
        where = where or (task.name if task is not None else vertex.uid)
        self.error_component = label or (
            f"source {self.scenario.source!r} reader" if vertex.kind == "source"
            else component(vertex, self.scenario.sink))
        self.error_traceback = fold_traceback(exc)
        what = (str(exc) if isinstance(exc, ProtocolError)
                else f"raised {type(exc).__name__}: {text(str(exc), 160)}")
        self.error = (f"{self.error_component} {what} in {where} at t={self.env.now:g}"
                      f"{innermost(self.error_traceback)}")
        self.trace.add(self.env.now, "operator_error", where, type(exc).__name__,
                       text(str(exc), 160))
        attempt = self.attempt
        if attempt is not None:
            attempt.alive = False
            for t in attempt.tasks:
                t.wake()
        self.status = ERROR
        self.end_time = self.env.now
        self.coordinator.shutdown("job failed")

    def coordinator_crash(self, reason: str) -> None:
        """The coordinator is lost: recover from the durable checkpoint store, or fail."""
        if self.running:
            self.trace.add(self.env.now, "crash", "coordinator",
                           self.attempt.number if self.attempt else 0, reason)
        if self.scenario.checkpoints.durable_store:
            self.recovered_coordinator = True
            self.fail(None, reason)
            return
        self.trace.add(self.env.now, "failed", "coordinator", reason)
        attempt = self.attempt
        if attempt is not None:
            attempt.alive = False
            for ch in attempt.channels:
                ch.close()
            for t in attempt.tasks:
                t.wake()
        self.coordinator.on_failover()
        self.status = FAILED
        self.end_time = self.env.now

    def restart(self) -> None:
        if self.status != RUNNING:
            return
        snapshot = self.coordinator.latest_checkpoint()
        if self.recovered_coordinator and self.mutant("recovery-skips-latest-checkpoint"):
            # FLINK-22502: the latest checkpoint could not be retrieved; an older one is used
            retained = self.coordinator.retained
            snapshot = retained[-2] if len(retained) > 1 else self.initial
        self.recovered_coordinator = False
        self.trace.add(self.env.now, "restart", "job", self.restarts,
                       snapshot.id if snapshot else None)
        try:
            if self.finished_flag_lost(snapshot):
                # FLINK-21088: the flag is lost; a fully finished source keeps no
                # enumerator state, so its enumerator starts afresh
                self.global_failover = False
                self.sources.reset_to_checkpoint(None)
            elif self.global_failover:
                self.global_failover = False
                self.sources.reset_to_checkpoint(snapshot)
            else:
                self.sources.reset_subtasks(snapshot)
        except Exception as exc:  # the enumerator (user code) raised or broke the protocol
            self.component_error(f"source {self.scenario.source!r} enumerator", exc)
            return
        self.deploy(snapshot)

    # -- end of input and finishing ---------------------------------------------------

    def sink_ended(self, task: Task) -> None:
        attempt = task.attempt
        attempt.sinks_ended += 1
        if attempt.sinks_ended == len(attempt.sinks):
            if self.mutant("no-final-checkpoint"):
                self.finish()
            else:
                self.coordinator.request_final()

    def task_done(self, task: Task) -> None:
        """A task finished: the job finishes with its last task (FLIP-147), or, after a
        stop-with-savepoint, once its sinks committed it."""
        attempt = task.attempt
        attempt.tasks_done += 1
        if task.is_sink:
            attempt.sinks_done += 1
            if attempt.global_task is not None:
                attempt.global_task.send(task.subtask, "end", None)
        self.maybe_finish(attempt)

    def maybe_finish(self, attempt: Attempt) -> None:
        """Finish the job once its tasks (and the sink's global committer, which finishes
        when it committed everything) are done."""
        if attempt.global_task is not None and not attempt.global_task.done:
            return
        if attempt.tasks_done == len(attempt.tasks) or (
                self.stopping is not None and attempt.sinks_done == len(attempt.sinks)):
            self.finish()

    def finish(self) -> None:
        self.status = FINISHED
        self.end_time = self.env.now
        self.trace.add(self.env.now, "finished", "job")
        attempt = self.attempt
        if attempt is not None:
            attempt.alive = False
            for t in attempt.tasks:
                t.wake()
        # as Flink's coordinator shuts down with the job: what is pending is aborted
        # (the tasks are gone: nobody is notified)
        self.coordinator.shutdown("job finished")
        if attempt is not None:
            self._close_readers(attempt)
        try:
            self.sources.close()
        except Exception as exc:
            self.component_error(f"source {self.scenario.source!r} enumerator", exc)

    def _close_readers(self, attempt: Attempt) -> None:
        """Close every source reader of an attempt that ended (finished or failed over)."""
        for t in attempt.sources:
            try:
                t.close_reader()
            except Exception as exc:  # user code raised in close()
                self.operator_error(t, exc)
                return
