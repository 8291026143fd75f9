"""The properties: each a function over a RunResult that raises `Violation`.

`check(result)` runs them all, the restores from every snapshot included,
and raises the first violation.  Expected output always comes from the oracle
(`onceflow.properties.oracle`), never from another simulation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterator

from onceflow.cost import MAX_RESTORED_CHECKPOINTS
from onceflow.errors import OperatorError
from onceflow.model.keygroups import subtask_for_key
from onceflow.model.records import END_OF_INPUT, Record
from onceflow.model.simulation import RunResult, mark_chain, restore, run, timeline_of
from onceflow.model.snapshot import SAVEPOINT, Snapshot
from onceflow.properties.rollback import rollback_restores
from onceflow.properties.visibility import premature_visibility
from onceflow.plugins import plugins_for
from onceflow.properties.guarantees import AT_LEAST_ONCE, EXACTLY_ONCE, guarantee_along
from onceflow.properties.oracle import (canonical, cut_offsets, expected_output, expected_state,
                                       order_fixed)
from onceflow.properties.placement import partitioning
from onceflow.properties.violation import Finding, RecordIssue, Violation, describe_faults, issue
from onceflow.registry import OPERATORS, sink_spec
from onceflow.token import encode

__all__ = [
    "PROPERTIES",
    "check",
    "consistent_cut",
    "determinism",
    "exactly_once",
    "exactly_once_after_restores",
    "liveness",
    "no_loss",
    "read_committed_isolation",
    "chain_timelines",
    "rescale_chain",
    "restores_of",
    "judge_timeline",
    "judged_snapshots",
    "sample_checkpoints",
    "snapshots_resolve",
]

MAX_RECORDS_SHOWN = 5


# -- helpers -----------------------------------------------------------------------------

def _root(result: RunResult) -> RunResult:
    while result.parent is not None:
        result = result.parent
    return result


def promised_on(result: RunResult, expect: str | None = None) -> bool:
    """Is exactly-once promised on this timeline (or expected by the caller)?  Flink's
    promise for the original run, along every run the timeline descends from."""
    if expect is not None:
        return expect == EXACTLY_ONCE
    lineage = []
    timeline: RunResult | None = result
    while timeline is not None:
        lineage.append(timeline.scenario)
        timeline = timeline.parent
    return guarantee_along(reversed(lineage)) == EXACTLY_ONCE


def timeline_label(result: RunResult) -> str:
    if result.restored_from is None:
        return "the original run"
    s = result.restored_from
    p = result.scenario.topology.vertices[0].parallelism
    parent = result.parent
    assert parent is not None
    before = {v.uid: v.parallelism for v in parent.scenario.topology.vertices}
    rescaled = (" at parallelism " + str(p)
                if any(v.parallelism != before.get(v.uid) for v in result.scenario.topology.vertices)
                else "")
    into = ""
    if result.restored_into == "rollback":
        end = result.started >= parent.end_time
        into = (f", rolled back into the store as it stood at t={result.started:g} "
                + ("(the end of the run it was taken in)" if end else "(later than the snapshot)"))
    label = f"restored from {s.kind} {s.id} (completed t={s.completed:g}){rescaled}{into}"
    if parent.restored_from is not None:
        label += f", on the timeline {timeline_label(parent)}"
    return label


def _finding(result: RunResult, prop: str, anomaly: str, summary: str, *,
             records: tuple[RecordIssue, ...] = (), details: tuple[str, ...] = (),
             snapshot: Snapshot | None = None) -> Violation:
    root = _root(result)
    snap = snapshot or result.restored_from
    timeline = timeline_of(result)
    return Violation(Finding(
        property=prop, anomaly=anomaly, summary=summary, timeline=timeline_label(result),
        records=records, snapshot=f"{snap.kind} {snap.id} (completed t={snap.completed:g})"
        if snap else None, faults=describe_faults(root),
        token=encode(root.scenario, timeline),
        digest=root.digest, details=details + _mutant_note(root),
        plugins=plugins_for(root.scenario, timeline)))


def _mutant_note(root: RunResult) -> tuple[str, ...]:
    if root.scenario.mutants:
        return (f"mutants on: {', '.join(root.scenario.mutants)}",)
    return ()


def expected_records(result: RunResult) -> list[Record]:
    """The oracle's committed output for this timeline."""
    scenario = _root(result).scenario
    if result.stopped_with is not None:
        sp = result.snapshot(result.stopped_with)
        per_key = expected_output(scenario, cut_offsets(scenario, sp),
                                  end_of_input=sp.input_ended or _drained(result, sp))
        held = held_records(result.scenario.topology, sp)
        if held:
            # records an operator keeps in its state (to emit them later, as a
            # write-ahead buffer does) stay in the savepoint when the job stops; the
            # job resumed from it emits them
            per_key = {k: [r for r in rs if r.id not in held] for k, rs in per_key.items()}
    else:
        # also after a stop --drain whose savepoint failed: Flink fails over to the latest
        # checkpoint and reads the whole input again
        per_key = expected_output(scenario)
    out = [r for rs in per_key.values() for r in rs]
    if sink_spec(scenario.sink).upsert:
        out = list({r.id: r for r in out}.values())
    return out


def _drained(result: RunResult, snapshot: Snapshot) -> bool:
    request = result.savepoint_requests.get(snapshot.id)
    return bool(request and request.drain)


# -- 1. end-to-end exactly-once ------------------------------------------------------------

def exactly_once(result: RunResult) -> None:
    """The committed output (read-committed) equals the oracle's, in canonical form."""
    if result.status != "finished":
        return
    expected = expected_records(result)
    got = result.committed()
    topology = result.scenario.topology
    spec = sink_spec(result.scenario.sink)
    if result.stopped_with is not None and not spec.transactional:
        # Without transactions, output of an abandoned attempt that ran past the
        # stop-with-savepoint stays in the store; it is overwritten when the job is
        # resumed, so exactly-once effects are judged on the resumed timeline only.
        full = {r.id for rs in expected_output(_root(result).scenario).values() for r in rs}
        got = [r for r in got if r.id not in full or r.id in {e.id for e in expected}]
        got = list({r.id: r for r in got}.values()) if spec.upsert else got
    closed = _windows_closed(result)
    ordered = order_fixed(topology) and not list_state_moved(result)
    if canonical(got, topology, windows_closed=closed, ordered=ordered) == canonical(
            expected, topology, windows_closed=closed, ordered=ordered):
        return
    raise _diagnose(result, "exactly_once", expected, got)


def held_records(topology: Any, snapshot: Snapshot) -> frozenset[str]:
    """The ids of the Records the operators between source and sink hold in their state
    in `snapshot` (a buffer of records waiting to be emitted, found in any nesting of
    lists, tuples and dicts)."""
    ids: set[str] = set()

    def walk(value: Any, depth: int) -> None:
        if isinstance(value, Record):
            ids.add(value.id)
        elif depth < 6 and isinstance(value, (list, tuple)):
            for item in value:
                walk(item, depth + 1)
        elif depth < 6 and isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)

    for v in topology.vertices[1:-1]:
        walk(snapshot.state.get(v.uid), 0)
    return frozenset(ids)


def list_state_moved(result: RunResult) -> bool:
    """Did a restore on this timeline's chain rescale an operator (not the sink) that held
    list state?  Its items (records it held, say) are redistributed over the new subtasks,
    Flink's round-robin split, so what they emit later is ordered against the records the
    other subtasks pass on as in Flink: by timing, not by the topology."""
    while result.restored_from is not None:
        snapshot = result.restored_from
        for v in result.scenario.topology.vertices[1:-1]:
            held = snapshot.state.get(v.uid)
            if (isinstance(held, tuple) and any(held)
                    and snapshot.parallelism.get(v.uid, v.parallelism) != v.parallelism):
                return True
        if result.parent is None:
            break
        result = result.parent
    return False


def _windows_closed(result: RunResult) -> bool:
    """Did every window fire (the input ended) on this timeline?"""
    if result.stopped_with is None:
        return True
    sp = result.snapshot(result.stopped_with)
    return sp.input_ended or _drained(result, sp)


def _diagnose(result: RunResult, prop: str, expected: list[Record], got: list[Record]) -> Violation:
    want = Counter(r.id for r in expected)
    have = Counter(r.id for r in got)
    by_id = {r.id: r for r in expected}
    by_id.update({r.id: r for r in got if r.id not in by_id})
    dup = sorted((i for i in have if have[i] > want.get(i, 0)), key=_id_order)
    lost = sorted((i for i in want if have.get(i, 0) < want[i]), key=_id_order)
    if dup:
        ids = dup
        anomaly, summary = "duplicate", f"{len(dup)} record(s) committed more often than once"
    elif lost:
        ids = lost
        anomaly, summary = "lost", f"{len(lost)} record(s) of the input never committed"
    else:
        return _diagnose_values(result, prop, expected, got)
    records = tuple(issue(by_id[i], want.get(i, 0), have.get(i, 0), result)
                    for i in ids[:MAX_RECORDS_SHOWN])
    more = (f"... and {len(ids) - MAX_RECORDS_SHOWN} more",) if len(ids) > MAX_RECORDS_SHOWN else ()
    return _finding(result, prop, anomaly, summary, records=records, details=more)


def _diagnose_values(result: RunResult, prop: str, expected: list[Record],
                     got: list[Record]) -> Violation:
    want = {r.id: r for r in expected}
    for r in got:
        w = want.get(r.id)
        if w is not None and w.value != r.value:
            anomaly = "duplicate" if r.value > w.value else "lost"
            return _finding(
                result, prop, anomaly,
                f"{r.id} committed with value {r.value}, expected {w.value}: keyed state "
                f"{'counted input twice' if r.value > w.value else 'missed input'}",
                records=(issue(r, 1, 1, result),))
    # same records, same values: the order differs
    pos_want: dict[int, list[str]] = {}
    for r in expected:
        pos_want.setdefault(r.key, []).append(r.id)
    pos_have: dict[int, list[str]] = {}
    for r in got:
        pos_have.setdefault(r.key, []).append(r.id)
    for key in sorted(pos_want):
        a, b = pos_want[key], pos_have.get(key, [])
        if a != b:
            i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            return _finding(result, prop, "reordered",
                            f"key {key}: {b[i]} committed where {a[i]} was expected "
                            f"(position {i} of the key's output)",
                            records=(issue(want[b[i]], 1, 1, result),))
    return _finding(result, prop, "reordered", "output differs from the oracle's in order")


def _id_order(record_id: str) -> tuple[int, str]:
    digits = "".join(c for c in record_id.split(".")[0] if c.isdigit())
    return (int(digits) if digits else 0, record_id)


# -- 2. exactly-once after restoring from any snapshot ---------------------------------------------

def restores_of(result: RunResult, *,
                sampled: bool = True) -> Iterator[tuple[Snapshot, int | None]]:
    """Every snapshot of the run to restore, with the parallelism to restore it at.

    Every savepoint; every checkpoint up to `MAX_RESTORED_CHECKPOINTS`, and beyond that
    count a sample of them (see `sample_checkpoints`): restoring all of them costs a
    run each, so judging would grow with the square of a run's length. A judged
    snapshot holding in-flight data (unaligned) is also restored rescaled, as Flink
    allows: down to parallelism 1 and up to twice the job's (at most 8), where channel
    state is merged and split by key-group ranges. `sampled=False` takes every
    checkpoint (a rescale chain's step names its snapshot among all of them).
    """
    chosen = sample_checkpoints(result) if sampled else None
    # a broadcast edge's fan-out is the parallelism: rescaling changes the output
    broadcast = any(v.edge == "broadcast" for v in result.scenario.topology.vertices)
    for snapshot in result.snapshots:
        if result.drained_at is not None and snapshot.input_ended:
            continue  # after a drain the input was cut short on purpose: nothing to resume
        if snapshot.kind == SAVEPOINT:
            if _drained(result, snapshot):
                continue  # a drained savepoint ends the job for good (its windows fired)
            request = result.savepoint_requests.get(snapshot.id)
            yield snapshot, (request.restore_parallelism if request and not broadcast else None)
        elif chosen is None or snapshot.id in chosen:
            yield snapshot, None
        else:
            continue  # beyond the sample: neither restored as is nor rescaled
        if snapshot.has_channel_state and not broadcast:
            yield from ((snapshot, p) for p in _rescaled(result.scenario.topology))


def _rescaled(topology: Any) -> list[int]:
    """Parallelisms other than the job's to restore in-flight data at: 1 and twice the
    largest (at most 8 and the max parallelism)."""
    now = [v.parallelism for v in topology.vertices]
    up = min(8, topology.max_parallelism, 2 * max(now))
    return [p for p in sorted({1, up}) if any(x != p for x in now)]


def judged_snapshots(result: RunResult) -> list[Snapshot]:
    """The snapshots the properties judge one by one: every savepoint, and the
    checkpoints `sample_checkpoints` picks (all of them up to its count)."""
    chosen = sample_checkpoints(result)
    return [s for s in result.snapshots
            if s.kind == SAVEPOINT or chosen is None or s.id in chosen]


def sample_checkpoints(result: RunResult) -> set[int] | None:
    """The ids of the checkpoints to restore when a run completed more than
    `MAX_RESTORED_CHECKPOINTS` of them (None: restore them all).

    Deterministic, from the run alone: the first and the last; the last one completed
    before each fault fired and the first after it (the failover targets and the
    windows around a crash); up to four that hold channel state (unaligned, spread
    over the run); then checkpoints spread evenly over the rest, to the count.
    """
    checkpoints = [s for s in result.snapshots if s.kind != SAVEPOINT]
    limit = MAX_RESTORED_CHECKPOINTS
    if len(checkpoints) <= limit:
        return None
    chosen: list[int] = []

    def take(snapshot: Snapshot) -> None:
        if snapshot.id not in chosen and len(chosen) < limit:
            chosen.append(snapshot.id)

    take(checkpoints[0])
    take(checkpoints[-1])
    for fired in sorted(f["time"] for f in result.faults_fired):
        before = [s for s in checkpoints if s.completed <= fired]
        after = [s for s in checkpoints if s.completed > fired]
        if before:
            take(before[-1])
        if after:
            take(after[0])
    inflight = [s for s in checkpoints if s.has_channel_state]
    for i in range(min(4, len(inflight))):
        take(inflight[i * len(inflight) // min(4, len(inflight))])
    n = len(checkpoints)
    for i in range(limit):
        take(checkpoints[i * n // limit])
    return set(chosen)


def exactly_once_after_restores(result: RunResult,
                                on_restore: Callable[[RunResult], None] | None = None, *,
                                expect: str | None = None) -> None:
    """Restoring each completed checkpoint (as of its completion) and each savepoint
    (at its drawn parallelism) yields the oracle's output on that timeline."""
    for snapshot, parallelism in restores_of(result):
        restored = restore(result, snapshot, parallelism)
        if on_restore is not None and restored.error is None:
            on_restore(restored)
        judge_restored(restored, promised_on(restored, expect))
    rescale_chain(result, on_restore, expect=expect)


def raise_restore_error(restored: RunResult, how: str) -> None:
    """A restored timeline whose user code raised is named as such, not judged."""
    if restored.error is not None:
        snapshot = restored.restored_from
        raise OperatorError(f"{restored.error} ({how} "
                            f"{snapshot.label if snapshot else 'a snapshot'})",
                            component=restored.error_component,
                            traceback=restored.error_traceback)


def judge_restored(restored: RunResult, promised: bool) -> None:
    """The properties of a restore of the original run (into the store as it stood
    when the snapshot completed)."""
    raise_restore_error(restored, "restored from")
    job_liveness(restored)
    no_loss(restored)
    if promised:
        exactly_once(restored)
        premature_visibility(restored)
    transactions_settle(restored)
    partitioning(restored)


def judge_timeline(timeline: RunResult, *, expect: str | None = None) -> None:
    """Judge one timeline of a run as `check()` judged it: the original run by every
    property, a restore, a rescale-chain link and a rollback each by theirs (a replay
    of a finding on that timeline)."""
    promised = promised_on(timeline, expect)
    step = timeline.step
    if timeline.restored_from is None or step is None:
        check(timeline, restores=False, deterministic=False, expect=expect)
    elif step.into == "rollback":
        from onceflow.properties.rollback import judge_rollback  # noqa: PLC0415

        judge_rollback(timeline, promised)
    elif step.chain:
        judge_chain_link(timeline, promised)
    else:
        judge_restored(timeline, promised)


def rescale_chain(result: RunResult, on_restore: Callable[[RunResult], None] | None = None, *,
                  expect: str | None = None) -> None:
    """Follow the scenario's rescale chain (`Scenario.rescales`) from the original run:
    each link restores a snapshot of the previous timeline at its parallelism, takes
    its savepoints, and is judged as a run of its own: every record committed once,
    every key on the subtask Flink's formula gives, keyed state a consistent cut."""
    if result.restored_from is not None:
        return
    for restored in chain_timelines(result):
        if on_restore is not None and restored.error is None:
            on_restore(restored)
        judge_chain_link(restored, promised_on(restored, expect))


def judge_chain_link(restored: RunResult, promised: bool) -> None:
    """The properties of a link of the scenario's rescale chain: a run of its own."""
    if restored.error is not None:
        raise OperatorError(f"{restored.error} ({timeline_label(restored)})")
    job_liveness(restored)
    no_loss(restored)
    if promised:
        exactly_once(restored)
        consistent_cut(restored)
        premature_visibility(restored)
    read_committed_isolation(restored)
    transactions_settle(restored)
    partitioning(restored)


def chain_timelines(result: RunResult) -> Iterator[RunResult]:
    """The timelines of the scenario's rescale chain, in order; it ends early where a
    timeline has no snapshot of the kind a step asks for."""
    current = result
    for step in result.scenario.rescales:
        snapshot = _chain_snapshot(current, step)
        if snapshot is None:
            return
        current = mark_chain(restore(current, snapshot, step.parallelism,
                                     savepoints=step.savepoints))
        yield current


def _chain_snapshot(result: RunResult, step: Any) -> Snapshot | None:
    candidates = list({id(s): s for s, _ in restores_of(result, sampled=False)
                       if step.snapshot == "any" or s.kind == step.snapshot}.values())
    if len(candidates) <= step.back:
        return None
    return candidates[-1 - step.back]


# -- 3. no loss -------------------------------------------------------------------------------

def no_loss(result: RunResult) -> None:
    """Every record of the oracle's output is committed at least once (any mode, any sink)."""
    if result.status != "finished" or not _ids_stable(_root(result).scenario):
        return
    expected = expected_records(result)
    committed = [e.record for e in result.store.entries(result.end_time, past_open=True)]
    have = Counter(r.id for r in committed)
    want = Counter(r.id for r in expected)
    lost = sorted((i for i in want if have.get(i, 0) == 0), key=_id_order)
    if not lost:
        transactions_settle(result)  # committed, but perhaps hidden from readers
    if lost:
        by_id = {r.id: r for r in expected}
        records = tuple(issue(by_id[i], want[i], 0, result) for i in lost[:MAX_RECORDS_SHOWN])
        raise _finding(result, "no_loss", "lost",
                       f"{len(lost)} record(s) of the input never committed", records=records)


def _ids_stable(scenario: Any) -> bool:
    """Is the set of output ids independent of keyed state values?

    Not when at-least-once barriers may double-count keyed state that an operator
    downstream dropping records by value (a filter) then judges: which records pass
    legitimately differs.
    """
    if scenario.checkpoints.mode != "at_least_once" and not scenario.mutants:
        return True
    seen_keyed = False
    for v in scenario.topology.vertices:
        if v.keyed:
            seen_keyed = True
        elif seen_keyed and _declares(v.kind, "drops_by_value"):
            return False
    return True


# -- 4. consistent cut --------------------------------------------------------------------------

def consistent_cut(result: RunResult) -> None:
    """Each snapshot's keyed state is the oracle's state after exactly its source offsets,
    less the input an unaligned snapshot keeps in flight as channel state."""
    scenario = _root(result).scenario
    if scenario.checkpoints.mode == "at_least_once":
        return  # not promised: state may hold records from after the barrier
    topology = result.scenario.topology
    source = topology.vertices[0].uid
    keyed = [v for v in topology.vertices if v.keyed]
    if not keyed:
        return
    windows_comparable = order_fixed(topology)
    position = {v.uid: i for i, v in enumerate(topology.vertices)}
    for snapshot in judged_snapshots(result):
        flight: tuple[frozenset[str], bool] | None = None
        offsets = cut_offsets(scenario, snapshot)
        ended = snapshot.input_ended or _drained(result, snapshot)
        want = expected_state(scenario, offsets, end_of_input=ended)
        for v in keyed:
            order_dependent = _declares(v.kind, "order_dependent_state")
            if order_dependent and not windows_comparable:
                continue
            if snapshot.has_channel_state:
                # in-flight input (unaligned): the records kept as channel state on the
                # way to v are in the cut but not yet in v's state
                flight = _in_flight_before(snapshot, topology, position[v.uid])
                if flight is None:
                    continue  # copies or derived records: no per-record accounting
                ids, end_in_flight = flight
                if end_in_flight and order_dependent:
                    continue  # which subtasks' windows fired depends on where it is in flight
                want = expected_state(scenario, offsets, end_of_input=ended and not end_in_flight,
                                      in_flight=ids)
            groups = snapshot.state.get(v.uid)
            if v.kind in OPERATORS and not (isinstance(groups, dict) and all(
                    isinstance(g, dict) for g in groups.values())):
                continue  # a user operator keeping list (or no) state: not comparable per key
            groups = groups or {}
            have = {k: val for group in groups.values() for k, val in group.items()}
            view = OPERATORS[v.kind].state_view if v.kind in OPERATORS else None
            if view is not None:  # what the fold keeps of each key's snapshot value
                have = {k: val for k, val in ((k, view(val)) for k, val in have.items())
                        if val is not None}
            expected_v = want[v.uid]
            gone = _finished_before(result, snapshot, v.uid)
            if gone:
                expected_v = {k: val for k, val in expected_v.items() if not gone(k)}
                have = {k: val for k, val in have.items() if not gone(k)}
            if have != expected_v:
                key = next(k for k in sorted(set(have) | set(expected_v))
                           if have.get(k) != expected_v.get(k))
                got, exp = have.get(key), expected_v.get(key)
                anomaly = "duplicate" if _bigger(got, exp) else "lost"
                raise _finding(
                    result, "consistent_cut", anomaly,
                    f"{snapshot.kind} {snapshot.id}: {v.uid} key {key} holds {got!r}, but the "
                    f"input before the snapshot's offsets gives {exp!r}",
                    snapshot=snapshot,
                    details=(f"source offsets in the snapshot: {dict(sorted(offsets.items()))}",)
                    + ((f"input records in flight before {v.uid}, kept as channel state and so "
                        f"left out of the expectation: {len(flight[0])}",)
                       if snapshot.has_channel_state and flight is not None else ()))


def _finished_before(result: RunResult, snapshot: Snapshot,
                     uid: str) -> Callable[[Any], bool] | None:
    """Which keys of `uid` may have no state in `snapshot`: those of subtasks that had
    finished before it, or before a snapshot this timeline was restored from (a finished
    subtask holds no state, FLIP-147's FinishedOperatorSubtaskState, and a restore of a
    partially finished operator starts its keys with none)."""
    cuts = [snapshot]
    timeline: RunResult | None = result
    while timeline is not None and timeline.restored_from is not None:
        cuts.append(timeline.restored_from)
        timeline = timeline.parent
    cuts = [c for c in cuts if c.finished and uid in c.parallelism]
    if not cuts:
        return None

    def gone(key: Any) -> bool:
        return any(f"{uid}[{subtask_for_key(key, c.parallelism[uid], c.max_parallelism)}]"
                   in c.finished for c in cuts)
    return gone


def _in_flight_before(snapshot: Snapshot, topology: Any,
                      index: int) -> tuple[frozenset[str], bool] | None:
    """Input record ids in the channel state of channels into vertices up to `index`,
    and whether an end of input is among them; None where ids do not identify input
    records (an operator upstream deriving new ids, such as a flat_map or a window, or
    broadcast copies)."""
    vertices = topology.vertices
    if any(_declares(v.kind, "derives_ids") for v in vertices[1:index]) or any(
            v.edge == "broadcast" for v in vertices[1:index + 1]):
        return None
    upto = {v.uid for v in vertices[:index + 1]}
    ids: set[str] = set()
    end = False
    for name, items in snapshot.channel_state.items():
        receiver = name.split("->", 1)[1].split("[", 1)[0]
        if receiver not in upto:
            continue
        for item in items:
            if item.__class__ is list:
                ids.update(r.id for r in item)
            elif item is END_OF_INPUT:
                end = True
    return frozenset(ids), end


def _declares(kind: str, trait: str) -> bool:
    """Does the operator `kind` declare `trait` (an OperatorSpec property)?  Sources
    and sinks declare nothing."""
    spec = OPERATORS.get(kind)
    return spec is not None and bool(getattr(spec, trait))


def _bigger(got: Any, exp: Any) -> bool:
    if got is None:
        return False
    if exp is None:
        return True
    a = got if isinstance(got, int) else got[1] + got[2] * 1_000_000
    b = exp if isinstance(exp, int) else exp[1] + exp[2] * 1_000_000
    return a > b


# -- 5. read-committed isolation ---------------------------------------------------------------------

def read_committed_isolation(result: RunResult) -> None:
    """What a read-committed reader saw at any snapshot stays visible: nothing it read is
    later removed by an abort."""
    if not sink_spec(result.scenario.sink).transactional or result.status == "stuck":
        return
    final_ids = Counter(r.id for r in result.committed())
    for snapshot in judged_snapshots(result):
        store = result.store.fork(snapshot.store_version)
        seen = Counter(r.id for r in store.read_committed(snapshot.completed))
        gone = sorted((i for i in seen if final_ids.get(i, 0) < seen[i]), key=_id_order)
        if gone:
            rec = next(r for r in store.read_committed(snapshot.completed) if r.id == gone[0])
            raise _finding(result, "read_committed_isolation", "uncommitted-read",
                           f"{gone[0]} was visible to read-committed readers at "
                           f"t={snapshot.completed:g} and later disappeared",
                           records=(issue(rec, seen[gone[0]], final_ids.get(gone[0], 0), result),),
                           snapshot=snapshot)


# -- 6. liveness ------------------------------------------------------------------------------

def liveness(result: RunResult) -> None:
    """The job finishes within the quiet period; no transaction stays open; readers move."""
    job_liveness(result)
    transactions_settle(result)


def job_liveness(result: RunResult) -> None:
    """The job finishes within the quiet period (or fails only where Flink cannot recover),
    and every snapshot a finished job started completed or was aborted."""
    if result.status == "stuck":
        pending = [d for _, kind, _, d in result.trace.events if kind == "trigger"]
        raise _finding(result, "liveness", "stuck",
                       f"the job had not finished {result.end_time:g} ms into the run "
                       f"(last checkpoint triggered: {pending[-1][0] if pending else 'none'})")
    if result.status == "failed":
        if not _legitimate_failure(result):
            raise _finding(result, "liveness", "stuck",
                           "the job failed: its restart attempts ran out",
                           details=_failures(result))
    snapshots_resolve(result)


def snapshots_resolve(result: RunResult) -> None:
    """Every checkpoint or savepoint a finished job triggered completed or was aborted.

    As in Flink, the coordinator aborts what is still pending when the job reaches
    a terminal state; a snapshot left hanging would leave its transactions and its
    savepoint request unresolved.  Only finished runs are judged.
    """
    if result.status != "finished":
        return
    triggered: dict[int, tuple[float, str]] = {}
    resolved: set[int] = set()
    for time, kind, where, detail in result.trace.events:
        if kind == "trigger":
            triggered[detail[0]] = (time, detail[1])
        elif kind in ("completed", "aborted", "abort") and where == "coordinator":
            resolved.add(detail[0])
    hanging = sorted(set(triggered) - resolved)
    if hanging:
        cid = hanging[0]
        time, kind = triggered[cid]
        more = (f"also unresolved: {', '.join(map(str, hanging[1:9]))}",) if hanging[1:] else ()
        raise _finding(result, "liveness", "stuck",
                       f"{kind} {cid} (triggered t={time:g}) neither completed nor was aborted, "
                       f"although the job finished at t={result.end_time:g}", details=more)


def transactions_settle(result: RunResult) -> None:
    """After the job finished no transaction stays open and read-committed readers move."""
    if result.status != "finished":
        return
    store = result.store
    blocking = store.blocking_transaction(result.end_time)
    if blocking is not None:
        raise _finding(result, "liveness", "stuck",
                       f"transaction {blocking.id} ({blocking.state}, begun t={blocking.begun:g}) "
                       "is still open after the job finished: read-committed readers are blocked "
                       "behind it")
    # a transaction that never wrote exists only in the client (as in Kafka, where the
    # broker learns of it with its first write): only those with data count
    open_txns = [t for t in store.unfinished(result.end_time) if t.positions]
    if open_txns:
        t = open_txns[0]
        raise _finding(result, "liveness", "stuck",
                       f"transaction {t.id} ({t.state}, begun t={t.begun:g}) is still open "
                       "after the job finished")


def _legitimate_failure(result: RunResult) -> bool:
    """Failures Flink does not recover from by itself: the user restores by hand."""
    if result.refused is not None:
        return True  # Flink refuses to start from that snapshot: the job never ran
    for _, kind, where, detail in result.trace.events:
        if kind == "failed" and where == "coordinator":
            return True  # coordinator lost without a durable checkpoint store
    return any(kind == "completed" and d[1] == SAVEPOINT and _stop_request(result, d[0])
               for _, kind, _, d in result.trace.events)


def _stop_request(result: RunResult, snapshot_id: int) -> bool:
    request = result.savepoint_requests.get(snapshot_id)
    return bool(request and request.stop)


def _failures(result: RunResult) -> tuple[str, ...]:
    return tuple(f"t={t:g} {where}: {d[0]}" for t, kind, where, d in result.trace.events
                 if kind == "failed")[:8]


# -- 7. determinism -----------------------------------------------------------------------------

def determinism(result: RunResult, *, failed: Violation | None = None) -> None:
    """Running the same scenario again gives the same digest (trace and store writes).

    With `failed` (the violation another property found), a differing digest is
    reported instead of it: the runs differ, so that verdict is not about the
    dataflow's guarantees but about code outside the scenario.
    """
    root = _root(result)
    again = run(root.scenario)
    if again.digest == root.digest:
        return
    i = root.trace.first_difference(again.trace)
    details = _first_difference(root, again, i)
    if i is None:  # the same trace: what the sinks wrote differs
        details = _store_difference(root, again)
    if failed is not None:
        f = failed.finding
        details += (f"not reported: {f.property} ({f.anomaly}: {f.summary}) on the first run; "
                    "a run that differs from itself says nothing about exactly-once",)
    raise _finding(root, "determinism", "nondeterministic",
                   f"two runs of one scenario gave digests {root.digest} and {again.digest}: "
                   f"{_suspect(root, again, i)} decided the run, not the scenario",
                   details=details) from failed


def _store_difference(root: RunResult, again: RunResult) -> tuple[str, ...]:
    from onceflow.model.trace import store_digest  # noqa: PLC0415

    a, b = list(getattr(root.store, "ops", ())), list(getattr(again.store, "ops", ()))
    for n, (x, y) in enumerate(zip(a, b)):
        if store_digest([x]) != store_digest([y]):
            return (f"the traces agree; the store's operation {n} differs: "
                    f"{_show_op(x)} in the first run, {_show_op(y)} in the second",)
    return (f"the traces agree; the store got {len(a)} operations in the first run, "
            f"{len(b)} in the second",)


def _show_op(op: Any) -> str:
    parts = []
    for v in op:
        if v.__class__ is list and v and isinstance(v[0], Record):
            parts.append(f"{len(v)} record(s) {', '.join(r.id for r in v[:4])}"
                         f"{', ...' if len(v) > 4 else ''}")
        else:
            text = repr(v)
            parts.append(text if len(text) <= 40 else text[:37] + "...")
    return "(" + ", ".join(parts) + ")"


def _suspect(root: RunResult, again: RunResult, i: int | None) -> str:
    """Who made the runs differ: the operator whose output first differs, if known."""
    if i is None and root.trace.digest() == again.trace.digest():
        sink = root.scenario.topology.vertices[-1]
        from onceflow.registry import SINKS  # noqa: PLC0415

        spec = SINKS.get(root.scenario.sink)
        module = getattr(getattr(spec, "factory", None), "__module__", "") or ""
        user = (" (a user sink)" if spec is not None and not module.startswith("onceflow")
                else "")
        return (f"sink {sink.uid!r} of kind {root.scenario.sink!r}{user}, which wrote "
                "differently from the same input,")
    producer = _producer(root, again, i)
    if producer is not None:
        v = producer
        user = " (a user operator)" if _is_user(v.kind) else ""
        return f"operator {v.uid!r} of kind {v.kind!r}{user}"
    users = [v for v in root.scenario.topology.vertices if _is_user(v.kind)]
    if users:
        return "something outside the scenario (suspects: user operator(s) " + ", ".join(
            repr(v.uid) for v in users) + ")"
    return "something outside the scenario (a global RNG, the clock, hash order, user code)"


def _is_user(kind: str) -> bool:
    spec = OPERATORS.get(kind)
    return spec is not None and not spec.builtin


def _producer(root: RunResult, again: RunResult, i: int | None) -> Any:
    """The vertex whose output (or own event) is the first to differ, if it can be told."""
    if i is None:
        return None
    events = root.trace.events if i < len(root.trace.events) else again.trace.events
    if i >= len(events):
        return None
    _, kind, where, _ = events[i]
    vertices = root.scenario.topology.vertices
    uid = where.rsplit("[", 1)[0]
    index = next((n for n, v in enumerate(vertices) if v.uid == uid), None)
    if index is None:
        return None
    if kind == "process" and index > 0:
        return vertices[index - 1]  # a task's input differs: its upstream operator wrote it
    if kind in ("read", "operator_error"):
        return vertices[index]
    return None


def _first_difference(root: RunResult, again: RunResult, i: int | None) -> tuple[str, ...]:
    if i is None:
        return ()
    a = root.trace.events[i] if i < len(root.trace.events) else None
    b = again.trace.events[i] if i < len(again.trace.events) else None
    if a is not None and b is not None and a[1:3] == b[1:3] and a[1] in ("process", "read"):
        mine, theirs = a[3][0], b[3][0]
        for x, y in zip(mine, theirs):
            if x != y:
                return (f"first difference: t={a[0]:g} {a[1]} at {a[2]}: {x.id} (key {x.key}) "
                        f"had value {x.value!r} in the first run, {y.id} (key {y.key}) value "
                        f"{y.value!r} in the second",)

    def show(event: Any) -> str:
        if event is None:
            return "(no more events)"
        t, kind, where, detail = event
        text = repr(detail)
        return f"t={t:g} {kind} at {where}: {text[:160] + '...' if len(text) > 160 else text}"
    return (f"first difference, event {i}:", f"  first run:  {show(a)}",
            f"  second run: {show(b)}")


PROPERTIES: dict[str, Callable[[RunResult], None]] = {
    "liveness": liveness,
    "exactly_once": exactly_once,
    "no_loss": no_loss,
    "read_committed_isolation": read_committed_isolation,
    "consistent_cut": consistent_cut,
    "exactly_once_after_restores": exactly_once_after_restores,
    "partitioning": partitioning,
    "visibility": premature_visibility,
    "determinism": determinism,
}


def check(result: RunResult, *, restores: bool = True, deterministic: bool = True,
          on_restore: Callable[[RunResult], None] | None = None,
          expect: str | None = None) -> None:
    """Run every property that the guarantee matrix promises for this scenario.

    `expect=EXACTLY_ONCE` judges the run as if exactly-once were promised (to show
    what an at-least-once cell of the matrix does).  With `deterministic`, a run
    that fails any property is first run again: when the two digests differ, the
    violation is `determinism` (nondeterministic), not what the first run showed; a
    clean run is run again when it runs user code (`runs_user_code`).
    """
    if result.error is not None:
        raise OperatorError(f"{result.error}: a bug in that component, not an exactly-once "
                            "violation", component=result.error_component,
                            traceback=result.error_traceback)
    if expect not in (None, EXACTLY_ONCE, AT_LEAST_ONCE):
        raise ValueError(f"expect must be {EXACTLY_ONCE!r} or {AT_LEAST_ONCE!r}, got {expect!r}")
    promised = promised_on(result, expect)
    try:
        job_liveness(result)
        no_loss(result)
        if promised:
            exactly_once(result)
            consistent_cut(result)
            premature_visibility(result)
        read_committed_isolation(result)
        transactions_settle(result)
        partitioning(result)
        if restores:
            exactly_once_after_restores(result, on_restore, expect=expect)
            rollback_restores(result, on_restore, expect=expect)
    except Violation as violation:
        if deterministic:
            determinism(result, failed=violation)
        raise
    if deterministic and runs_user_code(result.scenario):
        determinism(result)


def runs_user_code(scenario: Any) -> bool:
    """Does the scenario run a component defined outside onceflow (a registered
    operator, sink, source or store)?  Only those can make a clean run differ from
    itself: onceflow's own components are a pure function of the scenario (tested
    across processes and hash seeds), so a clean run of them alone is not run twice."""
    import onceflow.registry as registry  # noqa: PLC0415

    names = {v.kind for v in scenario.topology.vertices}
    names.update(str(getattr(scenario, f, "")) for f in ("sink", "store", "source"))
    for table in ("OPERATORS", "SINKS", "STORES", "SOURCES"):
        specs = getattr(registry, table, None)
        if not isinstance(specs, dict):
            continue
        for name in names:
            spec = specs.get(name)
            if spec is not None and not _builtin(spec):
                return True
    return False


def _builtin(spec: Any) -> bool:
    """Is every callable of a registry entry defined inside onceflow?"""
    fields = getattr(type(spec), "__attrs_attrs__", None)
    values = [getattr(spec, f.name) for f in fields] if fields else [spec]
    for value in values:
        if callable(value):
            module = getattr(value, "__module__", None) or ""
            if module != "onceflow" and not module.startswith("onceflow."):
                return False
    return True
