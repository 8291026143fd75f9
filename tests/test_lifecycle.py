"""Operator lifecycle as in Flink 2.x: finish() at the end of input, close() on every
termination (finished, failed over, cancelled), the checkpoint id passed to commit."""

from __future__ import annotations

from typing import Any, ClassVar

import onceflow
from onceflow import CheckpointConfig, Record, Scenario, Timing, Topology, Vertex, Workload
from onceflow.faults.plan import Crash, WorkerCrash
from onceflow.model.sinks import StoreCommitter, TwoPhaseCommitSink
from onceflow.registry import register_operator, register_sink

CALLS: list[tuple[str, str, Any]] = []


class Buffering:
    """Holds every record until finish(): the flush belongs there, as in Flink 2.x."""

    state_kind: ClassVar[str | None] = "list"

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        self.held: list[Record] = list(restored or [])
        CALLS.append(("open", ctx.attempt, ctx.subtask))

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.held.extend(records)

    def end_input(self, out: list[Record]) -> None:
        CALLS.append(("end_input", self.ctx.attempt, self.ctx.subtask))

    def finish(self, out: list[Record]) -> None:
        CALLS.append(("finish", self.ctx.attempt, self.ctx.subtask))
        out.extend(self.held)
        self.held = []

    def close(self) -> None:
        CALLS.append(("close", self.ctx.attempt, self.ctx.subtask))

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return list(self.held)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


register_operator("lc_buffer", factory=lambda p: Buffering(), fold=lambda p, rs, st: list(rs))

COMMITS: list[tuple[str, int]] = []


class RecordingCommitter(StoreCommitter):
    def commit(self, ctx: Any, txn: str, checkpoint_id: int = 0) -> bool | None:
        COMMITS.append((txn, checkpoint_id))
        return super().commit(ctx, txn, checkpoint_id)


register_sink("lc_2pc", factory=lambda: TwoPhaseCommitSink(committer=RecordingCommitter()),
              kind="two_phase")


def scenario(**kw: Any) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("buf", "lc_buffer", 2, "forward"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=80, keys=4),
                    checkpoints=CheckpointConfig(interval=2.0), timing=Timing(record_cost=0.05),
                    sink="lc_2pc", **kw)


def test_finish_flushes_at_end_of_input_and_close_follows_once() -> None:
    CALLS.clear()
    result = onceflow.run(scenario())
    calls = list(CALLS)
    onceflow.check(result)
    assert len(result.committed()) == 80
    for subtask in (0, 1):
        mine = [c[0] for c in calls if c[2] == subtask]
        assert mine == ["open", "end_input", "finish", "close"], mine


def test_close_runs_on_failover_but_not_for_a_lost_worker() -> None:
    CALLS.clear()
    result = onceflow.run(scenario(faults=(Crash(3.0, "sink[0]"),)))
    first = [c for c in CALLS if c[1] == "a1"]
    onceflow.check(result)
    # every operator of the failed attempt was closed once, as its last call
    for subtask in (0, 1):
        mine = [c[0] for c in first if c[2] == subtask]
        assert mine[0] == "open" and mine[-1] == "close" and mine.count("close") == 1, mine
    CALLS.clear()
    # a worker crash takes every slot of worker 0 with it: their operators run nothing more
    result = onceflow.run(scenario(faults=(WorkerCrash(3.0, 0),)))
    assert result.restarts == 1
    assert not [c for c in CALLS if c[1] == "a1" and c[0] == "close"]
    onceflow.check(result)


def test_commit_gets_the_checkpoint_id_of_its_transaction() -> None:
    COMMITS.clear()
    result = onceflow.run(scenario())
    pre_commits = {d[0]: d[1] for _, kind, _, d in result.trace.events if kind == "pre_commit"}
    completed = {d[0] for _, kind, _, d in result.trace.events if kind == "completed"}
    assert COMMITS
    for txn, cid in COMMITS:
        # a committable of the end of input (Sink V2's EOI) commits with the final checkpoint
        assert cid == pre_commits[txn] or (pre_commits[txn] > max(completed) and cid in completed), \
            (txn, cid, pre_commits, completed)


def test_a_two_argument_committer_still_works() -> None:
    class Old:
        def commit(self, ctx: Any, txn: str) -> bool | None:
            return ctx.store.commit(ctx.now, txn)

    register_sink("lc_old", factory=lambda: TwoPhaseCommitSink(committer=Old()), kind="two_phase")
    result = onceflow.run(Scenario(sink="lc_old", faults=(Crash(20.0, "sink[1]"),)))
    assert result.committed()
    onceflow.check(result)
