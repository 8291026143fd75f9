"""Savepoints and restore (issue 3).

- a savepoint and a checkpoint are taken by one code path;
- an intermediate savepoint commits nothing; stop-with-savepoint commits and finishes;
- restoring any retained checkpoint or savepoint of a fault-free run reproduces the oracle;
- savepoints restore at another parallelism (1->3, 4->2), checkpoints do not;
- unaligned snapshots hold in-flight records and a restore replays them first;
- at-least-once over-counts keyed state after a restore, aligned and unaligned do not;
- after a rescale, key k is processed by subtask key_group(k) * p // max_parallelism.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from onceflow.properties.oracle import cut_offsets
from onceflow import (CheckpointConfig, RestoreError, SavepointRequest, Scenario, Snapshot,
                      Timing, Topology, Vertex, Workload, restore, run)
from onceflow.model.job import Job
from onceflow.model.keygroups import key_group, subtask_for_key
from onceflow.model.records import Record, split_logs
from onceflow.model.simulation import RunResult, _finish, _run_id
from onceflow.properties.oracle import canonical, expected_output, expected_state

MAXP = 8
SINKS = ["two_phase", "idempotent"]


def topology(p: int, *, window: bool = False) -> Topology:
    middle = [Vertex("map", "map", p, "forward", 1), Vertex("reduce", "reduce", p, "hash")]
    if window:
        middle.append(Vertex("window", "window", p, "hash", 3))
    return Topology((Vertex("source", "source", p), *middle, Vertex("sink", "sink", p, "forward")),
                    max_parallelism=MAXP)


def scenario(p: int = 2, *, mode: str = "aligned", sink: str = "two_phase",
             savepoints: tuple[SavepointRequest, ...] = (), interval: float = 8.0,
             splits: int = 4, window: bool = False) -> Scenario:
    return Scenario(topology=topology(p, window=window),
                    workload=Workload(records=200, keys=8, splits=splits),
                    checkpoints=CheckpointConfig(mode=mode, interval=interval),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink=sink, savepoints=savepoints)


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def run_slow(s: Scenario) -> RunResult:
    """Run with input channel 1 of every reduce subtask 15 ms slower than the others, so
    barriers arrive skewed and records are in flight when a snapshot is taken."""
    job = Job(s, run_id=_run_id(s))

    def slow(task: Any, name: str, _cid: int) -> None:
        if name == "restore" and task.vertex.uid == "reduce" and len(task.inputs) > 1:
            task.inputs[1].extra_delay = 15.0

    job.phase_hooks.append(slow)
    job.run()
    return _finish(job, s)


def restore_mismatches(result: RunResult, snapshots: list[Snapshot],
                       parallelism: int | None = None) -> list[str]:
    """Restore each snapshot; describe every restore whose output is not the oracle's."""
    want = oracle(result.scenario)
    bad = []
    for snap in snapshots:
        restored = restore(result, snap, parallelism)
        got = canonical(restored.committed(), result.scenario.topology)
        if restored.status != "finished" or got != want:
            missing = sum(len(v) for v in want.values()) - sum(len(v) for v in got.values())
            bad.append(f"{snap.label} (p={parallelism}): status {restored.status}, "
                       f"{missing} records short of the oracle")
    return bad


def events_for(result: RunResult, checkpoint_id: int) -> list[tuple[str, str]]:
    """(kind, task) of the per-task "snapshot" and "ack" events of one snapshot id."""
    return [(k, w) for _, k, w, d in result.trace.events
            if k in ("snapshot", "ack") and d[0] == checkpoint_id]


def task_names(s: Scenario) -> set[str]:
    return {f"{v.uid}[{i}]" for v in s.topology.vertices for i in range(v.parallelism)}


# -- one mechanism ------------------------------------------------------------------


def test_savepoint_and_checkpoint_take_the_same_code_path() -> None:
    s = scenario(savepoints=(SavepointRequest(at=5),))
    result = run(s)
    assert result.status == "finished"
    sp = result.savepoints[0]
    cp = result.checkpoints[0]
    order = [v.uid for v in s.topology.vertices]
    shapes = []
    for snap in (sp, cp):
        ev = events_for(result, snap.id)
        # every task snapshots once and then acknowledges once
        assert Counter(ev) == Counter([("snapshot", t) for t in task_names(s)]
                                      + [("ack", t) for t in task_names(s)])
        for t in task_names(s):
            assert ev.index(("snapshot", t)) < ev.index(("ack", t))
        # barriers flow source -> sink in both cases
        firsts = [min(i for i, (k, w) in enumerate(ev) if k == "snapshot" and w.startswith(uid))
                  for uid in order]
        assert firsts == sorted(firsts)
        kinds = {d[1] for _, k, _, d in result.trace.events if k == "snapshot" and d[0] == snap.id}
        assert kinds == {snap.kind}
        # the 2PC sink pre-commits on both
        assert {w for _, k, w, d in result.trace.events
                if k == "pre_commit" and d[1] == snap.id} == {"sink[0]", "sink[1]"}
        shapes.append((snap.mode, snap.parallelism, snap.max_parallelism, sorted(snap.state),
                       {uid: type(v).__name__ for uid, v in snap.state.items()},
                       snap.channel_state))
    assert (sp.kind, cp.kind) == ("savepoint", "checkpoint")
    assert type(sp) is type(cp) is Snapshot
    assert shapes[0] == shapes[1]
    # savepoints are not retained for failover; checkpoints are
    assert sp not in result.retained and cp in result.checkpoints


def test_savepoints_are_aligned_even_in_unaligned_mode() -> None:
    s = scenario(mode="unaligned", splits=2, sink="idempotent",
                 savepoints=(SavepointRequest(at=25),), interval=10)
    result = run_slow(s)
    assert result.status == "finished"
    assert result.savepoints and all(not sp.channel_state for sp in result.savepoints)
    assert any(cp.in_flight_records for cp in result.checkpoints)


def test_intermediate_savepoint_commits_nothing() -> None:
    # no periodic checkpoint before the end: only the savepoint, then the final checkpoint
    s = scenario(savepoints=(SavepointRequest(at=5),), interval=10_000)
    result = run(s)
    assert result.status == "finished"
    sp = result.savepoints[0]
    events = result.trace.events
    assert not [e for e in events if e[1] == "notified" and e[3][0] == sp.id]
    # it completed, yet the store it left behind has nothing committed
    assert result.store.fork(sp.store_version).read_committed(sp.completed) == []
    final_completed = min(t for t, k, _, d in events if k == "completed" and d[1] == "checkpoint")
    assert sp.completed < final_completed
    assert not [op for op in result.store.ops if op[0] == "commit" and op[1] < final_completed]
    # its transactions are committed only by the next checkpoint's notification
    sp_txns = {d[0] for _, k, _, d in events if k == "pre_commit" and d[1] == sp.id}
    assert sp_txns
    commits = {d[0]: t for t, k, _, d in events if k == "commit"}
    assert all(commits[txn] > final_completed for txn in sp_txns)
    assert canonical(result.committed(), s.topology) == oracle(s)


def test_intermediate_savepoint_does_not_change_the_output() -> None:
    plain = scenario()
    with_sp = scenario(savepoints=(SavepointRequest(at=5), SavepointRequest(at=17)))
    a, b = run(plain), run(with_sp)
    assert len(b.savepoints) == 2
    assert canonical(a.committed(), plain.topology) == canonical(b.committed(), plain.topology)


def prefix_oracle(s: Scenario, cut: dict[int, int], *, drain: bool) -> dict[int, Any]:
    """map(+1) -> reduce -> [window(3)] over the input prefix `cut`, per key, in order."""
    out: list[Record] = []
    window = any(v.kind == "window" for v in s.topology.vertices)
    for split, log in enumerate(split_logs(s.workload)):
        per_key: dict[int, list[Record]] = {}
        for r in log[:cut.get(split, 0)]:
            per_key.setdefault(r.key, []).append(r)
        for key, records in per_key.items():
            total = 0
            reduced = []
            for r in records:
                total += r.value + 1
                reduced.append(r._replace(value=total))
            if not window:
                out.extend(reduced)
                continue
            count = wsum = fired = 0
            for r in reduced:
                count, wsum = count + 1, wsum + r.value
                if count == 3:
                    out.append(Record(f"w{key}.{fired}", key, wsum, r.split, r.offset))
                    count = wsum = 0
                    fired += 1
            if drain and count:
                out.append(Record(f"w{key}.{fired}", key, wsum, reduced[-1].split,
                                  reduced[-1].offset))
    return canonical(out, s.topology)


@pytest.mark.parametrize("window", [False, True])
def test_stop_with_savepoint_commits_and_finishes(window: bool) -> None:
    s = scenario(savepoints=(SavepointRequest(at=12, stop=True),), window=window)
    result = run(s)
    assert result.status == "finished"
    sp = result.savepoints[0]
    assert sp.stop
    events = result.trace.events
    finished = next(i for i, e in enumerate(events) if e[1] == "finished")
    sink_commits = [i for i, e in enumerate(events) if e[1] == "commit" and e[3][1] == sp.id]
    assert {events[i][2] for i in sink_commits} == {"sink[0]", "sink[1]"}
    assert max(sink_commits) < finished
    assert {w for _, k, w, d in events if k == "notified" and d[0] == sp.id} == task_names(s)
    # the sources stopped at the savepoint: the output is exactly the input before its cut
    cut = cut_offsets(s, sp)
    assert sum(cut.values()) < s.workload.records
    assert canonical(result.committed(), s.topology) == prefix_oracle(s, cut, drain=False)


def test_stop_with_savepoint_and_drain_fires_windows_commits_and_finishes() -> None:
    s = scenario(savepoints=(SavepointRequest(at=12, stop=True, drain=True),), window=True)
    result = run(s)
    assert result.status == "finished"
    sp = result.savepoints[0]
    events = result.trace.events
    # drain: every task saw end of input before it snapshotted the savepoint
    for t in task_names(s):
        eoi = next(i for i, e in enumerate(events) if e[1] == "end_of_input" and e[2] == t)
        snap = next(i for i, e in enumerate(events)
                    if e[1] == "snapshot" and e[2] == t and e[3][0] == sp.id)
        assert eoi < snap, t
    finished = next(i for i, e in enumerate(events) if e[1] == "finished")
    assert max(i for i, e in enumerate(events) if e[1] == "commit" and e[3][1] == sp.id) < finished
    cut = cut_offsets(s, sp)
    assert sum(cut.values()) < s.workload.records
    assert canonical(result.committed(), s.topology) == prefix_oracle(s, cut, drain=True)
    # the partial windows did fire
    assert prefix_oracle(s, cut, drain=True) != prefix_oracle(s, cut, drain=False)


@pytest.mark.parametrize("sink", SINKS)
def test_restore_after_stop_with_savepoint_completes_the_output(sink: str) -> None:
    s = scenario(sink=sink, savepoints=(SavepointRequest(at=12, stop=True),))
    result = run(s)
    assert result.status == "finished"
    assert restore_mismatches(result, list(result.savepoints)) == []


# -- restore ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
@pytest.mark.parametrize("sink", SINKS)
def test_restore_each_retained_checkpoint_and_savepoint_gives_the_oracle(sink: str,
                                                                       mode: str) -> None:
    s = scenario(mode=mode, sink=sink, interval=4.0,
                 savepoints=(SavepointRequest(at=5), SavepointRequest(at=20)))
    result = run(s)
    assert result.status == "finished"
    assert len(result.retained) >= 2 and len(result.savepoints) == 2
    assert canonical(result.committed(), s.topology) == oracle(s)
    assert restore_mismatches(result, [*result.retained, *result.savepoints]) == []


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("old_p,new_p", [(1, 3), (4, 2)])
def test_savepoint_restores_at_another_parallelism(sink: str, old_p: int, new_p: int) -> None:
    s = scenario(old_p, sink=sink, savepoints=(SavepointRequest(at=5),))
    result = run(s)
    assert result.status == "finished" and result.savepoints
    sp = result.savepoints[0]
    restored = restore(result, sp, parallelism=new_p)
    assert all(v.parallelism == new_p for v in restored.scenario.topology.vertices)
    reducers = {w for _, k, w, d in restored.trace.events if k == "process"
                and w.startswith("reduce[")}
    keys = {r.key for log in split_logs(s.workload) for r in log}
    # every key on the subtask Flink's formula gives at the new parallelism
    assert reducers <= {f"reduce[{subtask_for_key(k, new_p, 128)}]" for k in keys}
    assert len(reducers) > 1 or new_p == 1 or len(keys) == 1
    assert restore_mismatches(result, [sp], parallelism=new_p) == []


def test_checkpoint_restores_at_another_parallelism_too() -> None:
    s = scenario(2, sink="idempotent", savepoints=(SavepointRequest(at=5),))
    result = run(s)
    cp = result.retained[-1]
    assert restore_mismatches(result, [cp], parallelism=3) == []
    with pytest.raises(RestoreError):
        restore(result, cp, parallelism=0)
    assert restore(result, cp, parallelism=2).status == "finished"
    assert restore(result, result.savepoints[0], parallelism=3).status == "finished"
    # a snapshot of another run is refused
    other = run(scenario(2, sink="idempotent", interval=9))
    with pytest.raises(RestoreError):
        restore(result, other.retained[-1])


def test_rescaled_keys_land_on_subtask_key_group_times_p_over_max_parallelism() -> None:
    s = scenario(2, sink="idempotent", savepoints=(SavepointRequest(at=5),))
    result = run(s)
    for p in (3, 1, 4):
        restored = restore(result, result.savepoints[0], parallelism=p)
        placed: dict[int, set[int]] = {}
        for _, k, w, d in restored.trace.events:
            if k == "process" and w.startswith(("reduce[", "sink[")):
                subtask = int(w[w.index("[") + 1:-1])
                for r in d[0]:
                    placed.setdefault(r.key, set()).add(subtask)
        assert len(placed) == s.workload.keys
        for key, subtasks in placed.items():
            assert subtasks == {key_group(key, MAXP) * p // MAXP}, (p, key, subtasks)
        # and each restored subtask held exactly the keyed state of its key groups
        for snap in restored.checkpoints:
            for kg, group in snap.state["reduce"].items():
                assert all(key_group(k, MAXP) == kg for k in group)
        if p == 3:
            assert len({next(iter(v)) for v in placed.values()}) > 1  # a real spread


# -- unaligned: in-flight records ---------------------------------------------------------


def in_flight(snap: Snapshot) -> dict[str, list[Record]]:
    return {name: [r for item in items if item.__class__ is list for r in item]
            for name, items in snap.channel_state.items()}


def test_unaligned_snapshot_holds_in_flight_records_and_restore_replays_them_first() -> None:
    s = scenario(mode="unaligned", splits=2, sink="idempotent", interval=10)
    result = run_slow(s)
    assert result.status == "finished"
    snap = next(c for c in result.checkpoints if c.in_flight_records)
    flights = {name: recs for name, recs in in_flight(snap).items() if recs}
    # input buffers captured by the reduce, or output buffers its barrier overtook at the map
    assert flights and all(name.split(":", 1)[1].startswith("map[") for name in flights)
    assert sum(map(len, flights.values())) == snap.in_flight_records
    # consistency: state + in-flight records == the state the sources' cut implies
    want = expected_state(s, cut_offsets(s, snap))["reduce"]
    got = {k: v for g in snap.state["reduce"].values() for k, v in g.items()}
    for recs in flights.values():
        for r in recs:
            got[r.key] = got.get(r.key, 0) + r.value
    assert got == want

    restored = restore(result, snap)
    assert restored.status == "finished"
    channels: dict[str, list[Record]] = {}
    for side in ("in", "out"):  # a channel replays its input side, then its output side
        for name, recs in flights.items():
            if name.startswith(side + ":"):
                channels.setdefault(name.split(":", 1)[1], []).extend(recs)
    for channel, recs in channels.items():
        sender, receiver = channel.split("->")
        sender_index = int(sender[sender.index("[") + 1:-1])
        # records of the sender's channel that the receiver processed, in order
        seen = [r for _, k, w, d in restored.trace.events if k == "process" and w == receiver
                for r in d[0] if r.split % 2 == sender_index]
        assert seen[:len(recs)] == recs, channel
    # the replay counts them exactly once
    assert canonical(restored.committed(), s.topology) == oracle(s)


@pytest.mark.parametrize("sink", SINKS)
def test_unaligned_restore_with_in_flight_records_gives_the_oracle(sink: str) -> None:
    s = scenario(mode="unaligned", splits=2, sink=sink, interval=10)
    result = run_slow(s)
    snaps = [c for c in result.checkpoints if c.in_flight_records]
    assert snaps
    assert restore_mismatches(result, snaps) == []


# -- at-least-once over-counts after a restore ----------------------------------------------


def reduce_state(snap: Snapshot) -> dict[int, int]:
    return {k: v for g in snap.state["reduce"].values() for k, v in g.items()}


def test_at_least_once_snapshot_over_counts_keyed_state() -> None:
    s = scenario(mode="at_least_once", splits=2, sink="idempotent", interval=10)
    result = run_slow(s)
    first = result.checkpoints[0]
    want = expected_state(s, cut_offsets(s, first))["reduce"]
    got = reduce_state(first)
    assert all(got.get(k, 0) >= v for k, v in want.items())
    assert sum(got.values()) > sum(want.values())


def test_aligned_snapshot_state_matches_the_sources_cut() -> None:
    s = scenario(mode="aligned", splits=2, sink="idempotent", interval=10)
    result = run_slow(s)
    assert result.checkpoints
    for snap in result.checkpoints:
        if snap.finished:
            continue  # FLIP-147: a finished subtask holds no state
        assert reduce_state(snap) == expected_state(s, cut_offsets(s, snap))["reduce"]


@pytest.mark.parametrize("mode", ["aligned", "unaligned", "at_least_once"])
def test_only_at_least_once_over_counts_after_a_restore(mode: str) -> None:
    s = scenario(mode=mode, splits=2, sink="idempotent", interval=10)
    result = run_slow(s)
    assert result.status == "finished"
    first = result.checkpoints[0]
    assert first.triggered < 20  # taken mid-stream, with records in flight at the reduce
    restored = restore(result, first)
    assert restored.status == "finished"
    want = {k: max(v for _, v in pairs) for k, pairs in oracle(s).items()}
    got: dict[int, int] = {}
    for r in restored.committed():
        got[r.key] = max(got.get(r.key, 0), r.value)
    if mode == "at_least_once":
        assert all(got[k] >= want[k] for k in want)
        assert any(got[k] > want[k] for k in want), "expected duplicates in keyed state"
        assert canonical(restored.committed(), s.topology) != oracle(s)
    else:
        assert got == want
        assert canonical(restored.committed(), s.topology) == oracle(s)
