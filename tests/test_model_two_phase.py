"""Two-phase-commit sinks: invisible to read-committed until notify-complete; a lost
notification is made good by the next one (commit of every pending transaction <= n)."""

from __future__ import annotations

from typing import Any

from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.model.job import Job
from onceflow.model.records import Record
from onceflow.model.simulation import RunResult, _finish
from onceflow.components.sinkv2 import EOI
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.stores import MemoryStore as Store
from onceflow.properties.oracle import canonical, expected_output


def scenario(sink_parallelism: int = 1, interval: float = 8.0) -> Scenario:
    topology = Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", sink_parallelism, "hash"),
        Vertex("sink", "sink", sink_parallelism, "forward"),
    ), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(interval=interval),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink="two_phase")


def oracle(s: Scenario) -> dict[int, Any]:
    return canonical([r for rs in expected_output(s).values() for r in rs], s.topology)


def run_job(s: Scenario, *hooks: Any) -> RunResult:
    job = Job(s)
    job.phase_hooks.extend(hooks)
    job.run()
    return _finish(job, s)


def txn_records(store: Store) -> dict[str, set[str]]:
    """Transaction id -> ids of the records written in it (from the final store)."""
    out: dict[str, set[str]] = {}
    for e in store.entries(0.0, committed_only=False):
        if e.txn is not None:
            out.setdefault(e.txn, set()).add(e.record.id)
    return out


def ids(records: list[Record]) -> set[str]:
    return {r.id for r in records}


# -- 2. visibility -------------------------------------------------------------------


def test_two_phase_output_invisible_to_read_committed_until_notify_complete() -> None:
    s = scenario(sink_parallelism=1)
    views: list[tuple[str, int, float, set[str], set[str], list[tuple[int, str]]]] = []

    def hook(task: Any, name: str, checkpoint_id: int) -> None:
        if task.is_sink and name in ("pre_commit", "notify_complete"):
            store = task.job.store
            now = task.env.now
            views.append((name, checkpoint_id, now, ids(store.read_committed(now)),
                          ids(store.read_uncommitted(now)), list(task.operator.pending)))

    result = run_job(s, hook)
    assert result.status == "finished"
    events = result.trace.events
    pre_commits = [(t, d[0], d[1]) for t, k, w, d in events if k == "pre_commit"]
    commits = {d[0]: (t, d[1]) for t, k, w, d in events if k == "commit"}
    completed = {d[0]: t for t, k, w, d in events if k == "completed"}
    notified = {d[0]: t for t, k, w, d in events if k == "notified" and w == "sink[0]"}
    assert len(pre_commits) >= 3
    by_txn = txn_records(result.store)

    for pc_time, txn, cid in pre_commits:
        records = by_txn.get(txn, set())
        if not records:
            continue
        # while open / at pre-commit: seen by read-uncommitted, not by read-committed
        name, _, _, committed, uncommitted, _ = next(
            v for v in views if v[0] == "pre_commit" and v[1] == cid)
        assert records <= uncommitted, txn
        assert not records & committed, txn
        if cid == EOI:
            # end-of-input committables (FLINK-26403) go with the final checkpoint
            cid = commits[txn][1]
        # at notify-complete of its checkpoint, before the commit: still invisible
        _, _, _, committed, uncommitted, pending = next(
            v for v in views if v[0] == "notify_complete" and v[1] == cid)
        assert (cid, txn) in pending
        assert records <= uncommitted and not records & committed, txn
        # the commit comes only after the checkpoint completed, at the notification
        commit_time, commit_cid = commits[txn]
        assert commit_cid == cid
        assert completed[cid] < commit_time == notified[cid]
        assert pc_time < completed[cid]

    # the store's own history: read-committed flips exactly at the commit operation
    store = result.store
    for i, op in enumerate(store.ops):
        if op[0] != "commit" or not by_txn.get(op[2]):
            continue
        records = by_txn[op[2]]
        before, after = store.fork(i), store.fork(i + 1)
        now = op[1]
        assert not records & ids(before.read_committed(now))
        assert records <= ids(before.read_uncommitted(now))
        assert records <= ids(after.read_committed(now))

    # and at the end everything is visible, exactly once
    assert oracle(s) == canonical(result.committed(), s.topology)


def test_open_transaction_blocks_read_committed_readers() -> None:
    store = Store(txn_timeout=1000.0)
    a = [Record("a", 0, 1, 0, 0)]
    b = [Record("b", 1, 2, 1, 0)]
    store.begin(0.0, "t1", ("sink", 0))
    store.begin(0.0, "t2", ("sink", 1))
    store.write(1.0, "t1", a)
    store.write(2.0, "t2", b)
    store.precommit(3.0, "t2")
    assert store.commit(4.0, "t2")
    # t2 is committed but t1 (earlier in the log) is still open: the LSO holds readers back
    assert store.read_committed(5.0) == []
    assert ids(store.read_uncommitted(5.0)) == {"a", "b"}
    assert store.blocking_transaction(5.0).id == "t1"  # type: ignore[union-attr]
    store.precommit(6.0, "t1")
    assert store.commit(7.0, "t1")
    assert ids(store.read_committed(8.0)) == {"a", "b"}


# -- 3. a lost notification ---------------------------------------------------------


class FakeContext:
    """Just what TwoPhaseCommitSink uses of OperatorContext."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = 0.0
        self.uid = "sink"
        self.subtask = 0
        self.parallelism = 1
        self.attempt = 1
        self.restored_union = None
        self.events: list[tuple[Any, ...]] = []
        self.phases: list[tuple[str, int]] = []

    def phase(self, name: str, checkpoint_id: int) -> None:
        self.phases.append((name, checkpoint_id))

    def mutant(self, name: str) -> bool:
        return False

    def event(self, kind: str, *detail: Any) -> None:
        self.events.append((self.now, kind, *detail))


def test_notify_complete_commits_every_pending_transaction_up_to_n() -> None:
    store = Store(txn_timeout=1e6)
    ctx = FakeContext(store)
    sink = TwoPhaseCommitSink()
    sink.open(ctx, None)  # type: ignore[arg-type]
    txns = []
    for cid in (1, 2, 3, 4):
        ctx.now += 1
        sink.process([Record(f"r{cid}", cid, cid, 0, cid)], [])
        txns.append(sink.txn)
        ctx.now += 1
        sink.snapshot_state(cid)
    ctx.now += 1
    sink.process([Record("r5", 5, 5, 0, 5)], [])  # in the open transaction after 4
    assert store.read_committed(ctx.now) == []
    assert ids(store.read_uncommitted(ctx.now)) == {"r1", "r2", "r3", "r4", "r5"}

    # notifications 1 and 2 are lost; notification 3 stands for them
    ctx.now += 1
    sink.notify_checkpoint_complete(3)
    commits = [e for e in ctx.events if e[1] == "commit"]
    assert [(e[2], e[3]) for e in commits] == [(txns[0], 1), (txns[1], 2), (txns[2], 3)]
    assert [cid for cid, _ in sink.pending] == [4]
    assert ids(store.read_committed(ctx.now)) == {"r1", "r2", "r3"}
    # a late, out-of-order notification 2 changes nothing
    sink.notify_checkpoint_complete(2)
    assert len([e for e in ctx.events if e[1] == "commit"]) == 3
    ctx.now += 1
    sink.notify_checkpoint_complete(4)
    assert ids(store.read_committed(ctx.now)) == {"r1", "r2", "r3", "r4"}
    assert store.txns[sink.txn].state == "open"


def test_lost_notification_in_a_running_job_is_made_good_by_the_next() -> None:
    """sink[0] loses the notification of checkpoint 1: its transaction 1 is committed by the
    notification of checkpoint 2, together with transaction 2."""
    s = scenario(sink_parallelism=2)
    lost: list[tuple[str, int, float]] = []

    def lose_first(task: Any, name: str, checkpoint_id: int) -> None:
        if name == "notify_complete" and task.name == "sink[0]" and not lost:
            op = task.operator
            lost.append((task.name, checkpoint_id, task.env.now))

            def dropped(_cid: int) -> None:
                del op.notify_checkpoint_complete  # back to the real method

            op.notify_checkpoint_complete = dropped

    result = run_job(s, lose_first)
    assert result.status == "finished"
    assert lost and lost[0][1] == 1
    events = result.trace.events
    commits0 = [(t, d[0], d[1]) for t, k, w, d in events if k == "commit" and w == "sink[0]"]
    notified0 = {d[0]: t for t, k, w, d in events if k == "notified" and w == "sink[0]"}
    # notification 1 arrived at sink[0] but committed nothing
    assert 1 in notified0
    assert not [c for c in commits0 if c[0] == notified0[1]]
    # the next notification commits transaction 1 and its own, at once, in order
    nxt = min(cid for cid in notified0 if cid > 1)
    at_next = [(txn, cid) for t, txn, cid in commits0 if t == notified0[nxt]]
    assert [cid for _, cid in at_next][:2] == [1, 2] and nxt >= 2
    assert all(cid <= nxt for _, cid in at_next)
    # sink[1] was not affected: its transaction 1 committed at notification 1
    t1 = next(t for t, k, w, d in events if k == "commit" and w == "sink[1]" and d[1] == 1)
    assert t1 == next(t for t, k, w, d in events if k == "notified" and w == "sink[1]" and d[0] == 1)
    # nothing was lost and nothing duplicated
    assert oracle(s) == canonical(result.committed(), s.topology)
    assert result.store.blocking_transaction(result.end_time) is None
