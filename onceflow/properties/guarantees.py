"""The guarantee matrix: what Flink promises for each barrier mode and sink kind.

From Flink's docs (connectors/datastream/guarantees.md, concepts/stateful-stream-processing.md):
aligned or unaligned barriers with a two-phase or idempotent sink give
exactly-once; an append sink gives at-least-once in any mode; at-least-once
barriers give at-least-once as soon as a task has more than one input channel
(records overtake the barrier into state or into the sink's transaction),
while embarrassingly parallel pipelines stay exactly-once.
"""

from __future__ import annotations

from onceflow.registry import SINKS
from onceflow.scenario import BARRIER_MODES, SINK_KINDS, Scenario, Topology

__all__ = ["AT_LEAST_ONCE", "EXACTLY_ONCE", "MATRIX", "guarantee", "single_input"]

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"

#: (mode, sink) -> guarantee for a job whose tasks have several input channels.
MATRIX: dict[tuple[str, str], str] = {
    (mode, sink): (AT_LEAST_ONCE if sink == "append" or mode == "at_least_once"
                   else EXACTLY_ONCE)
    for mode in BARRIER_MODES for sink in SINK_KINDS
}


def single_input(topology: Topology) -> bool:
    """True when every task reads exactly one input channel (no alignment needed)."""
    vs = topology.vertices
    return all(v.edge == "forward" or vs[i].parallelism == 1
               for i, v in enumerate(vs[1:]))


def guarantee(scenario: Scenario) -> str:
    mode, sink = scenario.checkpoints.mode, scenario.sink
    spec = SINKS.get(sink)
    if sink == "append" or (spec is not None and not spec.exactly_once):
        return AT_LEAST_ONCE
    if spec is not None:
        sink = "two_phase"  # a user sink that promises exactly-once effects
    if mode == "at_least_once" and single_input(scenario.topology):
        return EXACTLY_ONCE
    return MATRIX[(mode, sink)]
