"""Barrier alignment on a task with two input channels, one of them slow.

Topology: source(2) -forward-> map(2) -hash-> reduce(1) -forward-> sink(1),
two splits, so reduce[0] has two inputs: channel 0 from map[0] (split 0, fast)
and channel 1 from map[1] (split 1, made slow with a 15 ms extra delay).
Barrier n therefore reaches reduce[0] first on channel 0.
"""

from __future__ import annotations

from typing import Any

from onceflow.properties.oracle import cut_offsets
from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.model.job import Job
from onceflow.model.records import Record
from onceflow.model.simulation import RunResult, _finish

REDUCE = "reduce[0]"
SLOW_EXTRA_DELAY = 15.0


def scenario(mode: str) -> Scenario:
    topology = Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", 1, "hash"),
        Vertex("sink", "sink", 1, "forward"),
    ), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(mode=mode, interval=10),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4))


def run_with_slow_channel(mode: str) -> tuple[RunResult, list[dict[str, Any]]]:
    """Run with reduce[0]'s channel 1 slowed; log the task at alignment/snapshot phases."""
    s = scenario(mode)
    job = Job(s)
    log: list[dict[str, Any]] = []

    def hook(task: Any, name: str, checkpoint_id: int) -> None:
        if task.name != REDUCE:
            return
        if name == "restore":
            task.inputs[1].extra_delay = SLOW_EXTRA_DELAY
        elif name in ("alignment", "before_snapshot"):
            now = task.env.now
            ready = [sum(len(item) for t, item in ch.items
                         if item.__class__ is list and t <= now) for ch in task.inputs]
            log.append({"time": now, "phase": name, "id": checkpoint_id,
                        "blocked": list(task.blocked), "ready_records": ready})

    job.phase_hooks.append(hook)
    job.run()
    return _finish(job, s), log


def processed_before_snapshot(result: RunResult, task: str) -> dict[int, list[Record]]:
    """Per snapshot id: the records `task` processed before its "snapshot" event."""
    seen: list[Record] = []
    out: dict[int, list[Record]] = {}
    for _time, kind, where, detail in result.trace.events:
        if where != task:
            continue
        if kind == "process":
            seen.extend(detail[0])
        elif kind == "snapshot":
            out[detail[0]] = list(seen)
    return out


def post_barrier_records(result: RunResult) -> dict[int, list[Record]]:
    """Per completed checkpoint n: records after the sources' cut S_n that reduce[0]
    processed before its snapshot n (must be none in aligned mode)."""
    before = processed_before_snapshot(result, REDUCE)
    out: dict[int, list[Record]] = {}
    for snap in result.checkpoints:
        if REDUCE in snap.finished:
            continue  # FLIP-147: it had finished, it took no snapshot
        cut = cut_offsets(result.scenario, snap)
        out[snap.id] = [r for r in before[snap.id] if r.offset >= cut[r.split]]
    return out


def test_aligned_blocks_early_channel_until_barrier_on_all_inputs() -> None:
    result, log = run_with_slow_channel("aligned")
    assert result.status == "finished"
    assert len(result.checkpoints) >= 2
    alignments = [e for e in log if e["phase"] == "alignment"]
    snapshots = {e["id"]: e for e in log if e["phase"] == "before_snapshot"}
    assert alignments, "reduce[0] never aligned"
    for a in alignments:
        # barrier n came first on the fast channel 0: that channel, and only it, is blocked
        assert a["blocked"] == [True, False], a
        snap = snapshots[a["id"]]
        # until barrier n arrives on channel 1 the task waits (with channel 0 still blocked)
        assert snap["time"] > a["time"]
        assert snap["blocked"] == [True, False], snap
    # checkpoint 1: records of channel 0 piled up, ready but held back, during alignment
    first = snapshots[alignments[0]["id"]]
    assert first["ready_records"][0] > 0, first

    # and they really were not processed: between alignment start and snapshot n, reduce[0]
    # processed only split-1 (slow channel) records
    events = result.trace.events
    for a in alignments:
        snap_time = next(t for t, k, w, d in events
                         if k == "snapshot" and w == REDUCE and d[0] == a["id"])
        during = [r for t, k, w, d in events
                  if k == "process" and w == REDUCE and a["time"] <= t < snap_time
                  for r in d[0]]
        assert all(r.split == 1 for r in during), (a["id"], [r.id for r in during if r.split == 0])


def test_aligned_snapshot_is_the_sources_cut_exactly() -> None:
    """Nothing after barrier n, everything before it: reduce[0]'s input before snapshot n is
    exactly the records with offset < S_n[split] of both splits."""
    result, _ = run_with_slow_channel("aligned")
    before = processed_before_snapshot(result, REDUCE)
    assert len(result.checkpoints) >= 2
    for snap in result.checkpoints:
        if REDUCE in snap.finished:
            continue  # FLIP-147: it had finished, it took no snapshot
        cut = cut_offsets(result.scenario, snap)
        got = sorted((r.split, r.offset) for r in before[snap.id])
        want = sorted((split, off) for split, n in cut.items() for off in range(n))
        assert got == want, f"checkpoint {snap.id}: processed set differs from cut {cut}"
    assert all(not recs for recs in post_barrier_records(result).values())


def test_aligned_releases_buffered_input_in_order_after_snapshot() -> None:
    result, log = run_with_slow_channel("aligned")
    events = result.trace.events
    first_cp = result.checkpoints[0]
    cut0 = cut_offsets(result.scenario, first_cp)[0]
    snap_index = next(i for i, (t, k, w, d) in enumerate(events)
                      if k == "snapshot" and w == REDUCE and d[0] == first_cp.id)
    # the first split-0 record reduce[0] processes after snapshot 1 is the one right after
    # the cut: the buffered input is released and processed first, in order
    after = [r for t, k, w, d in events[snap_index:] if k == "process" and w == REDUCE
             for r in d[0] if r.split == 0]
    assert after, "nothing of channel 0 was processed after the snapshot"
    assert after[0].offset == cut0
    # the release is immediate: reduce[0] processes buffered input at the snapshot's own time
    snap_time = events[snap_index][0]
    ready_at_snapshot = next(e for e in log if e["phase"] == "before_snapshot"
                             and e["id"] == first_cp.id)["ready_records"]
    assert ready_at_snapshot[0] > 0
    first_after = next(e for e in events[snap_index:] if e[1] == "process" and e[2] == REDUCE)
    assert first_after[0] == snap_time
    # the buffered channel-0 records are then processed in their channel order
    assert [r.offset for r in after[:ready_at_snapshot[0]]] == list(
        range(cut0, cut0 + ready_at_snapshot[0]))
    # channel FIFO over the whole run: every record of each split exactly once, in order
    for split in (0, 1):
        offsets = [r.offset for t, k, w, d in events if k == "process" and w == REDUCE
                   for r in d[0] if r.split == split]
        assert offsets == list(range(len(offsets)))
    assert sum(len(d[0]) for t, k, w, d in events if k == "process" and w == REDUCE) == 200


def test_at_least_once_does_not_block_and_lets_post_barrier_records_in() -> None:
    """The contrast that shows the aligned assertions can fail: with no blocking, records
    after barrier n on the early channel reach state before snapshot n."""
    result, log = run_with_slow_channel("at_least_once")
    assert not [e for e in log if e["phase"] == "alignment"]
    assert all(e["blocked"] == [False, False] for e in log)
    leaked = post_barrier_records(result)
    assert any(leaked.values()), leaked
    assert all(r.split == 0 for recs in leaked.values() for r in recs)
