"""What both reports draw from: a timeline's events, forks included, and its offending records."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from attrs import frozen

from onceflow.model.records import Record
from onceflow.model.simulation import RunResult
from onceflow.model.snapshot import Snapshot
from onceflow.properties.violation import Finding

__all__ = ["RESTORED", "Event", "Offenders", "events_of", "history", "snapshot_label",
           "store_events"]

Event = tuple[float, str, str, tuple[Any, ...]]

#: A synthetic event kind: where a restored timeline forks off its parent.
RESTORED = "restored"
_MIRRORED = frozenset({"pre_commit", "commit", "commit_lost", "commit_retry", "abort"})


def snapshot_label(snapshot: Snapshot) -> str:
    """A snapshot as findings name it: `checkpoint 3 (completed t=12.5)`."""
    return f"{snapshot.kind} {snapshot.id} (completed t={snapshot.completed:g})"


def history(result: RunResult) -> list[Event]:
    """The events of `result`'s timeline: its parent's up to the fork, then its own."""
    own = list(result.trace.events)
    snapshot = result.restored_from
    if result.parent is None or snapshot is None:
        return own
    before = history(result.parent)
    cut = _completion(before, snapshot)
    fork: Event = (snapshot.completed, RESTORED, "job", (snapshot_label(snapshot),))
    return before[:cut] + [fork] + own


def events_of(result: RunResult, offenders: Offenders) -> list[Event]:
    """The timeline's events with what the store did to the offending transactions."""
    events = history(result)
    return list(heapq.merge(events, store_events(result, offenders, events), key=lambda e: e[0]))


def _completion(events: list[Event], snapshot: Snapshot) -> int:
    """How many events precede and include the completion of `snapshot`."""
    for i in range(len(events) - 1, -1, -1):
        _, kind, _, detail = events[i]
        if kind == "completed" and tuple(detail[:2]) == (snapshot.id, snapshot.kind):
            return i + 1
    return sum(1 for e in events if e[0] <= snapshot.completed)


def op_records(op: tuple[Any, ...]) -> list[Any]:
    """The records a store write operation carries: ("write", now, txn, records),
    ("append", now, records), ("upsert", now, records, keys)."""
    records = op[3] if op[0] == "write" else op[2]
    return list(records or ())


@frozen
class Offenders:
    """The offending record ids of a finding, and where they show on a timeline."""

    ids: tuple[str, ...]
    txns: dict[str, tuple[str, ...]]  # transaction id -> offending ids written into it
    writes: tuple[tuple[float, str, tuple[str, ...]], ...]  # (time, txn or "", ids) per write

    @classmethod
    def of(cls, result: RunResult, finding: Finding | None) -> Offenders:
        ids = tuple(r.id for r in finding.records) if finding is not None else ()
        wanted = set(ids)
        txns: dict[str, list[str]] = {}
        writes = []
        for op in result.store.ops if wanted else ():
            if op[0] not in ("write", "append", "upsert"):
                continue
            hit = tuple(r.id for r in op_records(op) if r.id in wanted)
            if hit:
                txn = op[2] if op[0] == "write" else ""
                writes.append((op[1], txn, hit))
                if txn:
                    txns.setdefault(txn, []).extend(hit)
        held = {t: tuple(i for i in ids if i in v) for t, v in txns.items()}
        return cls(ids, held, tuple(writes))

    def in_buffer(self, records: Iterable[Record]) -> list[str]:
        """The offending records (or their inputs) in a buffer, named: `r3`, `r3 (→ r3.0)`."""
        if not self.ids:
            return []
        out = []
        for record in records:
            if record.id in self.ids:
                out.append(record.id)
                continue
            heirs = [i for i in self.ids if i.startswith(record.id + ".")]
            if heirs:
                out.append(f"{record.id} (→ {', '.join(heirs)})")
        return out

    def in_txn(self, txn: Any) -> tuple[str, ...]:
        return self.txns.get(txn, ()) if isinstance(txn, str) else ()

    def written_at(self, time: float, records: Iterable[Record]) -> list[str]:
        """The transactions (\"\" for a plain write) that got offending `records` at `time`."""
        ids = {r.id for r in records}
        return sorted({txn for t, txn, hit in self.writes if t == time and ids.intersection(hit)})


def store_events(result: RunResult, offenders: Offenders, events: list[Event]) -> list[Event]:
    """What became of the offending records' transactions where no trace event says so:
    a commit or abort nobody traced (a closing task), an expiry, an end still open.
    Synthetic events on the "store" lane: txn_committed/aborted/expired/open."""
    store = result.store
    store.unfinished(result.end_time)  # lets the store expire what timed out by the end
    shown = {(e[0], e[3][0]) for e in events if e[1] in _MIRRORED and e[3]}
    out: list[Event] = []
    for txn_id in offenders.txns:
        txn = store.txns.get(txn_id)
        if txn is None:
            continue
        kind = {"committed": "txn_committed", "aborted": "txn_aborted",
                "expired": "txn_expired"}.get(txn.state, "txn_open")
        time = txn.ended if txn.ended is not None else result.end_time
        if (time, txn_id) not in shown:
            out.append((time, kind, "store", (txn_id, txn.state)))
    return sorted(out, key=lambda e: e[0])
