"""Rollback restores: restore a completed snapshot into the external system as it stands later.

A fork restore rewinds the world to the moment a snapshot completed (a crash
right after it).  Users also stop a job, let the world move on, and restore an
older savepoint or retained checkpoint (a rollback, an A/B upgrade, recovery
from a bad deploy): the store then holds everything the job committed after
the snapshot.  What must hold then:

- nothing is lost: every record of the oracle's output is committed;
- a record appears more often than the oracle says only if the original job
  committed it after the snapshot (at most once more per such commit);
- the restored job itself is exactly-once: it commits no record more often
  than the oracle says.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterator


if TYPE_CHECKING:
    from onceflow.model.simulation import RunResult
    from onceflow.model.snapshot import Snapshot

__all__ = ["judge_rollback", "rollback_effects", "rollback_restores", "rollbacks_of"]


def rollbacks_of(result: "RunResult") -> Iterator[tuple["Snapshot", int | None, float | None]]:
    """The snapshots worth restoring into the store as it stands later: those after which
    the store moved on (else a rollback is the fork restore), each with its moment: the
    end of the run (None) or, for every other snapshot, a moment drawn from the
    scenario's seed between the snapshot's completion and the end."""
    from onceflow.properties.checks import restores_of  # noqa: PLC0415 (cycle)

    ops = result.store.ops
    end = len(ops)
    for snapshot, parallelism in restores_of(result):
        if snapshot.store_version >= end:
            continue
        draw = random.Random(f"{result.scenario.seed}:{result.timeline}:{snapshot.id}")
        at = None
        if draw.random() < 0.5:
            moments = sorted({op[1] for op in ops[snapshot.store_version:]
                              if snapshot.completed <= op[1] < result.end_time})
            if moments:
                at = draw.choice(moments)
        yield snapshot, parallelism, at


def rollback_restores(result: "RunResult", on_restore: Callable[["RunResult"], None] | None = None,
                      *, expect: str | None = None) -> None:
    """Restore every snapshot by rollback and judge each restored timeline."""
    from onceflow.model.simulation import restore  # noqa: PLC0415
    from onceflow.properties.checks import promised_on  # noqa: PLC0415

    for snapshot, parallelism, at in rollbacks_of(result):
        restored = restore(result, snapshot, parallelism, into="rollback", at=at)
        if on_restore is not None and restored.error is None:
            on_restore(restored)
        judge_rollback(restored, promised_on(restored, expect))


def judge_rollback(restored: "RunResult", promised: bool) -> None:
    """The properties of a rollback restore (into the store as it stood later)."""
    from onceflow.properties.checks import (job_liveness, no_loss,  # noqa: PLC0415
                                            partitioning, raise_restore_error)
    from onceflow.properties.visibility import premature_visibility  # noqa: PLC0415

    raise_restore_error(restored, "rolled back to")
    job_liveness(restored)
    rollback_no_loss(restored, no_loss)
    if promised:
        rollback_effects(restored)
        premature_visibility(restored)
    partitioning(restored)


def rollback_no_loss(restored: "RunResult", no_loss: Callable[["RunResult"], None]) -> None:
    """No loss, except records the snapshot covers whose transactions the original job
    itself aborted (or the store expired) before the rollback moment: a recovery of the
    original job from an older checkpoint aborts a later savepoint's transactions, as
    Flink's sinks do, and no restore can commit them again."""
    from onceflow.properties.visibility import coverage  # noqa: PLC0415
    from onceflow.properties.violation import Violation  # noqa: PLC0415
    from onceflow.stores import fork_of  # noqa: PLC0415

    try:
        no_loss(restored)
    except Violation as violation:
        parent, snapshot = restored.parent, restored.restored_from
        if parent is None or snapshot is None:
            raise
        from onceflow.properties.checks import expected_records  # noqa: PLC0415

        have = {e.record.id for e in restored.store.entries(restored.end_time, past_open=True)}
        lost = {r.id for r in expected_records(restored)} - have
        if not lost or violation.finding.anomaly != "lost":
            raise
        covered = {i for i, at in coverage(parent).items() if at <= snapshot.completed}
        if not lost <= covered:
            raise
        # the original job went back to an older snapshot after this one: its sinks
        # aborted what they found lingering, this snapshot's transactions included
        went_back = any(kind == "deploy" and detail[0] > 1 and _older(detail[1], snapshot.id)
                        and snapshot.completed < time <= restored.started
                        for time, kind, _, detail in parent.trace.events)
        if went_back:
            return
        world = fork_of(parent.store, restored.store_start)
        try:
            gone = {e.record.id for e, _ in world.destroyed(restored.started)}
        finally:
            world.close()
        if not lost <= gone:
            raise


def _older(label: object, snapshot_id: int) -> bool:
    """A deploy label ("start", "checkpoint 3") names a snapshot older than `snapshot_id`."""
    words = str(label).split()
    if not words or words[-1] == "start":
        return True
    try:
        return int(words[-1]) < snapshot_id
    except ValueError:
        return True


def rollback_effects(restored: "RunResult") -> None:
    """Duplicates only of records committed after the snapshot; none by the restored job."""
    from onceflow.properties.checks import (MAX_RECORDS_SHOWN, _finding,  # noqa: PLC0415
                                            _id_order, _ids_stable, _root, expected_records)
    from onceflow.properties.violation import issue  # noqa: PLC0415
    from onceflow.properties.visibility import visibility_events  # noqa: PLC0415

    parent, snapshot = restored.parent, restored.restored_from
    if (restored.status != "finished" or parent is None or snapshot is None
            or not _ids_stable(_root(restored).scenario)):
        return
    expected_list = expected_records(restored)
    expected = Counter(r.id for r in expected_list)
    entries = restored.store.entries(restored.end_time, past_open=True)
    final = Counter(e.record.id for e in entries)
    later: Counter[str] = Counter()
    for v in visibility_events(parent.store):
        if snapshot.store_version < v.version <= restored.store_start and not v.upsert:
            later.update(v.ids)
    mine: Counter[str] = Counter()
    for v in visibility_events(restored.store):
        if v.version > restored.store_start and not v.upsert:
            mine.update(v.ids)
    by_id = {e.record.id: e.record for e in entries}
    twice = sorted((i for i in mine if mine[i] > expected.get(i, 0)), key=_id_order)
    if twice:
        shown = tuple(issue(by_id[i], expected.get(i, 0), final[i], restored)
                      for i in twice[:MAX_RECORDS_SHOWN])
        raise _finding(restored, "rollback", "duplicate",
                       f"{len(twice)} record(s) committed by the restored job more often than "
                       f"once per expected output ({twice[0]}: {mine[twice[0]]}x)",
                       records=shown)
    extra = sorted((i for i in final if final[i] > expected.get(i, 0) + later.get(i, 0)),
                   key=_id_order)
    if extra:
        i = extra[0]
        shown = tuple(issue(by_id[j], expected.get(j, 0), final[j], restored)
                      for j in extra[:MAX_RECORDS_SHOWN])
        raise _finding(restored, "rollback", "duplicate",
                       f"{len(extra)} record(s) appear more often than the oracle allows after "
                       f"a rollback ({i}: {final[i]}x, expected {expected.get(i, 0)}x, committed "
                       f"{later.get(i, 0)}x after the snapshot by the original job)",
                       records=shown)
