"""Shrink a failing scenario found elsewhere (a plain seed, a token from chat) without Hypothesis.

Greedy and deterministic: try simpler variants (fewer faults and savepoints,
fewer records and keys, lower parallelism, fewer operators, no jitter) and
keep each one that still violates the same property, until none does.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from attrs import evolve

from onceflow.errors import OperatorError, RestoreError, ScenarioError
from onceflow.model.simulation import follow, run
from onceflow.properties.checks import check, determinism, judge_timeline
from onceflow.properties.violation import Finding, Violation
from onceflow.stores.protocol import StoreError
from onceflow.scenario import Scenario, Topology
from onceflow.timelines import TimelineSpec

__all__ = ["ShrinkResult", "crash_of", "shrink", "shrink_crash", "violation_of"]

#: The most records a counterexample keeps and still reads at a glance (the bug zoo's
#: target); above it the greedy pass also tries re-timed runs of this many (`_retimed`).
READABLE_RECORDS = 20


def violation_of(scenario: Scenario, *, deterministic: bool = False,
                 timeline: TimelineSpec | None = None) -> Finding | None:
    """The first property `scenario` violates, or None.  With `deterministic`, the run
    is repeated and a differing digest is the finding (`determinism`).  With a
    `timeline` (not the original run), only that restored timeline is judged (None
    when the scenario has no such timeline)."""
    return _judge(scenario, deterministic=deterministic, timeline=timeline)[0]


def _judge(scenario: Scenario, *, deterministic: bool = False,
           timeline: TimelineSpec | None = None) -> tuple[Finding | None, Any]:
    result = run(scenario)
    try:
        if timeline is None or timeline.original:
            check(result, deterministic=deterministic)
        else:
            if result.error is not None:
                return None, result
            try:
                restored = follow(result, timeline)
            except RestoreError:
                return None, result  # the candidate has no such timeline
            try:
                judge_timeline(restored)
            except Violation as violation:
                if deterministic:
                    determinism(result, failed=violation)
                raise
    except Violation as violation:
        return violation.finding, result
    return None, result


class ShrinkResult:
    def __init__(self, original: Scenario, scenario: Scenario, finding: Finding, steps: int,
                 tried: int) -> None:
        self.original = original
        self.scenario = scenario
        self.finding = finding
        self.steps = steps
        self.tried = tried


def shrink(scenario: Scenario, *, max_tries: int = 2000, max_seconds: float | None = None,
           finding: Finding | None = None,
           on_step: Callable[[Scenario], None] | None = None,
           keep: tuple[str, ...] = (),
           timeline: TimelineSpec | None = None,
           should_stop: Callable[[], bool] | None = None) -> ShrinkResult | None:
    """A smaller scenario violating the same property as `scenario` (None if it passes).

    `finding`, when given, is the violation `scenario` is already known to have;
    `max_seconds` bounds the wall time spent, and `should_stop()` returning True (a
    fuzz run asked to stop) ends it between candidates (the best scenario so far is
    kept).
    Operators named in `keep` (the pins of a search) and every operator a user
    registered stay in the pipeline: a counterexample is about them.  `timeline`
    (a finding's, from its token) is used when `check()` finds nothing: the restored
    timeline a user's own test reached is then kept pinned while shrinking, and
    candidates that lack it do not count.
    """
    pinned = None
    finding = finding or violation_of(scenario, deterministic=True)
    if finding is None and timeline is not None and not timeline.original:
        pinned = timeline
        finding = violation_of(scenario, deterministic=True, timeline=pinned)
    if finding is None:
        return None
    if finding.property == "determinism":
        # a component that decides the run itself: nothing to shrink towards
        return ShrinkResult(scenario, scenario, finding, 0, 0)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    current, steps, tried = scenario, 0, 0
    kept: Any = None
    passes = _Passes(keep)
    while (candidate := passes.next(current)) is not None:
        if tried >= max_tries or _past(deadline) or (should_stop is not None and should_stop()):
            break
        tried += 1
        found, result = _judge(candidate, timeline=pinned)
        if found is not None and found.property == finding.property:
            current, finding, steps, kept = candidate, found, steps + 1, result
            passes.accepted()
            if on_step is not None:
                on_step(current)
    if steps:
        # candidates were judged on one run each: the one kept is run again (up to six
        # times: a small scenario gives a coin few chances to differ), so that a
        # nondeterministic component is named as such, never reported as a violation
        for _ in range(6):
            try:
                determinism(kept)
            except Violation as violation:
                finding = violation.finding
                break
    return ShrinkResult(scenario, current, finding, steps, tried)


def crash_of(scenario: Scenario) -> OperatorError | None:
    """The OperatorError `scenario` makes a user component raise (None: it does not)."""
    try:
        check(run(scenario), deterministic=False)
    except OperatorError as exc:
        return exc
    except (Violation, StoreError):
        return None
    return None


def shrink_crash(error: OperatorError, *, max_tries: int = 2000,
                 max_seconds: float | None = None, keep: tuple[str, ...] = ()) -> OperatorError:
    """`error` (raised by `error.scenario`) again, from a smaller scenario that makes the
    same component raise; the scenario kept is the returned error's `scenario`."""
    scenario = error.scenario
    if scenario is None:
        return error
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    current, tried = scenario, 0
    passes = _Passes(keep)
    while (candidate := passes.next(current)) is not None:
        if tried >= max_tries or _past(deadline):
            break
        tried += 1
        found = crash_of(candidate)
        if found is not None and found.component == error.component:
            current, error = candidate, found
            passes.accepted()
    error.scenario = current
    return error


class _Passes:
    """The greedy loop's order of candidates: after an accepted step the candidates of
    the new scenario are tried from where the last one was accepted, wrapping around,
    so that a pass which keeps working (fewer records, again) is tried again first and
    the ones that failed are not all re-run before it; a candidate already judged not
    to fail is never run again.  The loop ends after a whole round with no step: the
    result is as minimal, with respect to every candidate, as a restart from the top."""

    def __init__(self, keep: tuple[str, ...]) -> None:
        self.keep = keep
        self.rejected: set[Scenario] = set()
        self.position = 0
        self.queue: list[Scenario] = []
        self.index = 0
        self.offered: Scenario | None = None
        self.current: Scenario | None = None

    def next(self, current: Scenario) -> Scenario | None:
        """The next candidate to judge for `current` (None: a round found nothing)."""
        if self.offered is not None:  # offered, judged, not accepted
            self.rejected.add(self.offered)
        if current is not self.current:
            self.current = current
            cands = list(_candidates(current, self.keep))
            start = self.position % len(cands) if cands else 0
            self.queue = cands[start:] + cands[:start]
            self.index = 0
        while self.index < len(self.queue):
            candidate = self.queue[self.index]
            self.index += 1
            if candidate not in self.rejected:
                self.offered = candidate
                return candidate
        self.offered = None
        return None

    def accepted(self) -> None:
        """The candidate just offered was accepted: continue from its place."""
        self.position = (self.position + self.index - 1) % max(len(self.queue), 1)
        self.offered = None


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _valid(build: Callable[[], Scenario]) -> Scenario | None:
    try:
        return build()
    except ScenarioError:
        return None


def _pinned(s: Scenario, keep: tuple[str, ...]) -> frozenset[str]:
    """The operator kinds no candidate may drop: `keep`, and those a user registered."""
    from onceflow.registry import OPERATORS  # noqa: PLC0415

    user = {v.kind for v in s.topology.vertices[1:-1]
            if v.kind in OPERATORS and not OPERATORS[v.kind].builtin}
    return frozenset(keep) | user


def _candidates(s: Scenario, keep: tuple[str, ...] = ()) -> Iterator[Scenario]:
    options: list[Callable[[], Scenario]] = []
    pinned = _pinned(s, keep)
    for i in range(len(s.faults)):
        options.append(lambda i=i: evolve(s, faults=s.faults[:i] + s.faults[i + 1:]))
    for i in range(len(s.savepoints)):
        options.append(lambda i=i: evolve(s, savepoints=s.savepoints[:i] + s.savepoints[i + 1:]))
    # a rescale chain, or its last link (each link restores from the timeline before it)
    if s.rescales:
        options.append(lambda: evolve(s, rescales=()))
        if len(s.rescales) > 1:
            options.append(lambda: evolve(s, rescales=s.rescales[:-1]))
    w = s.workload
    # halves and quarters, and small counts outright: a failure that needs a long enough
    # run keeps it with a handful of records where a quarter of them is already too few
    for records in sorted({0, 1, 2, 3, 5, 10, 20, w.records // 4, w.records // 2,
                           w.records * 3 // 4, w.records - 1}):
        if 0 <= records < w.records:
            options.append(lambda r=records: evolve(s, workload=evolve(w, records=r)))
    for keys in sorted({1, w.keys // 2, w.keys - 1}):
        if 1 <= keys < w.keys:
            options.append(lambda k=keys: evolve(s, workload=evolve(w, keys=k)))
    if w.splits > 1:
        options.append(lambda: evolve(s, workload=evolve(w, splits=1)))
    if w.skew:
        options.append(lambda: evolve(s, workload=evolve(w, skew=0.0)))
    # the simplest log exists whole when the job starts and is read from its beginning
    if w.produce_interval or w.first_produce:
        options.append(lambda: evolve(s, workload=evolve(w, produce_interval=0.0,
                                                         first_produce=0.0)))
        if w.first_produce:
            options.append(lambda: evolve(s, workload=evolve(w, first_produce=0.0)))
    start = s.start_position
    if start.mode != "earliest":
        options.append(lambda: evolve(s, start_position=evolve(start, mode="earliest",
                                                                timestamp=0.0)))
        if start.timestamp:
            options.append(lambda: evolve(s, start_position=evolve(start, timestamp=0.0)))
    top = s.topology
    if any(v.parallelism > 1 for v in top.vertices):
        options.append(lambda: evolve(s, topology=top.with_parallelism(1)))
        for i, v in enumerate(top.vertices):
            if v.parallelism > 1:
                options.append(lambda i=i, v=v: evolve(s, topology=_with_vertex(
                    top, i, evolve(v, parallelism=v.parallelism - 1))))
    for i in range(1, len(top.vertices) - 1):
        if top.vertices[i].kind in pinned:
            continue
        options.append(lambda i=i: evolve(s, topology=Topology(
            top.vertices[:i] + top.vertices[i + 1:], top.max_parallelism)))
    # fewer records, each costing more: the input takes as long to read as before, so
    # the moments the failure needs (a checkpoint, a stop, a failover while records
    # still flow) come as they did
    for records in sorted({1, 2, 3, 5, 10, READABLE_RECORDS}):
        if 0 < records < w.records:
            options.append(lambda r=records: _with_records(evolve(s, timing=evolve(
                s.timing, record_cost=round(s.timing.record_cost * w.records / r, 3))), r))
    trades = _timing_trades(s)
    options.extend(trades)
    # two changes at once, where neither alone keeps the failure: slower timing with
    # fewer records, or a fault dropped with the savepoints moved to where it shifted them
    for trade in trades:
        for records in sorted({w.records // 4, w.records // 3, w.records // 2,
                               w.records * 2 // 3, w.records * 3 // 4}):
            if 0 < records < w.records:
                options.append(lambda trade=trade, r=records: _with_records(trade(), r))
    for i in range(len(s.faults) if s.savepoints else 0):
        for scale in (0.5, 0.75, 1.25, 1.5):
            options.append(lambda i=i, scale=scale: evolve(
                s, faults=s.faults[:i] + s.faults[i + 1:], savepoints=tuple(
                    evolve(r, at=round(r.at * scale, 2)) for r in s.savepoints)))
    for i, request in enumerate(s.savepoints):
        if request.at > 0:
            for at in (0.0, round(request.at / 2, 2)):
                options.append(lambda i=i, at=at: evolve(s, savepoints=_replace(
                    s.savepoints, i, evolve(s.savepoints[i], at=at))))
    for i, fault in enumerate(s.faults):
        if getattr(fault, "at", 0) > 0:
            options.append(lambda i=i: evolve(s, faults=_replace(
                s.faults, i, evolve(s.faults[i], at=round(s.faults[i].at / 2, 2)))))
    options.extend(_retimed(s))
    if s.schedule:
        options.append(lambda: evolve(s, schedule=()))
        options.append(lambda: evolve(s, schedule=tuple(0 for _ in s.schedule)))
    if s.seed:
        options.append(lambda: evolve(s, seed=0))
    for build in options:
        candidate = _valid(build)
        if candidate is not None and candidate != s:  # every step must change something
            yield candidate


def _timing_trades(s: Scenario) -> list[Callable[[], Scenario]]:
    """Simpler timing, and time traded for records: smaller buffers, slower records,
    shorter checkpoint intervals and aligned-checkpoint timeouts keep a window open with
    fewer records in flight."""
    t, c = s.timing, s.checkpoints
    out: list[Callable[[], Scenario]] = []
    if t.jitter:
        out.append(lambda: evolve(s, timing=evolve(t, jitter=0.0)))
    for buffer in sorted({1, 2, t.buffer_records // 2}):
        if 1 <= buffer < t.buffer_records:
            out.append(lambda b=buffer: evolve(s, timing=evolve(t, buffer_records=b)))
    if t.channel_capacity > 1:
        out.append(lambda: evolve(s, timing=evolve(t, channel_capacity=1)))
    for cost in (0.1, 0.2, 0.5, 1.0):
        if cost > t.record_cost and s.workload.records > 1:
            out.append(lambda cost=cost: evolve(s, timing=evolve(t, record_cost=cost)))
    if c.interval > 0.5:
        out.append(lambda: evolve(s, checkpoints=evolve(c, interval=0.5)))
    if c.aligned_timeout:
        # an aligned-checkpoint timeout that expires sooner switches a checkpoint to
        # unaligned with fewer records in flight
        out.append(lambda: evolve(s, checkpoints=evolve(
            c, aligned_timeout=round(c.aligned_timeout / 2, 2))))
    if t.upload_time:
        out.append(lambda: evolve(s, timing=evolve(t, upload_time=0.0)))
    return out


def _retimed(s: Scenario) -> list[Callable[[], Scenario]]:
    """A counterexample of more than READABLE_RECORDS records, cut to that many with its
    run re-timed around them: smaller buffers (the sources stay backpressured, so they
    still read when the failure needs it) and the moments the plan aims at (savepoints,
    faults timed by the clock) moved earlier along a grid, since the shorter run reaches
    its window sooner.  No record count alone keeps such a failure: it needs a checkpoint,
    savepoint or failover to land while records still flow (NOTES.md)."""
    w, t, c = s.workload, s.timing, s.checkpoints
    if w.records <= READABLE_RECORDS:
        return []
    out: list[Callable[[], Scenario]] = []
    # a failure that needs a checkpoint while the readers are still backpressured: the
    # shorter run, on smaller buffers, with the checkpoints and channels timed around it
    # (shorter interval, faster or slower hops) and its own randomness re-drawn a few
    # times (which buffer a barrier lands behind shifts with every record cut)
    for buffer in sorted({1, 2, t.buffer_records}):
        for interval in sorted({c.interval, round(max(0.5, c.interval * 0.6), 2)}):
            for latency in sorted({t.latency, round(t.latency * 0.4, 2),
                                   round(t.latency * 2.5, 2)}):
                for k in range(6):
                    out.append(lambda b=buffer, i=interval, lat=latency, k=k: evolve(
                        s, workload=evolve(w, records=READABLE_RECORDS, seed=w.seed + k),
                        timing=evolve(t, buffer_records=min(b, t.buffer_records), latency=lat),
                        checkpoints=evolve(c, interval=i), seed=s.seed + k))
    if not (s.savepoints or any(getattr(f, "at", 0) > 0 for f in s.faults)):
        return out
    for buffer in (1, 2):
        if buffer > t.buffer_records:
            continue
        for step in range(19, 5, -1):  # 0.95 down to 0.3 of the original moments
            out.append(lambda b=buffer, scale=step / 20: _moved(evolve(
                s, workload=evolve(w, records=READABLE_RECORDS),
                timing=evolve(t, buffer_records=b)), scale))
    return out


def _moved(s: Scenario, scale: float) -> Scenario:
    """`s` with its savepoints and the faults timed by the clock at `scale` of their times."""
    faults = tuple(evolve(f, at=round(f.at * scale, 2)) if getattr(f, "at", 0) > 0 else f
                   for f in s.faults)
    return evolve(s, faults=faults, savepoints=tuple(
        evolve(r, at=round(r.at * scale, 2)) for r in s.savepoints))


def _with_records(s: Scenario, records: int) -> Scenario:
    return evolve(s, workload=evolve(s.workload, records=records))


def _replace(items: tuple[Any, ...], index: int, item: Any) -> tuple[Any, ...]:
    return items[:index] + (item,) + items[index + 1:]


def _with_vertex(top: Topology, index: int, vertex: object) -> Topology:
    vertices = list(top.vertices)
    vertices[index] = vertex  # type: ignore[call-overload]
    return Topology(tuple(vertices), top.max_parallelism)
