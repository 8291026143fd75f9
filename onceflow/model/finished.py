"""Which operators of a snapshot had finished, and whether a job may restore it (FLIP-147).

Flink checks this when a job starts from a savepoint or a retained checkpoint
(`VertexFinishedStateChecker`, called by `CheckpointCoordinator.restoreSavepoint`
and on a job manager's recovery; a failover within a running job does not check):

1. the predecessors of a fully finished vertex are fully finished;
2. a partially finished vertex fed by an all-to-all edge (hash, rebalance,
   broadcast) has a fully finished predecessor;
3. a partially finished vertex fed by a pointwise edge (forward) has a predecessor
   that is at least partially finished.

Otherwise the restore fails ("Illegal JobGraph modification") and the job does not
start.  A job whose tasks finish in Flink's order (a task finishes only after
EndOfPartition came on all its inputs) takes no snapshot that breaks these rules:
only a changed job graph does (a new running operator before a finished one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onceflow.errors import RestoreError

if TYPE_CHECKING:
    from onceflow.model.snapshot import Snapshot
    from onceflow.scenario import Topology

__all__ = ["ALL_RUNNING", "FULLY_FINISHED", "PARTIALLY_FINISHED", "FinishedStateError",
           "check_finished_state", "finished_state"]

ALL_RUNNING = "all running"
PARTIALLY_FINISHED = "partially finished"
FULLY_FINISHED = "fully finished"


class FinishedStateError(RestoreError):
    """A snapshot's finished operators cannot be restored into this job graph: a
    finished operator has a predecessor that had not finished (as Flink refuses)."""


def finished_state(snapshot: "Snapshot", uid: str) -> str:
    """ALL_RUNNING, PARTIALLY_FINISHED or FULLY_FINISHED: how many of operator `uid`'s
    subtasks had finished in `snapshot` (an operator it does not hold runs)."""
    n = snapshot.parallelism.get(uid, 0)
    done = sum(f"{uid}[{s}]" in snapshot.finished for s in range(n))
    if n and done == n:
        return FULLY_FINISHED
    return PARTIALLY_FINISHED if done else ALL_RUNNING


def check_finished_state(snapshot: "Snapshot", topology: "Topology") -> None:
    """Raise `FinishedStateError` where Flink's `VertexFinishedStateChecker` refuses to
    start `topology` from `snapshot`."""
    if not snapshot.finished:
        return
    vertices = topology.vertices
    states = [finished_state(snapshot, v.uid) for v in vertices]
    for i in range(1, len(vertices)):
        vertex, state, before = vertices[i], states[i], states[i - 1]
        pred = vertices[i - 1].uid
        fix = (f"restore a snapshot taken before {vertex.uid!r} finished, or keep the job "
               f"graph the snapshot was taken with (no running operator before a finished one)")
        if state == FULLY_FINISHED and before != FULLY_FINISHED:
            raise FinishedStateError(
                f"{snapshot.label}: operator {vertex.uid!r} had fully finished but its "
                f"predecessor {pred!r} is {before} (Flink: Illegal JobGraph modification, "
                f"a fully finished vertex has a predecessor not fully finished); {fix}")
        if state != PARTIALLY_FINISHED:
            continue
        pointwise = vertex.edge == "forward"
        if (not pointwise and before != FULLY_FINISHED) or (pointwise and before == ALL_RUNNING):
            edge = "a pointwise" if pointwise else "an all-to-all"
            raise FinishedStateError(
                f"{snapshot.label}: operator {vertex.uid!r} had partially finished, fed by "
                f"{edge} ({vertex.edge}) edge from {pred!r}, which is {before} (Flink: Illegal "
                f"JobGraph modification); {fix}")
