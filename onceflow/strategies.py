"""Hypothesis strategies that draw whole scenarios, and the same generator driven by a seed.

One generator serves both: `scenarios()` feeds it Hypothesis draws (so
failures shrink), `scenario_from_seed()` feeds it a seeded PRNG (so
`onceflow run --seed N` and the random baseline use the very same
distribution).  The draws are few and ordered for shrinking: fault-kind
switches and counts first, then sizes, then the details, so a failure
shrinks towards fewer faults, fewer records and keys, lower parallelism and
earlier phases.  The workload is described by parameters (a record count,
key count, skew and a seed), never record by record.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any, Callable, Protocol, Sequence

from attrs import evolve
from hypothesis import strategies as st

from onceflow.cost import data_time, slowest_idle_checkpoint

from onceflow.errors import ScenarioError
from onceflow.faults.plan import (CRASH_PHASES, IN_FLIGHT_OUTCOMES, SLOTS_PER_WORKER, CoordinatorCrash, Crash,
                                  LatencySpike, NotifyFault, PhaseCrash, ProgressCrash,
                                  ProgressLostTransaction,
                                  SlowSubtask,
                                  StorageFault, StoreFault, WorkerCrash)
from onceflow.mutants import validate_mutants
from onceflow.registry import OPERATORS, SINKS, SOURCES, OperatorSpec, operator_spec, sink_spec, unknown_message
from onceflow.scenario import (BARRIER_MODES, MAX_VERTICES, START_MODES, CheckpointConfig,
                               RescaleStep, RestartStrategy, SavepointRequest, Scenario,
                               StartPosition, Timing, Topology, Vertex, Workload)

__all__ = ["FAULT_GROUPS", "scenario_from_seed", "scenarios"]

#: Fault kinds switched on and off together in swarm testing.
FAULT_GROUPS = ("crash", "phase", "notify", "storage", "store", "network", "coordinator")

#: Groups whose faults strike at a time (rather than at a phase or a checkpoint).
_TIMED_GROUPS = ("crash", "store", "coordinator", "network")

#: The sinks drawn when none is pinned (simplest first, for shrinking): the built-ins.
_DRAWN_SINKS = ("two_phase", "idempotent", "append", "two_phase_global")
#: The operators drawn when none are pinned: the built-ins.
_DRAWN_OPERATORS = ("map", "reduce", "filter", "flat_map", "window")

_SINK_PHASES = ("pre_commit", "commit_before", "commit_in_flight", "commit_after",
                "recovery_commit", "stop_savepoint")
#: The phases only a sink's global committer passes (its subtask is the fault's target).
_GLOBAL_PHASES = ("global_commit_before", "global_commit_after")


class _Source(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...


class _HypothesisSource:
    __slots__ = ("draw",)

    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(_integers(lo, hi))


@lru_cache(maxsize=None)
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


class _RandomSource:
    __slots__ = ("rng",)

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


def _choice(src: _Source, options: tuple[Any, ...]) -> Any:
    return options[src.integer(0, len(options) - 1)]


def _flag(src: _Source) -> bool:
    return src.integer(0, 1) == 1


def _validate(mode: str | None, sink: str | None, operators: Any, max_records: int,
              max_faults: int, max_parallelism: int, mutants: Any,
              source: str | None = None) -> None:
    if mode is not None and (not isinstance(mode, str) or mode not in BARRIER_MODES):
        raise ScenarioError("mode", f"unknown barrier mode {mode!r:.60}; one of "
                                    f"{', '.join(BARRIER_MODES)}")
    if sink is not None and (not isinstance(sink, str) or sink not in SINKS):
        raise ScenarioError("sink", unknown_message("sink", sink, SINKS))
    if source is not None and (not isinstance(source, str) or source not in SOURCES):
        raise ScenarioError("source", unknown_message("source", source, SOURCES))
    if operators is not None:
        if isinstance(operators, str) or not isinstance(operators, (list, tuple)):
            raise ScenarioError("operators", "give a list of registered operator names in "
                                             f"pipeline order, got {operators!r}")
        if len(operators) > MAX_VERTICES - 2:
            raise ScenarioError("operators", f"{len(operators)} operators; at most "
                                             f"{MAX_VERTICES - 2} between source and sink")
        for name in operators:
            if not isinstance(name, str) or name not in OPERATORS:
                raise ScenarioError("operators", unknown_message("operator", name, OPERATORS))
    if not isinstance(max_records, int) or not 0 <= max_records <= 100_000:
        raise ScenarioError("max_records", f"must be between 0 and 100000, got {max_records!r}")
    if not isinstance(max_faults, int) or not 0 <= max_faults <= 8:
        raise ScenarioError("max_faults", f"must be between 0 and 8, got {max_faults!r}")
    if not isinstance(max_parallelism, int) or not 1 <= max_parallelism <= 8:
        raise ScenarioError("max_parallelism", f"must be between 1 and 8, got {max_parallelism!r}")
    if isinstance(mutants, str) or not isinstance(mutants, (list, tuple)):
        raise ScenarioError("mutants", "give a list of mutant names (onceflow mutants --help "
                                       f"lists them), got {mutants!r:.60}")
    validate_mutants(tuple(mutants))


def scenarios(*, mode: str | None = None, sink: str | None = None,
              operators: Sequence[str] | None = None, max_records: int = 120,
              max_faults: int = 4, max_parallelism: int = 4, savepoints: bool = True,
              mutants: tuple[str, ...] = (), store: str = "memory",
              source: str | None = None) -> st.SearchStrategy[Scenario]:
    """Whole scenarios: topology, workload, checkpoint config, sink, savepoints and faults.

    Pin any part with a keyword (`scenarios(mode="aligned", sink="two_phase")`);
    `operators=["my_op", "reduce"]` places exactly these registered operators
    between source and sink, in this order (parallelism, edges and params
    drawn); `sink` may name any registered sink, `source` any registered source
    (default: the built-in `log`).  `max_faults=0` draws fault-free scenarios;
    `store` names the external system.
    """
    ops = None if operators is None else tuple(operators) if isinstance(operators, list) else operators
    _validate(mode, sink, ops, max_records, max_faults, max_parallelism, mutants, source)
    _validate_store(store)
    pins = dict(mode=mode, sink=sink, operators=ops, max_records=max_records,
                max_faults=max_faults, max_parallelism=max_parallelism, savepoints=savepoints,
                mutants=tuple(mutants), store=store, source=source)

    @st.composite
    def build(draw: Any) -> Scenario:
        return generate(_HypothesisSource(draw), **pins)

    return build()


def scenario_from_seed(seed: int, *, mode: str | None = None, sink: str | None = None,
                       operators: Sequence[str] | None = None, max_records: int = 120,
                       max_faults: int = 4, max_parallelism: int = 4, savepoints: bool = True,
                       mutants: tuple[str, ...] = (), store: str = "memory",
                       source: str | None = None) -> Scenario:
    """The scenario that seed `seed` draws from the same generator as `scenarios()`."""
    if not isinstance(seed, int) or seed < 0:
        raise ScenarioError("seed", f"must be a non-negative integer, got {seed!r}")
    ops = None if operators is None else tuple(operators) if isinstance(operators, list) else operators
    _validate(mode, sink, ops, max_records, max_faults, max_parallelism, mutants, source)
    _validate_store(store)
    return generate(_RandomSource(seed), mode=mode, sink=sink, operators=ops,
                    max_records=max_records, max_faults=max_faults,
                    max_parallelism=max_parallelism, savepoints=savepoints,
                    mutants=tuple(mutants), store=store, source=source)


def _validate_store(store: str) -> None:
    from onceflow.registry import STORES  # noqa: PLC0415

    if not isinstance(store, str) or store not in STORES:
        raise ScenarioError("store", f"unknown store {store!r:.60}; one of "
                                     f"{', '.join(sorted(STORES))}")


def generate(src: _Source, *, mode: str | None, sink: str | None, max_records: int,
             max_faults: int, max_parallelism: int, savepoints: bool,
             mutants: tuple[str, ...], operators: tuple[str, ...] | None = None,
             store: str = "memory", source: str | None = None) -> Scenario:
    mode = mode or _choice(src, BARRIER_MODES)
    sink = sink or _choice(src, _DRAWN_SINKS)
    transactional = sink_spec(sink).transactional
    # swarm testing: each scenario switches on a subset of the fault groups
    groups = [g for g in FAULT_GROUPS if _flag(src)] if max_faults else []
    n_faults = src.integer(0, max_faults) if groups else 0
    records = src.integer(0, max_records)
    keys = src.integer(1, 8)
    splits = src.integer(1, 4)
    skew = float(src.integer(0, 2)) / 2
    topology = _topology(src, max_parallelism, broadcast=not sink_spec(sink).upsert,
                         operators=operators)
    interval = 0.5 * src.integer(1, 20)
    checkpoints = CheckpointConfig(
        mode=mode, interval=interval, timeout=50.0 + 10 * src.integer(0, 20),
        max_concurrent=src.integer(1, 2), retained=src.integer(1, 3),
        durable_store=src.integer(0, 3) > 0)
    timing = Timing(
        latency=0.1 * src.integer(1, 30), jitter=0.1 * src.integer(0, 20),
        buffer_records=_choice(src, (8, 4, 16, 32)), channel_capacity=src.integer(1, 8),
        record_cost=_choice(src, (0.1, 0.01, 0.03)), upload_time=0.1 * src.integer(0, 30), rpc_latency=0.1 * src.integer(1, 20))
    horizon = 5.0 + records * 0.02 + 10 * len(topology.vertices)
    plan = []
    if savepoints:
        for _ in range(src.integer(0, 2)):
            stop = _flag(src)
            plan.append(SavepointRequest(
                # the horizon overestimates the run (half of it is typical): aim early
                at=round(horizon * src.integer(0, 100) / 200, 2), stop=stop,
                drain=stop and _flag(src),
                restore_parallelism=src.integer(1, max_parallelism) if _flag(src) else None))
    # each fault is drawn behind its own switch, so that shrinking can drop any one of
    # them (not only the last) by turning the switch to its simplest value, off
    faults: list[Any] = []
    for _ in range(n_faults):
        if src.integer(0, 3):
            fault = _fault(src, groups, topology, horizon, transactional, plan, records,
                           global_committer=sink_spec(sink).global_committer)
            faults.append(fault)
            if (isinstance(fault, PhaseCrash) and fault.phase == "recovery_commit"
                    and len(faults) < max_faults):
                # a recovery commit happens only after a failover that restores pending
                # transactions: crash the same sink between a completion and its commit
                faults.append(PhaseCrash("notify_complete", fault.target, 0))
            if (isinstance(fault, PhaseCrash) and fault.phase == "commit_in_flight"
                    and len(faults) < max_faults):
                # only a slow commit is in flight long enough to be interrupted: slow the
                # first commits, long enough that a restart may come before one returns
                faults.append(StoreFault("slow_commit", 0.0, 10, "*",
                                         0.5 * src.integer(40, 100),
                                         _choice(src, IN_FLIGHT_OUTCOMES)))
            elif (isinstance(fault, StoreFault) and fault.effect == "slow_commit"
                    and fault.delay >= 10 and transactional and len(faults) < max_faults
                    and not sink_spec(sink).global_committer and _flag(src)):
                # and a slow commit is worth interrupting
                faults.append(PhaseCrash("commit_in_flight", _target(src, topology, sink=True),
                                         src.integer(0, 3)))
    # every fault may fail the job over once (a crash; a failed or expired checkpoint,
    # with no failure tolerated; a failed stop-with-savepoint), so may each stop; slow
    # commits once each (a task busy committing lets a checkpoint expire, and the restarted
    # attempt's recovery commit may be the next slow one)
    failovers = len(faults) + sum(r.stop for r in plan) + sum(
        f.times - 1 for f in faults if isinstance(f, StoreFault) and f.effect == "slow_commit")
    # the first tie-breaks among ready inputs are draws of their own (shrinking takes
    # them towards the first ready input); the rest come from the seed
    schedule = tuple(src.integer(0, 3) for _ in range(src.integer(0, 8)))
    # Flink's default tolerates no failed checkpoint (shrinks towards it); tolerating
    # some keeps the job running past aborted checkpoints, where their notifications act
    tolerable = max(0, src.integer(0, 4) - 2)
    checkpoints = evolve(checkpoints, tolerable_failed_checkpoints=tolerable)
    workload = Workload(records=records, keys=keys, splits=splits, skew=skew,
                        seed=src.integer(0, 2**16))
    restart = RestartStrategy(attempts=failovers + 2, delay=0.5 * src.integer(1, 20))
    seed = src.integer(0, 2**16)
    # drawn last, so that the draws before keep their meaning (seeds, shrunk examples)
    rescales: tuple[RescaleStep, ...] = ()
    if savepoints and not any(v.edge == "broadcast" for v in topology.vertices) and \
            src.integer(0, 3) == 0:
        topology = evolve(topology, max_parallelism=_choice(src, (128, 13, 8, 32768)))
        rescales = _rescale_chain(src, max_parallelism, bool(plan))
    if checkpoints.mode == "unaligned" and src.integer(0, 1) == 0:
        # start aligned, switch to unaligned after the timeout, drawn around when the
        # first barriers reach the tasks behind the sources (a trigger RPC, some hops),
        # so that checkpoints do switch (measured in NOTES.md)
        checkpoints = evolve(checkpoints, aligned_timeout=round(
            timing.rpc_latency + 0.5 * timing.latency * src.integer(0, 8), 2))
    workload, start = _log_and_start(src, workload, pinned_source=source is not None)
    stop_failure = _stop_failure(src, topology, plan, groups) if len(faults) < max_faults \
        else None
    if stop_failure is not None:
        restart = evolve(restart, attempts=restart.attempts + 1)  # it fails the job over
    if operators is None and checkpoints.mode != "unaligned" and src.integer(0, 3) == 3:
        # an operator with union list state behind the sources (as Flink's legacy sources
        # keep their offsets): no checkpoint completes while it is partly finished, so its
        # subtasks finish on one final checkpoint (FLINK-21080).  Not in unaligned mode,
        # where an overtaking barrier may give its subtasks different final checkpoints
        # and the first to finish then aborts every later one (NOTES.md, section aborts16)
        topology = _with_union_operator(topology)
        if ("notify" in groups and len(faults) + (stop_failure is not None) < max_faults
                and _flag(src)):
            # the completion that would let one of its subtasks finish is lost
            first = topology.vertices[1]
            faults.append(NotifyFault("lose", 0, f"{first.uid}[{src.integer(0, first.parallelism - 1)}]",
                                      0.0, "final"))
            restart = evolve(restart, attempts=restart.attempts + 1)  # one per fault
    while True:
        try:
            scenario = Scenario(
                topology=topology, workload=workload, checkpoints=checkpoints,
                timing=timing, restart=restart, sink=sink, savepoints=tuple(plan),
                faults=tuple(faults), mutants=tuple(mutants), schedule=schedule, seed=seed,
                store=store, rescales=rescales, source=source or "log",
                start_position=start)
            # a checkpoint taken while the input is in flight can take as long as the
            # input needs to drain: a shorter timeout expires every checkpoint, and with
            # no failure tolerated Flink fails such a job for good (a misconfigured job,
            # not a finding); faults (slowdowns, slow uploads) may still make a
            # checkpoint expire
            need = data_time(scenario) + slowest_idle_checkpoint(scenario)
            if scenario.checkpoints.timeout < need:
                scenario = evolve(scenario, checkpoints=evolve(
                    scenario.checkpoints, timeout=float(math.ceil(need + 1))))
            break
        except ScenarioError as e:
            # over the cost budget (onceflow/cost.py): halve the records, no new draw,
            # so scenarios within the budget are drawn exactly as before
            if e.field != "workload.records" or workload.records <= 1:
                raise
            workload = evolve(workload, records=workload.records // 2)
    if stop_failure is not None:
        try:
            scenario = evolve(scenario, faults=scenario.faults + (
                stop_failure(scenario.checkpoints.timeout),))
        except ScenarioError:
            pass  # over the cost budget with it: the scenario as drawn without it
    return scenario


def _stop_failure(src: _Source, topology: Topology, plan: list[SavepointRequest],
                  groups: list[str]) -> Callable[[float], StorageFault] | None:
    """A companion fault for a stop-with-savepoint in the plan (or None): its upload fails
    or outlasts the checkpoint timeout, so the stop fails with no crash, after the
    sources stopped or drained: Flink fails the job over and reads the input again
    (FLINK-21030, FLINK-26783 live there).  A crash would fail the job over anyway, and
    a storage fault aimed at savepoints, drawn with the others, rarely meets a stop.
    Drawn after every other draw, so that they keep their meaning; the delay of a slow
    upload is set from the timeout the scenario ends up with."""
    if not (any(r.stop for r in plan) and "storage" in groups and _flag(src)):
        return None
    effect = _choice(src, ("slow_upload", "fail_write"))
    target = "*" if _flag(src) else _target(src, topology)
    extra = 5.0 * src.integer(1, 20)

    def fault(timeout: float) -> StorageFault:
        delay = timeout + extra if effect == "slow_upload" else 0.0
        return StorageFault(effect, 0, target, delay, "savepoint")
    return fault


def _log_and_start(src: _Source, workload: Workload, *,
                   pinned_source: bool) -> tuple[Workload, StartPosition]:
    """How the log is produced (all there at the start, or before and while the job runs)
    and where a fresh start reads from (the beginning, the end, a timestamp).

    Drawn last, behind a switch of their own whose simplest value keeps the defaults, so
    that the draws before keep their meaning.  A source under test (pinned) meets a
    growing log and a start position in half of its scenarios, the built-in log in one
    of eight: they lengthen the run and matter most to a reader's own offset handling.
    """
    if src.integer(0, 1 if pinned_source else 7) < (1 if pinned_source else 7):
        return workload, StartPosition()
    interval = _choice(src, (0.0, 0.05, 0.2, 0.5))
    if interval:
        workload = evolve(workload, produce_interval=interval,
                          first_produce=-5.0 * src.integer(0, 4))
    mode = _choice(src, START_MODES)
    return workload, StartPosition(mode, 2.0 * src.integer(0, 10) if mode == "timestamp"
                                   else 0.0)


def _rescale_chain(src: _Source, max_p: int, savepoints_before: bool) -> tuple[RescaleStep, ...]:
    """One or two restores at other parallelisms (up to twice the job's), each from a
    checkpoint or a savepoint of the timeline before, with savepoints of their own."""
    steps: list[RescaleStep] = []
    for _ in range(src.integer(1, 2)):
        kind = "savepoint" if savepoints_before and _flag(src) else _choice(
            src, ("checkpoint", "any"))
        plan = tuple(SavepointRequest(at=0.5 * src.integer(0, 40), stop=_flag(src))
                     for _ in range(src.integer(0, 1)))
        steps.append(RescaleStep(src.integer(1, min(8, 2 * max_p)), kind, src.integer(0, 2),
                                 plan))
        savepoints_before = bool(plan)
    return tuple(steps)


def _topology(src: _Source, max_p: int, *, broadcast: bool,
              operators: tuple[str, ...] | None = None) -> Topology:
    # broadcast copies share their id: an idempotent sink would collapse them
    vertices = [Vertex("source", "source", src.integer(1, max_p))]
    if operators is None:
        for i in range(src.integer(0, 2)):
            kind = _choice(src, _DRAWN_OPERATORS)
            vertices.append(_vertex(src, f"{kind}{i}", kind, vertices, max_p, broadcast))
    else:
        specs = [operator_spec(name) for name in operators]
        for i, spec in enumerate(specs):
            uid = spec.name if operators.count(spec.name) == 1 else f"{spec.name}{i}"
            shuffle = broadcast if _may_shuffle(specs[i:]) else None
            vertices.append(_vertex(src, uid, spec.name, vertices, max_p, shuffle, pinned=True))
        # into the sink, records may be shuffled unless a keyed operator would then be
        # judged out of order
    vertices.append(_vertex(src, "sink", "sink", vertices, max_p, broadcast))
    return Topology(tuple(vertices))


def _with_union_operator(topology: Topology) -> Topology:
    """`topology` with the built-in operator that keeps union list state right behind the
    source, over a hash edge, at the source's parallelism (what followed is unchanged)."""
    source, rest = topology.vertices[0], topology.vertices[1:]
    tally = Vertex("tally", "tally", source.parallelism, "hash")
    return evolve(topology, vertices=(source, tally, *rest))


def _may_shuffle(rest: list[OperatorSpec]) -> bool:
    """May records reach the first of `rest` over a rebalance or broadcast edge?

    The oracle folds each key's records in order; where they arrive in a timing-
    dependent order, only operators whose outputs compare order-free can follow:
    a keyed operator that declares an order-independent aggregate, with nothing
    behind it that drops or multiplies ids (or does not declare what it does).
    """
    for i, spec in enumerate(rest):
        if spec.keyed and (spec.aggregate is None
                           or any(_drops_or_adds(s) for s in rest[i + 1:])):
            return False
    return True


def _drops_or_adds(spec: OperatorSpec) -> bool:
    """Does `spec` change which ids leave it, behind a keyed operator fed out of order?
    (A keyed one is judged by its own aggregate instead.)"""
    return not spec.keyed and spec.changes_ids


def _keeps_ids(name: str) -> bool:
    spec = OPERATORS[name]
    return not spec.keyed and spec.ids == "keep"


def _vertex(src: _Source, uid: str, kind: str, before: list[Vertex], max_p: int,
            broadcast: bool | None, *, pinned: bool = False) -> Vertex:
    """Vertex `kind` behind `before`; `broadcast` None allows no shuffling edge into it."""
    spec = OPERATORS.get(kind)
    if (not pinned and spec is not None and _drops_or_adds(spec) and any(v.keyed for v in before)
            and any(v.edge in ("rebalance", "broadcast") for v in before)):
        # the canonical form cannot compare an operator dropping or multiplying ids behind
        # a keyed operator fed out of order (even its set of output ids depends on timing):
        # draw the first drawn operator that keeps ids instead
        fallback = next(name for name in _DRAWN_OPERATORS if _keeps_ids(name))
        kind, uid = fallback, uid.replace(kind, fallback)
        spec = OPERATORS[kind]
    keyed = spec is not None and spec.keyed
    if keyed:
        edge = "hash"
    elif broadcast is None:
        edge = _choice(src, ("forward", "hash"))
    else:
        edge = _choice(src, ("forward", "hash", "rebalance", "broadcast")[:4 if broadcast else 3])
    parallelism = before[-1].parallelism if edge == "forward" else src.integer(1, max_p)
    lo, hi = spec.params if spec is not None else (0, 0)
    return Vertex(uid, kind, parallelism, edge, src.integer(lo, hi) if lo < hi else lo)


def _target(src: _Source, topology: Topology, *, sink: bool = False) -> str:
    vertices = topology.vertices
    vertex = vertices[-1] if sink else vertices[src.integer(0, len(vertices) - 1)]
    return f"{vertex.uid}[{src.integer(0, vertex.parallelism - 1)}]"


def _fault(src: _Source, groups: list[str], topology: Topology, horizon: float,
           transactional: bool, plan: list[SavepointRequest], records: int, *,
           global_committer: bool = False) -> Any:
    group = _choice(src, tuple(groups))
    if plan and group in _TIMED_GROUPS and _flag(src):
        # aim at the window right after a savepoint (between its completion and the
        # next checkpoint), where savepoint side effects and failover meet; a
        # savepoint takes 5-15 ms from trigger to completion
        at = round(_choice(src, tuple(plan)).at + 0.5 * src.integer(1, 40), 2)
    else:
        at = round(horizon * src.integer(0, 100) / 100, 2)
    if group == "phase":
        # only phases this scenario passes through: sink phases need a 2PC sink,
        # stop_savepoint needs a stop-with-savepoint
        phases = tuple(p for p in CRASH_PHASES
                       if (p not in _SINK_PHASES or transactional or p == "stop_savepoint")
                       and (p != "stop_savepoint" or any(r.stop for r in plan))
                       and (p not in _GLOBAL_PHASES or global_committer)
                       # a global committer's sink commits nothing itself: nothing in flight
                       and (p != "commit_in_flight" or not global_committer))
        # a stop-with-savepoint in the plan is a window worth aiming at directly
        stop_planned = any(r.stop for r in plan)
        phase = "stop_savepoint" if stop_planned and _flag(src) else _choice(src, phases)
        if global_committer and _flag(src):
            # a global committer's commit spans a checkpoint's transactions: worth aiming at
            phase = _choice(src, _GLOBAL_PHASES)
        elif transactional and not global_committer and src.integer(0, 2) == 0:
            # a commit in flight is a window of its own (it comes with a slow commit)
            phase = "commit_in_flight"
        # (a slow commit stretches the run: few checkpoints commit in flight)
        checkpoint = (0 if phase in ("stop_savepoint", "end_of_input")
                      else src.integer(0, 3) if phase == "commit_in_flight" else src.integer(0, 4))
        # a crash can wait for a savepoint's phases rather than any snapshot's
        snapshot = ("savepoint" if plan and phase not in ("stop_savepoint", "end_of_input")
                    and _flag(src) else "any")
        target = (f"{topology.vertices[-1].uid}.global[0]" if phase in _GLOBAL_PHASES
                  else _target(src, topology, sink=phase in _SINK_PHASES))
        return PhaseCrash(phase, target, checkpoint, snapshot)
    if group == "crash":
        how = src.integer(0, 2)
        if how == 1:
            subtasks = sum(v.parallelism for v in topology.vertices)
            workers = (subtasks + SLOTS_PER_WORKER - 1) // SLOTS_PER_WORKER
            return WorkerCrash(at, src.integer(0, workers - 1))
        if how == 2:
            # timed by progress, as Flink's tests time failures: after k completed
            # checkpoints, at the n-th record a subtask sees
            return ProgressCrash(_target(src, topology, sink=_flag(src)),
                                 1 + src.integer(0, max(1, records)) // 2, src.integer(0, 3))
        return Crash(at, _target(src, topology))
    if group == "notify":
        return NotifyFault(_choice(src, ("lose", "delay", "duplicate", "reorder")),
                           src.integer(0, 4), "*" if _flag(src) else _target(src, topology),
                           0.5 * src.integer(0, 20),
                           _choice(src, ("any", "complete", "aborted")))
    if group == "storage":
        effect = _choice(src, ("fail_write", "slow_upload"))
        # a failed savepoint (a stop-with-savepoint fails the job over) is a window of
        # its own: aim at the savepoints of the plan half the time
        aim = "savepoint" if plan and _flag(src) else "any"
        # a slow upload aimed at a savepoint may outlast the timeout (a savepoint that
        # expires is not counted, but a stop-with-savepoint's tasks fail)
        delay = (50.0 * src.integer(1, 6) if aim == "savepoint" and effect == "slow_upload"
                 else 5.0 * src.integer(0, 20))
        return StorageFault(effect, 0 if aim == "savepoint" else src.integer(0, 4),
                            "*" if _flag(src) else _target(src, topology), delay, aim)
    if group == "store":
        # half the store faults are transient commit failures (as before these were
        # drawn), a quarter lose a sink subtask's open transaction, a quarter slow commits
        how = src.integer(0, 3)
        if how == 2:
            if _flag(src):
                # timed by progress, as crashes can be: at the n-th record a sink subtask
                # writes, after k completed checkpoints
                return ProgressLostTransaction(_target(src, topology, sink=True),
                                               1 + src.integer(0, max(1, records)) // 2,
                                               src.integer(0, 3))
            # the horizon overestimates the run (half of it is typical): aim early, at a
            # moment a sink still writes (an armed fault waits for its next write)
            return StoreFault("lost_transaction", round(at / 2, 2), 1,
                              "*" if _flag(src) else _target(src, topology, sink=True))
        if how == 3:
            # up to 10 commits from a moment aimed early, so that slow commits reach the
            # end of the run (a final commit in flight when the job finishes)
            return StoreFault("slow_commit", round(at / 2, 2), src.integer(1, 10), "*",
                              0.5 * src.integer(1, 40), _choice(src, IN_FLIGHT_OUTCOMES))
        return StoreFault("commit_failure", at, src.integer(1, 3))
    if group == "coordinator":
        return CoordinatorCrash(at)
    if _flag(src):
        return LatencySpike(at, _target(src, topology), 2.0 * src.integer(1, 10),
                            1.0 * src.integer(1, 10))
    return SlowSubtask(at, _target(src, topology), 2.0 * src.integer(1, 10),
                       float(src.integer(2, 20)))
