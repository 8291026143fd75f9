"""A text timeline of one run's timeline, centred on a finding's offending records.

One line per event, `t=12.345  where  what`, in time order.  Control events
(barriers, snapshots, commits, crashes, restores) are always shown; a record
buffer (`read`/`process`) only when it carries an offending record, or, with
no finding, as a one-line summary when the run is small.  Acknowledgements
are left out: `completed` says every subtask acknowledged.  So are the barrier's
single hops (`barrier_sent`, `barrier_received`): a task's snapshot line says
how its barriers came in (`aligned after 4.2 ms`), and an unaligned barrier
that overtook records gets a line of its own.  The `restore` of every task of
one deployment is one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import takewhile
from typing import Any, NamedTuple

from onceflow.errors import RestoreError, TokenError
from onceflow.model.simulation import RunResult, follow, restore
from onceflow.properties.checks import restores_of, timeline_label
from onceflow.properties.violation import Finding
from onceflow.timelines import TimelineSpec
from onceflow.token import decode_timeline
from onceflow.report._history import RESTORED, Event, Offenders, events_of, snapshot_label

__all__ = ["text_timeline", "violating_timeline"]

BUFFER_KINDS = frozenset({"read", "process"})
HIDDEN_KINDS = frozenset({"ack", "barrier_sent", "barrier_received"})
#: Events the elision gives up last (and keeps close to when no record is offending).
INCIDENT_KINDS = frozenset({"crash", "failed", "fault", "restart", "deploy", "restore",
                            "aborted", "declined", "commit_lost", RESTORED,
                            "savepoint_failed", "finished"})
#: With no finding, record buffers are summarized only for traces this short.
SMALL_RUN_EVENTS = 400
MARK, NO_MARK = ">> ", "   "


class Line(NamedTuple):
    time: float
    where: str
    what: str
    marked: bool
    incident: bool  # a crash, restore, abort...: or a transaction of offending records

    @property
    def tier(self) -> int:
        """Which lines the elision gives up last: incidents, then offending records."""
        return 0 if self.incident else 1 if self.marked else 2


# -- the API -------------------------------------------------------------------------------

def text_timeline(result: RunResult, finding: Finding | None = None, *, limit: int = 80) -> str:
    """A readable timeline of `result` (the timeline `finding` is about), at most `limit`
    event lines; lines of the offending records start with `>>`."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    offenders = Offenders.of(result, finding)
    events = events_of(result, offenders)
    summarize = finding is None and len(events) <= SMALL_RUN_EVENTS
    lines = [line for _, line in described(events, offenders, summarize) if line is not None]
    return "\n".join([_header(result, finding)] + _render(lines, limit))


def violating_timeline(result: RunResult, finding: Finding) -> RunResult:
    """The timeline `finding` is about: `result` itself for "the original run", else
    `result` restored as the finding's token names it (which snapshot, fork or rollback,
    parallelism, rescale-chain links); for a token that names no timeline (`of1.`, of
    an earlier onceflow), the restore of `result` whose snapshot and parallelism match
    the finding's label."""
    if finding.timeline == timeline_label(result):
        return result
    spec = _spec_of(finding)
    if spec is not None and not spec.original:
        return follow(result, spec)
    if not finding.timeline.startswith("restored from"):
        raise RestoreError(f"the finding is about {finding.timeline!r}, not a restore of "
                           f"{timeline_label(result)!r}")
    label = finding.snapshot or finding.timeline.removeprefix("restored from ").split(" at ")[0]
    wanted = _parallelism_in(finding.timeline)
    matches = [(snapshot, parallelism) for snapshot, parallelism in restores_of(result)
               if snapshot_label(snapshot) == label]
    for snapshot, parallelism in matches:
        if parallelism == wanted or (wanted is None and len(matches) == 1):
            return restore(result, snapshot, parallelism)
    if matches and wanted is None:
        return restore(result, *matches[0])
    raise RestoreError(f"no restorable snapshot of this run matches {finding.timeline!r}; "
                       "pass the run the finding came from, or replay the finding's token "
                       "with the onceflow that printed it")


def _spec_of(finding: Finding) -> TimelineSpec | None:
    try:
        return decode_timeline(finding.token)[1] if finding.token else None
    except (TokenError, ValueError):
        return None


def _parallelism_in(label: str) -> int | None:
    """The N of the first "at parallelism N" in a timeline label (None: not rescaled)."""
    head = label.split(", on the timeline ")[0]
    match = re.search(r" at parallelism (\d+)", head)
    return int(match.group(1)) if match else None


# -- events to lines ---------------------------------------------------------------------------

def described(events: list[Event], offenders: Offenders,
              summarize: bool) -> Iterator[tuple[Event, Line | None]]:
    """Each event with its line (None: not shown)."""
    names: dict[int, str] = {}  # snapshot ids by kind ("savepoint 3"): both kinds share ids
    arrivals: dict[tuple[str, Any], Event] = {}  # (task, snapshot id) -> its `aligned`
    restored: set[tuple[float, Any]] = set()  # (time, snapshot id) of restores told
    for i, event in enumerate(events):
        kind = event[1]
        if kind == "trigger":
            names[event[3][0]] = f"{event[3][1]} {event[3][0]}"
        elif kind == "aligned":
            arrivals[(event[2], event[3][0])] = event  # told with the snapshot line
            yield event, None
            continue
        elif kind == "barriers_complete" and not event[3][2]:
            yield event, None  # no channel state: the snapshot line says enough
            continue
        elif kind == "restore":
            yield event, _restore_line(events, i, restored)
            continue
        yield event, _event_line(event, offenders, summarize, names, arrivals)


def _restore_line(events: list[Event], i: int, told: set[tuple[float, Any]]) -> Line | None:
    """One line for the restores of one snapshot at one moment (a deployment)."""
    time, _, where, detail = events[i]
    if (time, detail[0]) in told:
        return None
    told.add((time, detail[0]))
    tasks = [e[2] for e in takewhile(lambda e: e[0] == time, events[i:])
             if e[1] == "restore" and e[3] == detail]
    who = where if len(tasks) == 1 else f"{len(tasks)} tasks"
    return Line(time, "job" if len(tasks) > 1 else where,
                f"{who} restore {detail[1]} {detail[0]}", False, True)


def _event_line(event: Event, offenders: Offenders, summarize: bool,
                names: dict[int, str], arrivals: dict[tuple[str, Any], Event]) -> Line | None:
    time, kind, where, detail = event
    if kind in HIDDEN_KINDS:
        return None
    if kind in BUFFER_KINDS:
        return _buffer_line(event, offenders, summarize)
    held = offenders.in_txn(detail[0]) if detail else ()
    what = _describe(kind, where, detail, names)
    if kind == "barrier_overtaken" and not detail[2]:
        return None  # overtook nothing: the snapshot line says enough
    if kind == "snapshot":
        what = _arrival(arrivals.pop((where, detail[0]), None), what)
    if held:
        what += f"; holds {', '.join(held)}"
    return Line(time, _where(where), what, bool(held), kind in INCIDENT_KINDS or bool(held))


def _buffer_line(event: Event, offenders: Offenders, summarize: bool) -> Line | None:
    time, kind, where, (records,) = event
    verb = "read" if kind == "read" else "processed"
    hits = offenders.in_buffer(records)
    if hits:
        what = f"{verb} {', '.join(hits)} ({len(hits)} of {_count(len(records))})"
        txns = offenders.written_at(time, records)
        if txns:
            what += "; written " + ", ".join(f"in txn {t}" if t else "to the store" for t in txns)
        return Line(time, where, what, True, False)
    if summarize and records:
        span = records[0].id if len(records) == 1 else f"{records[0].id}..{records[-1].id}"
        return Line(time, where, f"{verb} {_count(len(records))} ({span})", False, False)
    return None


def _arrival(arrival: Event | None, what: str) -> str:
    """A snapshot line with how long the task aligned, when it had to wait."""
    if arrival is None or not arrival[3][2]:
        return what
    head, _, tail = what.partition(": ")
    return f"{head}: aligned after {arrival[3][2]:.3f} ms, {tail}"


def _count(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


def _where(where: str) -> str:
    return "coordinator" if where == "*" else where


def _describe(kind: str, where: str, d: tuple[Any, ...], names: dict[int, str]) -> str:
    """What one control event means, in words."""

    def snap(i: int) -> str:
        return names.get(i, f"checkpoint {i}")

    words: dict[str, Callable[[], str]] = {
        "trigger": lambda: f"trigger {d[1]} {d[0]}",
        "snapshot": lambda: f"barrier of {d[1]} {d[0]}: snapshot taken",
        "completed": lambda: f"{d[1]} {d[0]} completed",
        "aborted": lambda: f"{snap(d[0])} aborted: {d[1]}",
        "declined": lambda: f"declined {snap(d[0])}: {d[1]}",
        "notified": lambda: f"notified: {snap(d[0])} complete",
        "notified_aborted": lambda: f"notified: {snap(d[0])} aborted",
        "pre_commit": lambda: f"pre-commit txn {d[0]} ({snap(d[1])})",
        "commit": lambda: f"COMMIT txn {d[0]} ({snap(d[1])}, {d[2]})",
        "commit_lost": lambda: f"commit of txn {d[0]} FAILED: aborted or expired "
                               f"({snap(d[1])}, {d[2]})",
        "commit_retry": lambda: f"commit of txn {d[0]} failed transiently, retrying",
        "abort": lambda: f"ABORT txn {d[0]}",
        "global_commit": lambda: f"GLOBAL COMMIT of {snap(d[1])}: txn {', '.join(d[0]) or '-'} "
                                 f"({d[2]})",
        "global_commit_lost": lambda: f"global commit of {snap(d[1])} FAILED: txn "
                                      f"{', '.join(d[0])} aborted or expired ({d[2]})",
        "global_commit_retry": lambda: f"global commit of {snap(d[1])} failed transiently, "
                                       "retrying",
        "crash": lambda: ("coordinator " if where == "coordinator" else "") + f"CRASH: {d[1]}",
        "failed": lambda: ("coordinator lost, no durable checkpoint store: the job fails"
                           if where == "coordinator" else "attempt failed: every task stops"),
        "barrier_overtaken": lambda: f"barrier of {snap(d[0])} overtook {_count(d[2])} in "
                                     "flight: channel state",
        "barriers_complete": lambda: f"barrier of {snap(d[0])} arrived on every input: "
                                     f"{_count(d[2])} kept as channel state",
        "alignment_cancelled": lambda: f"alignment of {snap(d[0])} given up: barrier or "
                                       f"cancel marker of {snap(d[1])} arrived",
        "cancel_sent": lambda: f"{snap(d[0])} given up here: cancel marker sent downstream "
                               "instead of its barrier",
        "cancel_received": lambda: f"cancel marker of {snap(d[0])} received on input {d[1]}",
        "aligned": lambda: f"barrier of {snap(d[0])} arrived on every input: aligned after "
                           f"{d[2]:.3f} ms",
        "barrier_sent": lambda: f"barrier of {snap(d[0])} sent downstream",
        "barrier_received": lambda: f"barrier of {snap(d[0])} received on input {d[1]} "
                                    f"from {d[2]}",
        "restore": lambda: f"restore {d[1]} {d[0]}",
        "restart": lambda: f"restart #{d[0]} from "
                           + (f"checkpoint {d[1]}" if d[1] is not None else "scratch"),
        "deploy": lambda: f"deploy attempt {d[0]} from {d[1]}",
        RESTORED: lambda: f"RESTORED from {d[0]}: the original run's later events are not "
                          "on this timeline",
        "end_of_input": lambda: "end of input",
        "task_finished": lambda: "task finished (its final checkpoint completed, its "
                                 "records processed downstream)",
        "triggered": lambda: f"{snap(d[0])} triggered here: every task upstream finished",
        "partition_finished": lambda: f"input {d[0]} finished (its sender finished): "
                                      "no barrier waited for on it",
        "finished": lambda: "job finished",
        "savepoint_failed": lambda: f"savepoint failed: {d[0]}",
        "fault": lambda: _fault(d),
        "txn_committed": lambda: f"txn {d[0]} committed",
        "txn_aborted": lambda: f"txn {d[0]} aborted",
        "txn_expired": lambda: f"txn {d[0]} EXPIRED (transaction timeout)",
        "txn_open": lambda: f"txn {d[0]} still {d[1]} at the end: NEVER COMMITTED",
    }
    describe = words.get(kind)
    return describe() if describe is not None else f"{kind} {' '.join(map(str, d))}".rstrip()


def _fault(d: tuple[Any, ...]) -> str:
    kind, phase, checkpoint, effect = (*d, None, None, None)[:4]  # effect: see faults.injector
    return (f"FAULT {kind}" + (f" {effect}" if isinstance(effect, str) else "")
            + (f" at {phase}" if phase else "")
            + (f" of checkpoint {checkpoint}" if checkpoint else ""))


# -- layout and elision ------------------------------------------------------------------------

def _header(result: RunResult, finding: Finding | None) -> str:
    if finding is None:
        return f"# run {result.run_id}: {result.status} at t={result.end_time:.3f}"
    ids = ", ".join(r.id for r in finding.records) or "none"
    return (f"# {finding.property}: {finding.anomaly} ({finding.timeline}); "
            f"offending records: {ids}")


def _render(lines: list[Line], limit: int) -> list[str]:
    kept = _keep(lines, limit)
    shown = [lines[i] for i in sorted(kept)]
    times = {line.time: f"t={line.time:.3f}" for line in shown}
    t_width = max(map(len, times.values()), default=0)
    w_width = max((len(line.where) for line in shown), default=0)
    out: list[str] = []
    skipped = 0
    for i, line in enumerate(lines):
        if i not in kept:
            skipped += 1
            continue
        if skipped:
            out.append(_elided(skipped))
            skipped = 0
        mark = MARK if line.marked else NO_MARK
        out.append(f"{mark}{times[line.time]:<{t_width}}  {line.where:<{w_width}}  {line.what}")
    if skipped:
        out.append(_elided(skipped))
    return out


def _elided(n: int) -> str:
    return f"{NO_MARK}... {n} line{'' if n == 1 else 's'} elided ..."


def _keep(lines: list[Line], limit: int) -> set[int]:
    """The indices of the lines to show: those nearest the anchors (incidents first), so
    that the shown lines and the elision notes together stay within `limit`."""
    n = len(lines)
    if n <= limit:
        return set(range(n))
    anchors = _anchors(lines)
    distance = _distances(n, anchors)
    order = sorted(range(n), key=lambda i: (distance[i], lines[i].tier, i))
    for k in range(limit, 0, -1):
        kept = _fill_single_gaps(set(order[:k]), n)
        if len(kept) + _gaps(kept, n) <= limit:
            return kept
    return set(order[:1])


def _anchors(lines: list[Line]) -> list[int]:
    marked = [i for i, line in enumerate(lines) if line.marked or line.incident]
    if any(line.marked for line in lines):
        return marked
    return [0, len(lines) - 1] + marked


def _distances(n: int, anchors: list[int]) -> list[int]:
    """For every line, how many lines away the nearest anchor is."""
    far = n + 1
    dist = [far] * n
    for a in anchors:
        dist[a] = 0
    for i in range(1, n):
        dist[i] = min(dist[i], dist[i - 1] + 1)
    for i in range(n - 2, -1, -1):
        dist[i] = min(dist[i], dist[i + 1] + 1)
    return dist


def _fill_single_gaps(kept: set[int], n: int) -> set[int]:
    """A note for one elided line takes a line too: show the line instead."""
    return kept | {i for i in range(n) if i not in kept and (i == 0 or i - 1 in kept)
                   and (i == n - 1 or i + 1 in kept)}


def _gaps(kept: set[int], n: int) -> int:
    return sum(1 for i in range(n) if i not in kept and (i == 0 or i - 1 in kept))
