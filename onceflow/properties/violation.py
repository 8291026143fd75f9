"""`Violation`: a failed property, with a diagnosis a person can act on.

Anomalies are named as Jepsen's queue checker names them: duplicate, lost,
reordered, uncommitted-read, stuck; plus `misrouted` for a record processed by
a subtask its edge does not route it to, and `nondeterministic` for a scenario
whose two runs differ.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from attrs import frozen

from onceflow.model.records import Record

if TYPE_CHECKING:
    from onceflow.model.simulation import RunResult

__all__ = ["ANOMALIES", "Finding", "RecordIssue", "Violation"]

ANOMALIES = ("duplicate", "lost", "reordered", "uncommitted-read", "stuck", "misrouted",
             "nondeterministic", "premature")


@frozen
class RecordIssue:
    """One offending record, with what happened to it."""

    id: str
    key: int
    split: int
    offset: int
    expected: int
    committed: int
    events: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "split": self.split, "offset": self.offset,
                "expected": self.expected, "committed": self.committed,
                "events": list(self.events)}


@frozen
class Finding:
    """A property's verdict on one timeline of a run."""

    property: str
    anomaly: str
    summary: str
    timeline: str
    records: tuple[RecordIssue, ...] = ()
    snapshot: str | None = None
    faults: tuple[str, ...] = ()
    token: str = ""
    digest: str = ""
    details: tuple[str, ...] = ()
    #: the modules `--plugin` must load to replay it (they register its components)
    plugins: tuple[str, ...] = ()

    @property
    def replay(self) -> str:
        """The command that replays this finding, plugins included."""
        return "onceflow" + "".join(f" --plugin {m}" for m in self.plugins) + \
            f" replay {self.token}"

    def to_data(self) -> dict[str, Any]:
        return {"property": self.property, "anomaly": self.anomaly, "summary": self.summary,
                "timeline": self.timeline, "snapshot": self.snapshot,
                "records": [r.to_data() for r in self.records], "faults": list(self.faults),
                "token": self.token, "digest": self.digest, "details": list(self.details),
                "plugins": list(self.plugins), "replay": self.replay}

    def render(self) -> str:
        lines = [f"{self.property} violated: {self.anomaly}: {self.summary}",
                 f"  timeline: {self.timeline}"]
        if self.snapshot:
            lines.append(f"  snapshot: {self.snapshot}")
        for r in self.records:
            lines.append(f"  {r.id} (key {r.key}, split {r.split}, offset {r.offset}): "
                         f"committed {r.committed}x, expected {r.expected}x")
            lines.extend(f"      {e}" for e in r.events)
        lines.extend(f"  {d}" for d in self.details)
        lines.append("  faults fired: " + ("; ".join(self.faults) if self.faults else "none"))
        lines.append(f"  digest: {self.digest}")
        lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)


class Violation(AssertionError):
    """A property does not hold; `finding` has the details, `str()` the diagnosis."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        super().__init__(finding.render())


def describe_faults(result: "RunResult") -> tuple[str, ...]:
    out = []
    for f in result.faults_fired:
        where = f" on {f['target']}" if f.get("target") else ""
        phase = f" at {f['phase']}" if f.get("phase") else ""
        ckpt = f" of checkpoint {f['checkpoint']}" if f.get("checkpoint") else ""
        effect = f" ({f['effect']})" if f.get("effect") else ""
        out.append(f"{f['kind']}{effect}{phase}{ckpt}{where} t={f['time']:g}")
    return tuple(out)


def record_events(result: "RunResult", record_id: str, limit: int = 6) -> tuple[str, ...]:
    """Where a record went on this timeline: its writes and commits in the store."""
    events: list[str] = []
    store = result.store
    attempts = [(t, d[0]) for t, kind, _, d in result.trace.events if kind == "deploy"]

    def attempt_at(time: float) -> int:
        n = 1
        for start, number in attempts:
            if start <= time:
                n = number
        return n

    fork = result.restored_from.completed if result.restored_from is not None else None
    inherited = _writes_before_fork(result, record_id)
    for entry in store.entries(result.end_time, committed_only=False):
        if entry.record.id != record_id:
            continue
        if fork is not None and (entry.written < fork or (
                entry.written == fork and inherited[entry.written] > 0)):
            if entry.written == fork:
                inherited[entry.written] -= 1
            origin = ", before the fork, on the original timeline"
        else:
            origin = _origin(result)
        if entry.txn is None:
            events.append(f"written at t={entry.written:g} (attempt {attempt_at(entry.written)}"
                          f"{origin}), visible at once")
        elif entry.committed is not None:
            events.append(f"committed in txn {entry.txn} at t={entry.committed:g} (written "
                          f"t={entry.written:g}, attempt {attempt_at(entry.written)}{origin})")
        else:
            failed = [t for op, t, *rest in _ops_of(store)
                      if op == "fail_commit" and rest and rest[0] == entry.txn]
            retry = (f"; its commit failed transiently at t={failed[-1]:g} (store fault) and "
                     "was never retried" if failed else "")
            events.append(f"written in txn {entry.txn} at t={entry.written:g}, never "
                          f"committed{retry}")
        if len(events) >= limit:
            break
    if len(events) < limit:
        for entry, txn in store.destroyed(result.end_time):
            if entry.record.id != record_id:
                continue
            why = (f"expired at t={txn.ended:g}: the store's transaction timeout "
                   f"({store.txn_timeout:g} ms) ran out before the commit"
                   if txn.state == "expired" else f"aborted at t={txn.ended:g}")
            events.append(f"written in txn {entry.txn} at t={entry.written:g} "
                          f"(attempt {attempt_at(entry.written)}), then {why}")
            if len(events) >= limit:
                break
    if not events:
        events.append("never reached the store on this timeline")
    return tuple(events)


def _ops_of(store: Any) -> list[tuple[Any, ...]]:
    ops = getattr(store, "ops", None)
    return ops if isinstance(ops, list) else []


def _writes_before_fork(result: "RunResult", record_id: str) -> Counter[float]:
    """Per write time, how many writes of `record_id` the restored store inherited from
    the original timeline (a write at the very moment of the fork may be on either side:
    the store's operation log, not the clock, says which)."""
    snapshot = result.restored_from
    version = getattr(snapshot, "store_version", None)
    counts: Counter[float] = Counter()
    if snapshot is None or not isinstance(version, int):
        return counts
    for op in _ops_of(result.store)[:version]:
        if op[0] in ("append", "upsert"):
            records = op[2]
        elif op[0] == "write":
            records = op[3]
        else:
            continue
        if op[1] == snapshot.completed:
            counts[op[1]] += sum(1 for r in records if getattr(r, "id", None) == record_id)
    return counts


def _origin(result: "RunResult") -> str:
    if result.restored_from is None:
        return ""
    s = result.restored_from
    return f" after restore from {s.kind} {s.id} (completed t={s.completed:g})"


def issue(record: Record, expected: int, committed: int, result: "RunResult") -> RecordIssue:
    return RecordIssue(record.id, record.key, record.split, record.offset, expected, committed,
                       record_events(result, record.id))
