"""Sink V2's global committer (`onceflow.components.globalcommitter`): committers send what
they committed on to one global committer (parallelism 1), which commits a checkpoint's
committables once all arrived; its state is checkpointed, restored, rescaled; faults aim
at its commit; its real bugs are mutants the properties find, each with a control."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

import onceflow
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, ScenarioError, Timing,
                      Topology, Vertex, Violation, Workload, run)
from onceflow.components import SinkV2
from onceflow.components.globalcommitter import PassThroughCommitter, StoreGlobalCommitter
from onceflow.errors import RegistrationError
from onceflow.faults.plan import Crash, NotifyFault, PhaseCrash
from onceflow.model.snapshot import list_union
from onceflow.registry import SINKS, register_sink, sink_spec
from onceflow.strategies import scenario_from_seed


def scenario(*faults: Any, mutants: tuple[str, ...] = (), sink: str = "two_phase_global",
             p: int = 2, records: int = 200, **checkpoints: Any) -> Scenario:
    return Scenario(
        topology=Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 1),
                           Vertex("reduce", "reduce", 2, "hash"),
                           Vertex("sink", "sink", p, "hash")), max_parallelism=8),
        workload=Workload(records=records, keys=8, splits=2),
        checkpoints=CheckpointConfig(interval=8.0, **checkpoints),
        timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
        sink=sink, faults=faults, mutants=mutants)


def events(result: onceflow.RunResult, kind: str, where: str | None = None) -> list[Any]:
    return [e for e in result.trace.events if e[1] == kind and (where is None or e[2] == where)]


GLOBAL = "sink.global[0]"


def test_the_built_in_sink_declares_a_global_committer() -> None:
    assert sink_spec("two_phase_global").global_committer
    assert sink_spec("two_phase_global").transactional
    assert not sink_spec("two_phase").global_committer


@pytest.mark.parametrize("p", [1, 2, 3])
def test_the_global_committer_makes_the_output_visible_exactly_once(p: int) -> None:
    result = run(scenario(p=p))
    onceflow.check(result)
    assert result.status == "finished"
    commits = events(result, "global_commit", GLOBAL)
    assert commits
    # one global commit per checkpoint, holding every committer subtask's transaction
    assert all(len(e[3][0]) >= 1 for e in commits)
    assert max(len(e[3][0]) for e in commits) == p
    # the data became visible when the global committer committed, not before
    times = {e[0] for e in commits}
    visible = [v for v in result.store.visibility() if v.ids]
    assert visible and all(v.time in times for v in visible)
    # its state is part of every snapshot, by the same mechanism
    assert all("sink.global" in s.state for s in result.snapshots)


def test_a_global_commit_waits_for_every_committer_subtask() -> None:
    result = run(scenario(p=3))
    committed_at = {e[3][1]: e[0] for e in events(result, "global_commit", GLOBAL)}
    completed = {e[3][0]: e[0] for e in events(result, "completed", "coordinator")}
    for cid, at in committed_at.items():
        assert at > completed[cid]  # only after the checkpoint completed


@pytest.mark.parametrize("fault", [
    PhaseCrash("global_commit_before", GLOBAL, 2),
    PhaseCrash("global_commit_after", GLOBAL, 2),
    PhaseCrash("global_commit_after", GLOBAL, 0),
    PhaseCrash("after_sync_snapshot", GLOBAL, 2),
    PhaseCrash("notify_complete", "sink[1]", 2),
    PhaseCrash("commit_after", "sink[0]", 2),
    Crash(21.0, "sink[1]"),
    Crash(17.0, "reduce[0]"),
], ids=str)
def test_the_correct_model_stays_exactly_once_through_crashes(fault: Any) -> None:
    result = run(scenario(fault))
    onceflow.check(result)
    assert result.status == "finished"
    assert result.restarts == 1, "the fault fired"


def test_a_crash_in_the_middle_of_a_global_commit_is_recovered() -> None:
    result = run(scenario(PhaseCrash("global_commit_after", GLOBAL, 0)))
    onceflow.check(result)
    assert events(result, "restore", GLOBAL)
    # the restored job commits again: the interrupted checkpoint's transactions included
    first = events(result, "fault")[0][0]
    assert any(e[0] > first for e in events(result, "global_commit", GLOBAL))


@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
def test_restores_and_rescaled_restores_of_every_snapshot_are_exactly_once(mode: str) -> None:
    result = run(scenario(PhaseCrash("notify_complete", "sink[0]", 2), mode=mode))
    onceflow.check(result)
    for snapshot in result.snapshots:
        for parallelism in (None, 1, 3):
            restored = onceflow.restore(result, snapshot, parallelism)
            assert restored.status == "finished", (snapshot.label, parallelism)
            onceflow.check(restored, restores=False)


def test_savepoints_and_stop_with_savepoint() -> None:
    sc = evolve(scenario(), savepoints=(SavepointRequest(12.0), SavepointRequest(30.0, stop=True)))
    result = run(sc)
    onceflow.check(result)
    assert result.status == "finished"


class FlakyGlobal(StoreGlobalCommitter):
    """Fails the first attempt of every global commit transiently (then commits)."""

    def __init__(self) -> None:
        self.tried: set[int] = set()

    def commit(self, ctx: Any, committables: list[str], checkpoint_id: int) -> bool | None:
        if checkpoint_id not in self.tried:
            self.tried.add(checkpoint_id)
            return None
        return super().commit(ctx, committables, checkpoint_id)


class BrokenGlobal:
    """A global committer whose commits always fail transiently."""

    def commit(self, ctx: Any, committables: list[str], checkpoint_id: int) -> bool | None:
        return None


@pytest.fixture
def user_sinks() -> Any:
    register_sink("t_flaky_global", factory=lambda: SinkV2(
        committer=PassThroughCommitter(), global_committer=FlakyGlobal()),
        kind="two_phase", global_committer=True)
    register_sink("t_broken_global", factory=lambda: SinkV2(
        committer=PassThroughCommitter(), global_committer=BrokenGlobal()),
        kind="two_phase", global_committer=True)
    register_sink("t_undeclared_global", factory=lambda: SinkV2(
        committer=PassThroughCommitter(), global_committer=FlakyGlobal()), kind="two_phase")
    yield
    for name in ("t_flaky_global", "t_broken_global", "t_undeclared_global"):
        SINKS.pop(name, None)


def test_a_user_global_committer_is_retried(user_sinks: Any) -> None:
    result = run(scenario(sink="t_flaky_global"))
    onceflow.check(result)
    assert events(result, "global_commit_retry", GLOBAL)


def test_a_global_commit_that_keeps_failing_fails_the_job_over(user_sinks: Any) -> None:
    result = run(scenario(sink="t_broken_global"))
    crashes = events(result, "crash", GLOBAL)
    assert crashes and "global commit of checkpoint" in crashes[0][3][1]
    assert result.status == "failed"  # every restart fails the same way


def test_a_sink_that_contradicts_its_registration_is_named(user_sinks: Any) -> None:
    result = run(scenario(sink="t_undeclared_global"))
    assert result.status == "error"
    assert "global_committer=" in (result.error or "")


def test_registration_checks_the_declaration() -> None:
    with pytest.raises(RegistrationError, match="kind='two_phase'"):
        register_sink("t_global_append", factory=lambda: None, kind="append",
                      global_committer=True)
    with pytest.raises(RegistrationError, match="True or False"):
        register_sink("t_global_bad", factory=lambda: None, kind="two_phase",
                      global_committer="yes")  # type: ignore[arg-type]

    class Declared(SinkV2):
        global_committer = StoreGlobalCommitter()

    try:
        assert register_sink("t_global_class", factory=Declared, kind="two_phase").global_committer
    finally:
        SINKS.pop("t_global_class", None)


def test_fault_targets_name_the_global_committer_only_where_there_is_one() -> None:
    scenario(PhaseCrash("global_commit_after", GLOBAL, 1))
    with pytest.raises(ScenarioError, match="no vertex with uid 'sink.global'"):
        scenario(PhaseCrash("global_commit_after", GLOBAL, 1), sink="two_phase")
    with pytest.raises(ScenarioError, match="parallelism 1"):
        scenario(PhaseCrash("global_commit_after", "sink.global[1]", 1))


def test_the_generator_draws_the_global_committer_and_aims_at_its_commit() -> None:
    drawn = [scenario_from_seed(seed) for seed in range(300)]
    globals_ = [s for s in drawn if s.sink == "two_phase_global"]
    assert globals_
    aimed = [f for s in globals_ for f in s.faults
             if isinstance(f, PhaseCrash) and f.phase.startswith("global_commit")]
    assert aimed and all(f.target.endswith(".global[0]") for f in aimed)
    assert not any(isinstance(f, PhaseCrash) and f.phase.startswith("global_commit")
                   for s in drawn if s.sink != "two_phase_global" for f in s.faults)


# -- the mutants: each found on a hand-built scenario the correct model passes -------------

@pytest.mark.parametrize("name, fault", [
    ("global-commit-on-notify", None),
    ("global-skips-partly-committed", PhaseCrash("global_commit_after", GLOBAL, 0)),
])
def test_each_global_committer_mutant_is_found_and_needs_what_it_needs(name: str,
                                                                        fault: Any) -> None:
    faults = (fault,) if fault is not None else ()
    onceflow.check(run(scenario(*faults)))
    with pytest.raises(Violation) as info:
        onceflow.check(run(scenario(*faults, mutants=(name,))))
    assert info.value.finding.anomaly == "lost"
    if fault is not None:  # it needs the crash: without it the mutant changes nothing
        onceflow.check(run(scenario(mutants=(name,))))


# -- zoo15: a checkpoint split across a restore; FLINK-37747 -------------------------------

def _split_run() -> onceflow.RunResult:
    """sink[0] never hears that checkpoint 1 completed: sink[1] sent its committable on
    (the global committer holds it), sink[0]'s stays in its own state."""
    return run(scenario(NotifyFault("lose", 1, "sink[0]")))


def test_a_checkpoint_split_across_a_restore_is_committed_in_one_call() -> None:
    result = _split_run()
    onceflow.check(result)
    split = [s for s in result.snapshots if any(s.state.get("sink.global", ()))]
    assert split, "the global committer's snapshot holds part of a checkpoint"
    snapshot = split[0]
    (cid, held, _), = list_union(snapshot.state["sink.global"])
    rest = [txn for c, txn in list_union(snapshot.state["sink"])
            if c == cid]
    assert rest, "the committers hold the rest of it"
    for parallelism in (None, 1, 3, 4):
        restored = onceflow.restore(result, snapshot, parallelism)
        assert restored.status == "finished", parallelism
        onceflow.check(restored, restores=False)
        calls = [e[3][0] for e in events(restored, "global_commit", GLOBAL) if e[3][1] == cid]
        # as Flink's GlobalCommitterOperator: one commit of everything, once all arrived
        assert calls == [calls[0]] and sorted(calls[0]) == sorted(held + tuple(rest)), \
            (parallelism, calls)


def test_restored_summaries_name_the_subtasks_that_send_them() -> None:
    result = _split_run()
    snapshot = result.snapshots[-1]
    for parallelism in (1, 2, 3, 5):
        restored = onceflow.restore(result, snapshot, parallelism)
        assert restored.status == "finished"
        onceflow.check(restored, restores=False)


def test_flink_37747_is_found_on_a_rescaled_restore_only() -> None:
    name = "global-summary-new-parallelism"
    fault = PhaseCrash("notify_complete", "sink[0]", 2)
    correct, buggy = run(scenario(fault)), run(scenario(fault, mutants=(name,)))
    assert buggy.digest == correct.digest, "no rescale in the run itself: no effect"
    i = next(i for i, s in enumerate(buggy.snapshots) if any(s.state.get("sink", ())))
    # at its own parallelism the old and the new subtask count are the same
    onceflow.check(onceflow.restore(buggy, buggy.snapshots[i]), restores=False)
    for parallelism in (3, 4):
        control = onceflow.restore(correct, correct.snapshots[i], parallelism)
        assert control.status == "finished"
        onceflow.check(control, restores=False)
        with pytest.raises(Violation) as info:
            onceflow.check(onceflow.restore(buggy, buggy.snapshots[i], parallelism),
                           restores=False)
        assert info.value.finding.anomaly == "stuck"


# The global committer crashed twice right after a global commit; the committers' restore
# aborted the transactions the restored global committer still held for later checkpoints,
# and a record was lost (a false alarm found by fuzzing on SQLite, fixed when the writer
# kept the transactions the restored global committer holds).
_GLOBAL_HOLDS_WRITER_TRANSACTIONS = (
    "of1.eNqtU12P2jAQ_C9-jqIcd1Cav4KQtTgb4saxXduBQyj_vbs2h6BFVR-aJ39MZmdn1lehBlSjd9qmKNqr6OYAB4MyJhdQtD2YiJWgWwwnMKJt6nUlJviUylk1h4A2iXZFR64juIAkDUJMkm5RVCJgAm2xy5ikJ3Qz4bdN3dDWGSzFetAGO_kkZbVUoofZ8Hp3fZAp2rdKjNoSp_ADRJQqQByoWN7R6dG4AxhSOE06SehJO91GCz4OLrFKe6GDBOGIvI3ajnX5adfsxVL953IRTli4_lJ0Tx7OCXLvuz07FxUYLN0fQI3ZQg8BjEGj45SF3akLDoh5zQl1gWy_x0dcHKd8-tvOxhBBcv6GYwkvVS9FDklPPCKQEk6eK35QITRwoVW9Xl6qyUn_g5qPP6VQBt1ssNgRkYdo895svlXZO1KYzk6WSIqPInPw2Ir40-jEA0gzp-2RZR_mvscgAyoXupjdUwNYixQdeFA6XfLhD504wfat_t48fXRnIKFVjKu33AhTUfCxNPpOR17JO6ipKbHZGwed5NnPoIUH3zvjjhdWxU_pOdQVMZ8wJK1u4WN35JZ6F84QOnGfxujmkB_Z0__vZU8rMn7WD0Ce6xvXUCb4i4jt_I1m9YKGYcueG_i08v6YN9kcjplUR-1sdvHswsiNc48jXorfj95_BbpdcaAjnm-zEj0lx5Bl-QUB3IuA")


def test_the_writer_keeps_transactions_the_restored_global_committer_holds() -> None:
    from onceflow.properties import check
    from onceflow.token import decode

    check(run(decode(_GLOBAL_HOLDS_WRITER_TRANSACTIONS)))
