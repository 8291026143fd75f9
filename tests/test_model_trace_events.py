"""The trace as the one record of a run: barriers, alignment, crashes, restores, outcomes.

Alignment is read from the trace alone here (no phase hooks that look into the
task): `barrier_received` per input channel, `aligned` when the last one came,
`barrier_sent` and `snapshot` after it, and the `process` events around them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import onceflow
from onceflow.properties.oracle import cut_offsets
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology, Vertex,
                      Workload)
from onceflow.faults.plan import CoordinatorCrash, Crash
from onceflow.model.job import Job
from onceflow.model.records import Record
from onceflow.model.simulation import RunResult, _finish
from onceflow.strategies import scenario_from_seed

Event = tuple[float, str, str, tuple[Any, ...]]

REDUCE = "reduce[0]"
SLOW_EXTRA_DELAY = 15.0
BARRIER_KINDS = ("barrier_sent", "barrier_received", "aligned", "barrier_overtaken",
                 "barriers_complete", "alignment_cancelled")


def two_input_scenario(mode: str, records: int = 200) -> Scenario:
    """reduce[0] has two inputs: channel 0 from map[0] (split 0), channel 1 from map[1]."""
    return Scenario(
        topology=Topology((
            Vertex("source", "source", 2),
            Vertex("map", "map", 2, "forward", 1),
            Vertex("reduce", "reduce", 1, "hash"),
            Vertex("sink", "sink", 1, "forward"),
        ), max_parallelism=8),
        workload=Workload(records=records, keys=8, splits=2),
        checkpoints=CheckpointConfig(mode=mode, interval=10),
        timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4))


def run_with_slow_channel(mode: str) -> RunResult:
    """Slow down reduce[0]'s channel 1, so that every barrier comes first on channel 0."""
    scenario = two_input_scenario(mode)
    job = Job(scenario)

    def hook(task: Any, name: str, _checkpoint_id: int) -> None:
        if task.name == REDUCE and name == "restore":
            task.inputs[1].extra_delay = SLOW_EXTRA_DELAY

    job.phase_hooks.append(hook)
    job.run()
    return _finish(job, scenario)


def at(events: list[Event], kind: str, where: str, snapshot_id: int) -> list[int]:
    """Indices of `kind` events of `where` about snapshot `snapshot_id`."""
    return [i for i, (_, k, w, d) in enumerate(events)
            if k == kind and w == where and d and d[0] == snapshot_id]


def processed(events: list[Event], where: str, lo: int, hi: int) -> list[Record]:
    return [r for _, k, w, d in events[lo:hi] if k == "process" and w == where for r in d[0]]


def outcomes(result: RunResult) -> dict[int, list[str]]:
    """Per triggered snapshot id: its outcomes (`completed`, `aborted`) in trace order."""
    out: dict[int, list[str]] = {}
    for _, kind, _, detail in result.trace.events:
        if kind == "trigger":
            out.setdefault(detail[0], [])
        elif kind in ("completed", "aborted"):
            out.setdefault(detail[0], []).append(kind)
    return out


# -- alignment, read from the trace ------------------------------------------------------------

def test_aligned_the_early_channel_is_blocked_until_aligned() -> None:
    result = run_with_slow_channel("aligned")
    events = result.trace.events
    assert result.status == "finished" and len(result.checkpoints) >= 2
    for snap in result.checkpoints:
        if snap.finished:
            continue  # FLIP-147: a sender that finished sends no barrier (nothing to align)
        n = snap.id
        received = at(events, "barrier_received", REDUCE, n)
        assert [events[i][3][1:] for i in received] == [(0, "map[0]"), (1, "map[1]")]
        (aligned,) = at(events, "aligned", REDUCE, n)
        (sent,) = at(events, "barrier_sent", REDUCE, n)
        (snapshot,) = at(events, "snapshot", REDUCE, n)
        # the early channel's barrier precedes the alignment; the late one completes it
        assert received[0] < received[1] < aligned < sent < snapshot
        first_time, aligned_time = events[received[0]][0], events[aligned][0]
        assert aligned_time > first_time
        assert events[aligned][3] == (n, "checkpoint", pytest.approx(aligned_time - first_time))
        # while aligning, nothing of the blocked channel 0 (split 0) was processed ...
        assert all(r.split == 1 for r in processed(events, REDUCE, received[0], aligned))
        # ... and after the alignment its buffered records come first, from the cut on
        after = [r for r in processed(events, REDUCE, aligned, len(events)) if r.split == 0]
        if after:
            assert after[0].offset == cut_offsets(result.scenario, snap)[0]
    # checkpoint 1 came mid-stream: channel 0 had more records behind its barrier
    first = result.checkpoints[0]
    (aligned,) = at(events, "aligned", REDUCE, first.id)
    assert [r for r in processed(events, REDUCE, aligned, len(events)) if r.split == 0]


def test_aligned_every_task_sends_each_barrier_once_and_receives_it_per_input() -> None:
    result = run_with_slow_channel("aligned")
    events = result.trace.events
    for snap in result.checkpoints:
        if snap.finished:
            continue  # FLIP-147: finished tasks take no part
        senders = sorted(w for _, k, w, d in events if k == "barrier_sent" and d[0] == snap.id)
        assert senders == ["map[0]", "map[1]", REDUCE, "source[0]", "source[1]"]
        receivers = sorted((w, d[1]) for _, k, w, d in events
                           if k == "barrier_received" and d[0] == snap.id)
        assert receivers == [("map[0]", 0), ("map[1]", 0), (REDUCE, 0), (REDUCE, 1),
                             ("sink[0]", 0)]
        # a barrier is received after it was sent, by the sender the event names
        for i, (time, kind, where, d) in enumerate(events):
            if kind == "barrier_received" and d[0] == snap.id:
                (j,) = at(events, "barrier_sent", d[2], snap.id)
                assert j < i and events[j][0] < time


def test_at_least_once_records_of_the_early_channel_pass_before_the_snapshot() -> None:
    result = run_with_slow_channel("at_least_once")
    events = result.trace.events
    assert not [e for e in events if e[1] == "aligned"]
    leaked = 0
    for snap in result.checkpoints:
        if snap.finished:
            continue  # FLIP-147: finished tasks take no part
        received = at(events, "barrier_received", REDUCE, snap.id)
        (complete,) = at(events, "barriers_complete", REDUCE, snap.id)
        (snapshot,) = at(events, "snapshot", REDUCE, snap.id)
        assert received[0] < received[1] < complete < snapshot
        assert events[complete][3] == (snap.id, "checkpoint", 0)
        leaked += sum(r.split == 0 for r in processed(events, REDUCE, received[0], complete))
    assert leaked, "nothing was processed on the early channel: the contrast shows nothing"


def test_unaligned_overtaking_and_channel_state_counts_match_the_snapshot() -> None:
    scenario = Scenario(
        topology=Topology((
            Vertex("source", "source", 2),
            Vertex("map", "map", 2, "rebalance", 1),
            Vertex("sink", "sink", 2, "hash"),
        ), max_parallelism=8),
        workload=Workload(records=200, keys=8, splits=2),
        checkpoints=CheckpointConfig(mode="unaligned", interval=5),
        timing=Timing(latency=1.0, jitter=2.0, record_cost=0.2, buffer_records=4),
        sink="two_phase", seed=5)
    result = onceflow.run(scenario)
    events = result.trace.events
    assert result.status == "finished" and result.checkpoints
    assert not [e for e in events if e[1] == "aligned"]  # nothing aligns: all exchanges
    kept = 0
    for snap in result.checkpoints:
        n = snap.id
        total = sum(len(item) for items in snap.channel_state.values() for item in items
                    if isinstance(item, list))
        completes = [events[i] for t in ("map[0]", "map[1]", "sink[0]", "sink[1]")
                     for i in at(events, "barriers_complete", t, n)]
        assert len(completes) == 4
        assert sum(e[3][2] for e in completes) == total
        kept += total
        for task in ("map[0]", "map[1]", "sink[0]", "sink[1]"):
            (first,) = at(events, "barrier_received", task, n)[:1]
            (overtaken,) = at(events, "barrier_overtaken", task, n)
            (snapshot,) = at(events, "snapshot", task, n)
            (complete,) = at(events, "barriers_complete", task, n)
            # the first barrier snapshots at once, before the last one is in
            assert first < snapshot < overtaken <= complete
            assert events[overtaken][3][1] == events[first][3][1]
            assert events[overtaken][0] == events[first][0]
    assert kept, "no in-flight record became channel state: the counts were not exercised"


# -- crashes, restores and outcomes ------------------------------------------------------------

def test_a_crash_and_the_restore_are_events_of_their_tasks() -> None:
    scenario = Scenario(
        workload=Workload(records=120, keys=4, splits=2),
        checkpoints=CheckpointConfig(interval=5.0),
        timing=Timing(record_cost=0.2, buffer_records=4),
        faults=(Crash(at=30.0, target="map[1]"),))
    result = onceflow.run(scenario)
    events = result.trace.events
    assert result.status == "finished" and result.restarts == 1
    (crash,) = [i for i, e in enumerate(events) if e[1] == "crash"]
    assert events[crash][2] == "map[1]" and events[crash][3][0] == 1  # attempt 1
    assert "crash of map[1]" in events[crash][3][1]
    assert events[crash + 1][1:3] == ("failed", "map[1]")
    (restart,) = [e for e in events if e[1] == "restart"]
    restored_id = restart[3][1]
    assert restored_id is not None, "the crash came before any checkpoint completed"
    restores = [e for e in events if e[1] == "restore"]
    tasks = {f"{v.uid}[{s}]" for v in scenario.topology.vertices for s in range(v.parallelism)}
    assert sorted(e[2] for e in restores) == sorted(tasks)
    assert {e[3] for e in restores} == {(restored_id, "checkpoint")}
    assert {e[0] for e in restores} == {restart[0]}
    # a task restores before it does anything else in its new attempt
    for task in tasks:
        mine = [e[1] for e in events if e[2] == task and e[0] >= restart[0]]
        assert mine[0] == "restore", (task, mine[:3])


def test_restoring_a_savepoint_is_a_restore_event_of_every_task() -> None:
    scenario = Scenario(
        workload=Workload(records=120, keys=4, splits=2),
        checkpoints=CheckpointConfig(interval=5.0),
        timing=Timing(record_cost=0.2, buffer_records=4),
        savepoints=(SavepointRequest(at=12.0),))
    result = onceflow.run(scenario)
    (savepoint,) = result.savepoints
    assert not [e for e in result.trace.events if e[1] == "restore"]  # a fresh start
    restored = onceflow.restore(result, savepoint, parallelism=2)
    restores = [e for e in restored.trace.events if e[1] == "restore"]
    assert len(restores) == sum(v.parallelism for v in restored.scenario.topology.vertices)
    assert {(e[0], e[3]) for e in restores} == {(savepoint.completed,
                                                 (savepoint.id, "savepoint"))}


def test_a_lost_coordinator_is_a_crash_event() -> None:
    scenario = Scenario(workload=Workload(records=120, keys=4, splits=2),
                        checkpoints=CheckpointConfig(interval=5.0),
                        timing=Timing(record_cost=0.2, buffer_records=4),
                        faults=(CoordinatorCrash(at=10.0),))
    events = onceflow.run(scenario).trace.events
    crashes = [e for e in events if e[1] == "crash"]
    assert [(e[0], e[2]) for e in crashes] == [(10.0, "coordinator")]


def test_a_stop_with_savepoint_pending_when_the_job_finishes_is_aborted() -> None:
    """The final checkpoint finishes the job while a stop-with-savepoint is still on its way:
    the coordinator shuts down with the job and aborts it, as Flink does."""
    scenario = Scenario(
        topology=Topology((
            Vertex("source", "source", 4),
            Vertex("reduce0", "reduce", 2, "hash"),
            Vertex("sink", "sink", 4, "hash"),
        ), max_parallelism=128),
        workload=Workload(records=29, keys=4, splits=4, seed=63374),
        checkpoints=CheckpointConfig(interval=0.5, timeout=70.0),
        timing=Timing(latency=1.0, record_cost=0.03, buffer_records=16, rpc_latency=1.3,
                      upload_time=2.3),
        # (requested at 8.9 it completed before the job finished once a task waits for its
        # senders to finish: the job ends later)
        savepoints=(SavepointRequest(at=11.0, stop=True),), sink="append", seed=45099)
    result = onceflow.run(scenario)
    events = result.trace.events
    assert result.status == "finished"
    triggers = {d[0]: d[1] for _, k, _, d in events if k == "trigger"}
    (stop_id,) = [i for i, kind in triggers.items() if kind == "savepoint"]
    finished = next(i for i, e in enumerate(events) if e[1] == "finished")
    aborted = [e for e in events if e[1] == "aborted" and e[3][0] == stop_id]
    assert aborted == [(events[finished][0], "aborted", "coordinator", (stop_id, "job finished"))]
    assert events.index(aborted[0]) > finished
    assert all(v == ["completed"] or v == ["aborted"] for v in outcomes(result).values())
    # the tasks are gone: nobody is told, and nothing happens after the shutdown
    assert not [e for e in events[finished:] if e[1] == "notified_aborted"]
    assert onceflow.run(scenario).digest == result.digest


@pytest.mark.parametrize("block", range(4))
def test_every_triggered_snapshot_has_exactly_one_outcome(block: int) -> None:
    """200 seeded scenarios: a finished (or failed) run leaves no snapshot unresolved, and
    every barrier event carries plain values about a triggered snapshot."""
    for seed in range(block * 50, block * 50 + 50):
        result = onceflow.run(scenario_from_seed(seed))
        if result.status == "stuck":
            continue  # cut off at the horizon: pending is what it was
        unresolved = {i: v for i, v in outcomes(result).items() if len(v) != 1}
        assert not unresolved, (seed, result.status, unresolved)
        triggered = set(outcomes(result))
        for _, kind, where, detail in result.trace.events:
            if kind in BARRIER_KINDS:
                assert detail[0] in triggered, (seed, kind, where, detail)
                assert all(isinstance(v, (int, float, str)) for v in detail), (seed, detail)
            elif kind in ("crash", "restore"):
                assert all(isinstance(v, (int, str)) for v in detail), (seed, detail)
        result.trace.digest()  # plain values only, or this raises


# -- what the reports make of them -------------------------------------------------------------

def crash_and_restore_run() -> RunResult:
    return onceflow.run(Scenario(
        topology=Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "rebalance", 1),
                           Vertex("sink", "sink", 1, "hash"))),
        workload=Workload(records=120, keys=4, splits=2),
        checkpoints=CheckpointConfig(interval=5.0),
        timing=Timing(record_cost=0.2, buffer_records=4, jitter=2.0),
        faults=(Crash(at=30.0, target="map[1]"),)))


def test_text_timeline_tells_alignment_crash_and_restore_without_single_barrier_hops() -> None:
    from onceflow.report import text_timeline  # noqa: PLC0415

    result = crash_and_restore_run()
    text = text_timeline(result, limit=10_000)
    assert re.search(r"sink\[0\]\s+barrier of checkpoint \d+: aligned after \d+\.\d{3} ms, "
                     r"snapshot taken", text)
    assert re.search(r"map\[1\]\s+CRASH: crash of map\[1\]", text)
    restart = next(e for e in result.trace.events if e[1] == "restart")
    assert f"5 tasks restore checkpoint {restart[3][1]}" in text
    assert "received on input" not in text and "sent downstream" not in text


def test_diagram_draws_barrier_hops_alignments_crashes_and_restores(tmp_path: Path) -> None:
    import plotly  # noqa: F401  (the test extra installs it; a missing one must fail, not skip)
    from onceflow.report import write_html  # noqa: PLC0415

    html = write_html(crash_and_restore_run(), tmp_path / "d.html").read_text(encoding="utf-8")
    for legend in ("barrier in flight", "alignment (early inputs blocked)", '"name":"crash"',
                   "task restores a snapshot", "barrier: snapshot taken"):
        assert legend in html, legend


def test_a_dropped_barrier_becomes_a_cancel_marker_that_unblocks_downstream() -> None:
    from onceflow.token import decode
    from tests.test_regressions import REGRESSIONS

    token = next(t for what, t in REGRESSIONS if "cancel marker" in what)
    result = onceflow.run(decode(token))
    kinds = [(k, w, d) for _, k, w, d in result.trace.events if k.startswith("cancel_")]
    sent = [(w, d[0]) for k, w, d in kinds if k == "cancel_sent"]
    received = [(w, d[0]) for k, w, d in kinds if k == "cancel_received"]
    assert ("map1[3]", 1) in sent
    assert ("sink[0]", 1) in received
    assert result.status == "finished"
