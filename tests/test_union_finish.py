"""FLINK-21080: an operator with union list state finishes on one final checkpoint.

Flink aborts a checkpoint in which such an operator is partly finished (some subtasks
finished, the others report union state: `PartialFinishingNotSupportedByStateException`,
not counted as a failure), and an abort notification carries the latest completed
checkpoint, which a task takes as a completion first: a subtask whose notification of the
final checkpoint was lost still finishes when the next checkpoint aborts.
"""

from __future__ import annotations

from typing import Any

import onceflow
from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.faults.plan import NotifyFault
from onceflow.model.finished import check_finished_state
from onceflow.model.operators import TallyOperator
from onceflow.model.simulation import RunResult
from onceflow.registry import register_operator

# the built-in tally (union list state), registered again as a user registers their own
register_operator("union_counter", factory=lambda p: TallyOperator(),
                  fold=lambda p, rs, st: list(rs), ids="keep")


def scenario(*faults: Any) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("u", "union_counter", 2, "hash"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=60, keys=4, splits=2),
                    checkpoints=CheckpointConfig(interval=4.5),
                    timing=Timing(latency=1.0, record_cost=0.1), sink="two_phase",
                    faults=faults)


def finished_at(result: RunResult, task: str) -> float:
    (t,) = [e[0] for e in result.trace.events if e[1] == "task_finished" and e[2] == task]
    return t


def final_checkpoint(result: RunResult) -> int:
    """The checkpoint whose completion let u[0] finish."""
    done = finished_at(result, "u[0]")
    return max(s.id for s in result.checkpoints if s.completed <= done)


def test_no_snapshot_holds_a_union_operator_partly_finished() -> None:
    result = onceflow.run(scenario())
    assert result.status == "finished"
    for snapshot in result.snapshots:
        finished = {name for name in snapshot.finished if name.startswith("u[")}
        assert len(finished) in (0, 2), (snapshot.id, snapshot.finished)
        check_finished_state(snapshot, result.scenario.topology)
    onceflow.check(result)


def test_a_lost_final_notification_is_made_good_by_the_next_abort() -> None:
    final = final_checkpoint(onceflow.run(scenario()))
    result = onceflow.run(scenario(NotifyFault("lose", final, "u[1]", 0.0, "complete")))
    assert result.status == "finished"
    events = result.trace.events
    # u[0] finished on the final checkpoint; the next one found u partly finished and aborted
    partly = [e for e in events if e[1] == "partly_finished"]
    assert partly and partly[0][3][1] == "u"
    aborted = partly[0][3][0]
    assert ("aborted", (aborted, "partly finished")) in [(e[1], e[3]) for e in events]
    # its abort message said `final` completed: u[1] took that as its completion, finished
    heard = [e[0] for e in events if e[1] == "notified" and e[2] == "u[1]" and e[3] == (final,)]
    assert heard and heard[0] <= finished_at(result, "u[1]")
    assert [e[0] for e in events if e[1] == "notified_aborted" and e[2] == "u[1]"
            and e[3] == (aborted,)] == heard[:1]
    for snapshot in result.snapshots:
        assert len({n for n in snapshot.finished if n.startswith("u[")}) in (0, 2)
    onceflow.check(result)


def test_a_final_aimed_notify_fault_loses_the_completion_that_would_release_its_target() -> None:
    final = final_checkpoint(onceflow.run(scenario()))
    aimed = onceflow.run(scenario(NotifyFault("lose", 0, "u[1]", 0.0, "final")))
    (fired,) = [e for e in aimed.trace.events if e[1] == "fault" and e[2] == "u[1]"]
    assert fired[3][:4] == ("notify", "notify_complete", final, "lose")
    assert aimed.status == "finished"
    onceflow.check(aimed)


def test_the_generator_draws_the_union_operator_behind_the_sources() -> None:
    from onceflow.strategies import scenario_from_seed

    drawn = [s for s in map(scenario_from_seed, range(120))
             if any(v.kind == "tally" for v in s.topology.vertices)]
    assert len(drawn) >= 10
    for s in drawn:
        assert s.checkpoints.mode != "unaligned"
        tally = s.topology.vertices[1]
        assert tally.kind == "tally" and tally.edge == "hash"
        assert tally.parallelism == s.topology.vertices[0].parallelism
    assert any(getattr(f, "message", None) == "final" for s in drawn for f in s.faults)


def test_subtasks_ending_apart_still_share_one_final_checkpoint() -> None:
    """Behind a forward edge (and in unaligned mode) a union operator's subtasks end their
    input at different checkpoints.  Flink aborts a checkpoint in which some but not all
    of them had finished their operators when they took it, so the fast ones wait for the
    slow ones (checkNoPartlyOperatorsFinishedVertexUsedUnionListState); without it the
    fast ones finish, every later checkpoint is partly finished, and the job never ends
    (a false 'stuck')."""
    aborted = 0
    for mode in ("aligned", "unaligned"):
        for splits in (1, 3):
            topology = Topology((Vertex("source", "source", 2),
                                 Vertex("u", "union_counter", 2, "forward"),
                                 Vertex("sink", "sink", 2, "forward")))
            s = Scenario(topology=topology,
                         workload=Workload(records=20, keys=4, splits=splits, skew=1.0),
                         checkpoints=CheckpointConfig(mode=mode, interval=2.0),
                         timing=Timing(latency=1.0, record_cost=0.1), sink="two_phase")
            result = onceflow.run(s)
            assert result.status == "finished", (mode, splits)
            onceflow.check(result)
            assert finished_at(result, "u[0]") >= 0 and finished_at(result, "u[1]") >= 0
            aborted += sum(1 for e in result.trace.events if e[1] == "partly_finished")
    assert aborted  # the rule acted: some checkpoint found the subtasks apart


#: unaligned, source(p=1) -> tally(p=4) -> sink, restored from checkpoint 2 at parallelism 8:
#: the tally subtasks end their input around checkpoint 3, some before their snapshot and
#: some after it, and an unaligned snapshot is acknowledged only once its channel state is
#: in (after the end of input): judged at the acknowledgement, checkpoint 3 completed, the
#: subtasks finished on different checkpoints and every later one aborted (a false 'stuck')
APART_UNALIGNED = (
    "of1.eNqNUttu2zAM_Rc9G4UTrEORXxkKg5XpWLUsCRSV1Aj87yPlJq03DJifJIvn6Fx0M3ZEO6XoAmdzuhnw"
    "7hyw79jNGAubU_vUHhrTF4I3j13mSGhOA_iMjREQ0gW8Tj03ZoaPzsZgCxEGgQpujr2MmxI-eU1jCBmcLvX8"
    "cc2z3CPb6HG7aADnRcZOXbs2ZoDidf3rVcgLQ7hvCDMDcfXAjHPSg6MoRw9LFSjoDBe8sykoC39fPH7uUFWJ"
    "jOzCJKr5Grs0QkazCfUiW_kzY1KCm0lA4L0c5NmcXgQYIOUxiorj-rpWlAtnxbyVYUDqCG2kPlfvdoQQ0HcW"
    "EljHS_357kQ8yfLp2O4-seKBMdhq5qCGlUoCz3z_k2y3nynJR9jKrE2qpJiij-dFRWlhOwuHo5i4ILGzuDnE"
    "_qwFDpGuQFrf5IKEZHIsZDWYPX7bzzXF4r4Nrs2DSxIdv4hY0MufPD_-"
    "5tnm_klTK_sPNTq2VfMRvh75zxqxvkAxn10MFXyNNGl-GtWEy9bao8H2-4OZ8FoDlmXyTp_XYV1_A_QAGxE")


def test_operators_finished_is_judged_when_the_snapshot_is_taken() -> None:
    from onceflow.properties.checks import judge_restored, restores_of  # noqa: PLC0415
    from onceflow.model.simulation import restore  # noqa: PLC0415
    from onceflow.token import decode  # noqa: PLC0415

    result = onceflow.run(decode(APART_UNALIGNED))
    restored = [restore(result, s, p) for s, p in restores_of(result) if s.id == 2 and p == 8]
    assert restored
    assert restored[0].status == "finished"
    judge_restored(restored[0], True)
    assert any(e[1] == "partly_finished" for e in restored[0].trace.events)
