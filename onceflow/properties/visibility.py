"""Visibility at every moment: read-committed readers see only what completed snapshots cover.

For a sink that declares exactly-once, a record may become visible to a
read-committed reader at time t only if a snapshot that had completed by t
covers it: the sink had taken the record before its part of that snapshot
(so no restore can produce the record again).  The store records every
change of visibility as it happens (`Store.visibility()`); this property
replays those events against the sink subtasks' `process` and `snapshot`
events and the coordinator's `completed` ones, once, without re-reading the
store.  Writes by key (upserts) are exempt: a replay overwrites them.

A violation is the anomaly `premature`, naming the records, the transaction
and the moment.  (A read that later disappears is `uncommitted-read`, judged
by `read_committed_isolation`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onceflow.properties.guarantees import EXACTLY_ONCE, guarantee
from onceflow.stores import StoreError, Visible

if TYPE_CHECKING:
    from onceflow.model.simulation import RunResult

__all__ = ["coverage", "premature_visibility", "visibility_events"]


def coverage(result: "RunResult") -> dict[str, float]:
    """When each record id was first covered by a completed snapshot on this timeline
    (records covered by the snapshot the timeline was restored from: at its start)."""
    covered: dict[str, float] = {}
    if result.parent is not None and result.restored_from is not None:
        start = result.restored_from.completed
        for rid, at in coverage(result.parent).items():
            if at <= start:
                covered[rid] = float("-inf")
    sink = result.scenario.topology.vertices[-1].uid
    prefix = sink + "["
    gen = 0                                   # the attempt (a deploy starts the next)
    taken: dict[tuple[int, str], list[str]] = {}  # (attempt, sink subtask) -> ids, in order
    upto: dict[tuple[int, str], int] = {}     # how many of them are covered already
    marks: dict[int, list[tuple[tuple[int, str], int]]] = {}  # snapshot -> where it cut each
    for time, kind, where, detail in result.trace.events:
        if kind == "process":
            if where.startswith(prefix):
                taken.setdefault((gen, where), []).extend(r.id for r in detail[0])
        elif kind == "snapshot":
            if where.startswith(prefix):
                part = (gen, where)
                marks.setdefault(detail[0], []).append((part, len(taken.get(part, ()))))
        elif kind == "completed" and where == "coordinator":
            for part, index in marks.pop(detail[0], ()):
                done = upto.get(part, 0)
                if index > done:
                    for rid in taken[part][done:index]:
                        covered.setdefault(rid, time)
                    upto[part] = index
        elif kind == "deploy":
            gen += 1
    return covered


def premature_visibility(result: "RunResult") -> None:
    """For an exactly-once sink: nothing becomes visible before a completed snapshot covers it."""
    if guarantee(result.scenario) != EXACTLY_ONCE:
        return
    start = result.store_start
    events = [v for v in visibility_events(result.store) if v.version > start and not v.upsert
              and v.ids]
    if not events:
        return
    covered = coverage(result)
    for v in events:
        early = [rid for rid in v.ids if covered.get(rid, float("inf")) > v.time]
        if early:
            raise _premature(result, v, early, covered)


def visibility_events(store: Any) -> list[Visible]:
    """The store's visibility events, checked: a store that breaks the protocol here is
    named as such (a StoreError), never judged."""
    try:
        events = [Visible(float(v.time), int(v.version), v.txn, tuple(str(i) for i in v.ids),
                          bool(v.upsert)) for v in store.visibility()]
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store ({type(store).__name__}) broke the store protocol: "
                         f"visibility() must return onceflow.stores.Visible events, it gave "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    return events


def _premature(result: "RunResult", v: object, early: list[str],
               covered: dict[str, float]) -> Exception:
    from onceflow.properties.checks import _finding  # noqa: PLC0415 (cycle)
    from onceflow.properties.violation import issue  # noqa: PLC0415

    time, txn = v.time, v.txn  # type: ignore[attr-defined]
    how = f"the commit of transaction {txn}" if txn else "a write outside any transaction"
    first = early[0]
    when = covered.get(first)
    later = (f"; the first completed snapshot covering it completed at t={when:g}"
             if when is not None else "; no completed snapshot covers it on this timeline")
    records = {r.id: r for r in result.store.read_uncommitted(result.end_time)}
    committed = sum(1 for r in result.committed() if r.id == first)
    shown = tuple(issue(records[rid], 1, committed if rid == first else
                        sum(1 for r in result.committed() if r.id == rid), result)
                  for rid in early[:3] if rid in records)
    more = f" and {len(early) - 1} more" if len(early) > 1 else ""
    return _finding(
        result, "visibility", "premature",
        f"{first}{more} became visible to read-committed readers at t={time:g} by {how}, "
        f"before any completed snapshot covered {'them' if more else 'it'}{later}",
        records=shown,
        details=(f"visible at t={time:g} via {how}: {', '.join(early[:10])}"
                 + (" ..." if len(early) > 10 else ""),
                 "a sink that declares exactly-once may make records visible only after the "
                 "checkpoint that covers them completes (commit on notify-checkpoint-complete, "
                 "not at pre-commit)"))
