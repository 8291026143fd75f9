"""The guarantee matrix: what Flink promises for each barrier mode and sink kind.

From Flink's docs (connectors/datastream/guarantees.md, concepts/stateful-stream-processing.md):
aligned or unaligned barriers with a two-phase or idempotent sink give
exactly-once; an append sink gives at-least-once in any mode; at-least-once
barriers give at-least-once as soon as a task has more than one input channel
(records overtake the barrier into state or into the sink's transaction),
while embarrassingly parallel pipelines stay exactly-once.
"""

from __future__ import annotations

from collections.abc import Iterable

from onceflow.registry import SINK_KINDS, default_exactly_once, sink_spec
from onceflow.scenario import BARRIER_MODES, Scenario, Topology

__all__ = ["AT_LEAST_ONCE", "EXACTLY_ONCE", "MATRIX", "guarantee", "guarantee_along",
           "single_input"]

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"

_DEFAULT_EXACTLY_ONCE = {kind: default_exactly_once(kind) for kind in SINK_KINDS}

#: (mode, declared sink kind) -> guarantee for a job whose tasks have several input
#: channels, when the sink declares the exactly-once effects its kind can give (a sink
#: that declares exactly_once=False is at-least-once in any mode).
MATRIX: dict[tuple[str, str], str] = {
    (mode, kind): (EXACTLY_ONCE if mode != "at_least_once" and _DEFAULT_EXACTLY_ONCE[kind]
                   else AT_LEAST_ONCE)
    for mode in BARRIER_MODES for kind in SINK_KINDS
}


def single_input(topology: Topology) -> bool:
    """True when every task reads exactly one input channel (no alignment needed)."""
    vs = topology.vertices
    return all(v.edge == "forward" or vs[i].parallelism == 1
               for i, v in enumerate(vs[1:]))


def guarantee(scenario: Scenario) -> str:
    """What Flink promises for this scenario, from its barrier mode and what its sink
    declares itself to be (never from the sink's name)."""
    mode, spec = scenario.checkpoints.mode, sink_spec(scenario.sink)
    if not spec.exactly_once:
        return AT_LEAST_ONCE
    if mode == "at_least_once" and single_input(scenario.topology):
        return EXACTLY_ONCE
    return MATRIX[(mode, spec.kind)]


def guarantee_along(scenarios: Iterable[Scenario]) -> str:
    """What Flink promises on a timeline whose lineage (the original run first, then
    each restored run down to it) ran `scenarios`: the original's guarantee, unless
    at-least-once barriers met several input channels anywhere along it (a rescaled
    restore gives a single-input job more channels, and a snapshot taken there may hold
    records that overtook a barrier)."""
    lineage = list(scenarios)
    promised = guarantee(lineage[0])
    if promised == EXACTLY_ONCE and lineage[0].checkpoints.mode == "at_least_once" and not all(
            single_input(s.topology) for s in lineage):
        return AT_LEAST_ONCE
    return promised
