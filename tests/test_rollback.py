"""Rollback restores: a snapshot restored into the external system as it stands later."""

from __future__ import annotations

import json
from typing import Any

import pytest

from onceflow import CheckpointConfig, Scenario, Timing, Workload
from onceflow.model import restore, run
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.properties import Violation, check, exactly_once_after_restores
from onceflow.registry import SINKS, register_sink
from onceflow.scenario import SavepointRequest
from onceflow.shrinking import shrink
from onceflow.strategies import scenario_from_seed
from tests.test_cli import cli


class MarkerSink(TwoPhaseCommitSink):
    """Skips committables at or below a last-committed marker kept in the external system
    (as connectors do to avoid re-committing after a failover).  The bug: the marker
    belongs to whichever job wrote it, so a job restored from an older savepoint into
    a system that has moved on skips its own new checkpoints: they are lost."""

    def owner(self) -> str:
        return f"{self.ctx.uid}[{self.ctx.subtask}]"

    def marker(self) -> int:
        return int(self.ctx.store.metadata(self.owner()).get("last_committed", 0))

    def open(self, ctx: Any, restored: Any) -> None:
        self.ctx = ctx
        if restored is not None:
            restored = [(cid, txn) for cid, txn in restored if cid > self.marker()]
        super().open(ctx, restored)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        mark = self.marker()
        self.pending = [(cid, txn) for cid, txn in self.pending if cid > mark]
        super().notify_checkpoint_complete(checkpoint_id)
        if checkpoint_id > mark:
            self.ctx.store.set_metadata(self.ctx.now, self.owner(), "last_committed",
                                        checkpoint_id)


class JobScopedMarkerSink(MarkerSink):
    """The fix: the marker is scoped to the job that wrote it (Flink's JobID, as the
    Iceberg sink keys its max committed checkpoint id); a restored job starts fresh."""

    def owner(self) -> str:
        return f"{self.ctx.uid}[{self.ctx.subtask}]@{self.ctx.job_id}"


@pytest.fixture
def sinks() -> Any:
    register_sink("test-marker", factory=MarkerSink, exactly_once=True)
    register_sink("test-marker-fixed", factory=JobScopedMarkerSink, exactly_once=True)
    yield
    del SINKS["test-marker"], SINKS["test-marker-fixed"]


def _scenario(sink: str = "two_phase", at: float = 10.0) -> Scenario:
    return Scenario(sink=sink, workload=Workload(records=400), timing=Timing(record_cost=0.1),
                    checkpoints=CheckpointConfig(interval=10.0),
                    savepoints=(SavepointRequest(at=at),))


def test_the_marker_sink_passes_every_fork_restore_and_fails_a_rollback(sinks: None) -> None:
    result = run(_scenario("test-marker"))
    assert result.checkpoints and result.savepoints
    exactly_once_after_restores(result)  # every forked restore is clean
    with pytest.raises(Violation) as err:
        check(result)
    finding = err.value.finding
    assert finding.anomaly in ("lost", "stuck") and "rolled back" in finding.timeline
    assert finding.faults == ()


def test_it_shrinks_and_the_fixed_sink_is_clean(sinks: None) -> None:
    outcome = shrink(_scenario("test-marker"))
    assert outcome is not None and "rolled back" in outcome.finding.timeline
    assert outcome.scenario.size["records"] <= 400
    check(run(_scenario("test-marker-fixed")))
    for seed in range(15):
        from attrs import evolve

        check(run(evolve(scenario_from_seed(seed, sink="two_phase"), sink="test-marker-fixed")))


def test_a_rollback_may_duplicate_only_what_was_committed_after_the_snapshot() -> None:
    result = run(_scenario(at=30.0))
    savepoint = result.checkpoints[0]
    rolled = restore(result, savepoint, into="rollback")
    assert rolled.restored_into == "rollback" and rolled.status == "finished"
    assert rolled.store is not result.store
    counts: dict[str, int] = {}
    for r in rolled.committed():
        counts[r.id] = counts.get(r.id, 0) + 1
    assert any(n == 2 for n in counts.values())  # re-committed by the restored job
    later = {i for v in result.store.visibility() if v.version > savepoint.store_version
             for i in v.ids}
    twice = {i for i, n in counts.items() if n == 2}
    assert twice <= later and max(counts.values()) == 2
    # what the snapshot's own transactions hold is recommitted idempotently, not twice
    recovered = {i for v in result.store.visibility() if v.txn and ".1" == v.txn[-2:]
                 for i in v.ids}
    assert recovered and not recovered & twice
    check(result)


def test_restore_all_json_marks_fork_and_rollback() -> None:
    token = _token()
    out = cli("run", "--scenario", token, "--restore-all", "--json")
    assert out.returncode == 0, out.stderr
    kinds = {r["restore"] for r in json.loads(out.stdout)["restores"]}
    assert kinds == {"fork", "rollback"}


def _token() -> str:
    from onceflow.token import encode

    return encode(_scenario())


def test_restore_rejects_an_unknown_kind() -> None:
    from onceflow.errors import RestoreError

    result = run(Scenario())
    with pytest.raises(RestoreError):
        restore(result, result.snapshots[0], into="sideways")


def test_a_rollback_at_a_later_moment_starts_there() -> None:
    from onceflow.errors import RestoreError

    result = run(_scenario(at=30.0))
    snapshot = result.checkpoints[0]
    moment = (snapshot.completed + result.end_time) / 2
    rolled = restore(result, snapshot, into="rollback", at=moment)
    assert rolled.started == moment and rolled.status == "finished"
    assert rolled.store_start < result.store.version()
    check(result)
    with pytest.raises(RestoreError, match="rollback moment"):
        restore(result, snapshot, into="rollback", at=snapshot.completed - 1)


def test_rollbacks_draw_some_moments_from_the_seed() -> None:
    from onceflow.properties import rollbacks_of

    moments = [at for seed in range(60)
               for _, _, at in rollbacks_of(run(scenario_from_seed(seed)))]
    assert any(at is None for at in moments) and any(at is not None for at in moments)
