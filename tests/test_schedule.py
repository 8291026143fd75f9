"""Scenario.schedule: the first tie-breaks among ready inputs are drawn, so they shrink."""

from __future__ import annotations

from attrs import evolve

import onceflow
from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.strategies import scenario_from_seed


def tied() -> Scenario:
    # two sources, no jitter: their buffers reach the reduce at the same instants
    topology = Topology((Vertex("source", "source", 2), Vertex("reduce", "reduce", 1, "hash"),
                         Vertex("sink", "sink", 1, "forward")))
    return Scenario(topology=topology, workload=Workload(records=64, keys=4, splits=2),
                    checkpoints=CheckpointConfig(interval=5.0), sink="idempotent",
                    timing=Timing(latency=1.0, jitter=0.0, buffer_records=4))


def first_inputs(result: onceflow.RunResult, n: int = 6) -> list[int]:
    """The splits of the first buffers the reduce took."""
    return [d[0][0].split for _, k, w, d in result.trace.events
            if k == "process" and w == "reduce[0]"][:n]


def test_the_schedule_decides_the_first_tie_breaks() -> None:
    zeros = onceflow.run(evolve(tied(), schedule=(0,) * 6))
    ones = onceflow.run(evolve(tied(), schedule=(1,) * 6))
    assert first_inputs(zeros) != first_inputs(ones)
    assert zeros.digest != ones.digest
    # the same schedule, the same run; and either ordering is exactly-once
    assert onceflow.run(evolve(tied(), schedule=(0,) * 6)).digest == zeros.digest
    onceflow.check(zeros)
    onceflow.check(ones)


def test_the_generator_draws_a_schedule_and_it_round_trips() -> None:
    drawn = [scenario_from_seed(n) for n in range(40)]
    assert any(s.schedule for s in drawn) and any(not s.schedule for s in drawn)
    for s in drawn:
        assert Scenario.from_json(s.to_json()) == s


def test_a_schedule_is_validated() -> None:
    import pytest

    with pytest.raises(onceflow.ScenarioError, match="schedule"):
        evolve(tied(), schedule=(0,) * 65)
    with pytest.raises(onceflow.ScenarioError, match=r"schedule\[1\]"):
        evolve(tied(), schedule=(0, -1))
