"""Shrink a failing scenario found elsewhere (a plain seed, a token from chat) without Hypothesis.

Greedy and deterministic: try simpler variants (fewer faults and savepoints,
fewer records and keys, lower parallelism, fewer operators, no jitter) and
keep each one that still violates the same property, until none does.
"""

from __future__ import annotations

from typing import Callable, Iterator

from attrs import evolve

from onceflow.errors import ScenarioError
from onceflow.model.simulation import run
from onceflow.properties.checks import check
from onceflow.properties.violation import Finding, Violation
from onceflow.scenario import Scenario, Topology

__all__ = ["ShrinkResult", "shrink", "violation_of"]


def violation_of(scenario: Scenario) -> Finding | None:
    """The first property `scenario` violates, or None."""
    try:
        check(run(scenario), deterministic=False)
    except Violation as violation:
        return violation.finding
    return None


class ShrinkResult:
    def __init__(self, original: Scenario, scenario: Scenario, finding: Finding, steps: int,
                 tried: int) -> None:
        self.original = original
        self.scenario = scenario
        self.finding = finding
        self.steps = steps
        self.tried = tried


def shrink(scenario: Scenario, *, max_tries: int = 2000,
           on_step: Callable[[Scenario], None] | None = None) -> ShrinkResult | None:
    """A smaller scenario violating the same property as `scenario` (None if it passes)."""
    finding = violation_of(scenario)
    if finding is None:
        return None
    current, steps, tried = scenario, 0, 0
    improved = True
    while improved and tried < max_tries:
        improved = False
        for candidate in _candidates(current):
            tried += 1
            found = violation_of(candidate)
            if found is not None and found.property == finding.property:
                current, finding, steps = candidate, found, steps + 1
                if on_step is not None:
                    on_step(current)
                improved = True
                break
            if tried >= max_tries:
                break
    return ShrinkResult(scenario, current, finding, steps, tried)


def _valid(build: Callable[[], Scenario]) -> Scenario | None:
    try:
        return build()
    except ScenarioError:
        return None


def _candidates(s: Scenario) -> Iterator[Scenario]:
    options: list[Callable[[], Scenario]] = []
    for i in range(len(s.faults)):
        options.append(lambda i=i: evolve(s, faults=s.faults[:i] + s.faults[i + 1:]))
    for i in range(len(s.savepoints)):
        options.append(lambda i=i: evolve(s, savepoints=s.savepoints[:i] + s.savepoints[i + 1:]))
    w = s.workload
    for records in sorted({0, 1, w.records // 4, w.records // 2, w.records - 1}):
        if 0 <= records < w.records:
            options.append(lambda r=records: evolve(s, workload=evolve(w, records=r)))
    for keys in sorted({1, w.keys // 2, w.keys - 1}):
        if 1 <= keys < w.keys:
            options.append(lambda k=keys: evolve(s, workload=evolve(w, keys=k)))
    if w.splits > 1:
        options.append(lambda: evolve(s, workload=evolve(w, splits=1)))
    if w.skew:
        options.append(lambda: evolve(s, workload=evolve(w, skew=0.0)))
    top = s.topology
    if any(v.parallelism > 1 for v in top.vertices):
        options.append(lambda: evolve(s, topology=top.with_parallelism(1)))
        for i, v in enumerate(top.vertices):
            if v.parallelism > 1:
                options.append(lambda i=i, v=v: evolve(s, topology=_with_vertex(
                    top, i, evolve(v, parallelism=v.parallelism - 1))))
    for i in range(1, len(top.vertices) - 1):
        options.append(lambda i=i: evolve(s, topology=Topology(
            top.vertices[:i] + top.vertices[i + 1:], top.max_parallelism)))
    if s.timing.jitter:
        options.append(lambda: evolve(s, timing=evolve(s.timing, jitter=0.0)))
    if s.seed:
        options.append(lambda: evolve(s, seed=0))
    for build in options:
        candidate = _valid(build)
        if candidate is not None:
            yield candidate


def _with_vertex(top: Topology, index: int, vertex: object) -> Topology:
    vertices = list(top.vertices)
    vertices[index] = vertex  # type: ignore[call-overload]
    return Topology(tuple(vertices), top.max_parallelism)
