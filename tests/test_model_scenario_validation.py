"""Bad input is refused with a ScenarioError naming the field; good input round-trips."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

import onceflow
from onceflow import (CheckpointConfig, RestartStrategy, SavepointRequest, Scenario,
                      ScenarioError, Timing, Topology, Vertex, Workload)


def two(*middle: Vertex, p: int = 1, maxp: int = 128) -> Topology:
    return Topology((Vertex("src", "source", p), *middle, Vertex("out", "sink", p)),
                    max_parallelism=maxp)


def data_with(path: list[Any], value: Any) -> str:
    """The default scenario's JSON with one field replaced."""
    data = Scenario().to_data()
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return json.dumps(data)


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


BAD: list[tuple[str, Callable[[], Any], str]] = [
    ("parallelism 0", lambda: Vertex("m", "map", 0), "parallelism"),
    ("parallelism 0 in topology JSON",
     lambda: Scenario.from_json(data_with(["topology", "vertices", 1, "parallelism"], 0)),
     "topology.vertices[1].parallelism"),
    ("parallelism above max_parallelism",
     lambda: two(Vertex("m", "map", 4, "forward"), p=4, maxp=2), "vertices[0].parallelism"),
    ("parallelism above max_parallelism in JSON",
     lambda: Scenario.from_json(data_with(["topology", "max_parallelism"], 1)),
     "topology.vertices[0].parallelism"),
    ("negative latency", lambda: Timing(latency=-1), "latency"),
    ("negative savepoint time", lambda: SavepointRequest(at=-5), "at"),
    ("negative interval", lambda: CheckpointConfig(interval=-1.0), "interval"),
    ("negative restart delay", lambda: RestartStrategy(delay=-0.5), "delay"),
    ("negative txn_timeout", lambda: Scenario(txn_timeout=-1), "txn_timeout"),
    ("negative time in JSON",
     lambda: Scenario.from_json(data_with(["timing", "record_cost"], -0.1)),
     "timing.record_cost"),
    ("negative savepoint time in JSON",
     lambda: Scenario.from_json(data_with(["savepoints"], [{"at": -1}])), "savepoints[0].at"),
    ("NaN time in JSON", lambda: Scenario.from_json(data_with(["timing", "latency"], float("nan"))),
     "timing.latency"),
    ("unknown edge kind", lambda: Vertex("m", "map", 1, "shuffle"), "edge"),
    ("unknown edge kind in JSON",
     lambda: Scenario.from_json(data_with(["topology", "vertices", 2, "edge"], "shuffle")),
     "topology.vertices[2].edge"),
    ("unknown operator kind", lambda: Vertex("m", "join"), "kind"),
    ("unknown barrier mode", lambda: CheckpointConfig(mode="exactly_once"), "mode"),
    ("unknown sink", lambda: Scenario(sink="kafka"), "sink"),
    ("keyed operator behind a forward edge", lambda: two(Vertex("r", "reduce", 1, "forward")),
     "vertices[1].edge"),
    ("duplicate uid", lambda: two(Vertex("src", "map", 1)), "vertices[1].uid"),
    ("unknown field in JSON", lambda: Scenario.from_json(data_with(["timing", "speed"], 3)),
     "timing.speed"),
    ("malformed JSON", lambda: Scenario.from_json('{"topology": '), "<json>"),
    ("malformed bytes", lambda: Scenario.from_json(b"\xff\xfe{"), "<json>"),
    ("JSON of the wrong shape", lambda: Scenario.from_json("[1, 2]"), "Scenario"),
    ("nested JSON of the wrong shape", lambda: Scenario.from_json('{"timing": 3}'), "timing"),
    ("JSON nested too deeply", lambda: Scenario.from_json("[" * 5000), "<json>"),
    ("deep list in a field",
     lambda: Scenario.from_json(data_with(["mutants"], nested(20))), "<json>"),
    ("deep data", lambda: Scenario.from_data({"mutants": nested(20)}), "<json>"),
    ("records x flat_map fan-outs",
     lambda: Scenario(topology=two(*(Vertex(f"f{i}", "flat_map", 1, "forward", 8)
                                     for i in range(6))),
                      workload=Workload(records=10)), "workload.records"),
    ("records x broadcast copies",
     lambda: Scenario(topology=two(Vertex("m", "map", 8, "broadcast"),
                                   Vertex("n", "map", 8, "broadcast"), p=8, maxp=128),
                      workload=Workload(records=100_000)), "workload.records"),
    ("too many records", lambda: Workload(records=600_000), "records"),
    ("too many vertices", lambda: two(*(Vertex(f"m{i}", "map") for i in range(11))), "vertices"),
    ("too many savepoints",
     lambda: Scenario(savepoints=[SavepointRequest(at=float(i)) for i in range(17)]),
     "savepoints"),
    ("too many savepoints in JSON",
     lambda: Scenario.from_json(data_with(["savepoints"], [{"at": 1.0}] * 17)), "savepoints"),
    ("too many faults",
     lambda: Scenario(faults=[onceflow.faults.plan.Crash(float(i), "sink[0]")
                              for i in range(33)]), "faults"),
    ("checkpoint timer ticking too often",
     lambda: Scenario(checkpoints=CheckpointConfig(interval=0.0001)), "checkpoints.interval"),
    ("a late savepoint with a short interval",
     lambda: Scenario(checkpoints=CheckpointConfig(interval=0.5),
                      savepoints=(SavepointRequest(at=1e8),)), "checkpoints.interval"),
]


@pytest.mark.parametrize("make,field", [(m, f) for _, m, f in BAD], ids=[n for n, _, _ in BAD])
def test_bad_input_raises_scenario_error_naming_the_field(make: Callable[[], Any],
                                                          field: str) -> None:
    with pytest.raises(onceflow.ScenarioError) as info:
        make()
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, onceflow.OnceflowError) and isinstance(info.value, ValueError)


def test_unknown_uid_reference_raises_scenario_error_naming_it() -> None:
    topology = Scenario().topology
    assert topology.vertex("reduce").kind == "reduce"
    with pytest.raises(ScenarioError) as info:
        topology.vertex("no-such-uid")
    assert "uid" in info.value.field
    assert "no-such-uid" in str(info.value)


ROUND_TRIP = [
    Scenario(),
    Scenario(
        topology=Topology((
            Vertex("in", "source", 3),
            Vertex("f", "filter", 3, "forward", 3),
            Vertex("fm", "flat_map", 2, "rebalance", 4),
            Vertex("w", "window", 4, "hash", 5),
            Vertex("b", "map", 2, "broadcast", 7),
            Vertex("out", "sink", 2, "forward"),
        ), max_parallelism=64),
        workload=Workload(records=1234, keys=17, splits=5, skew=1.25, seed=2**62 + 3),
        checkpoints=CheckpointConfig(mode="unaligned", interval=0.1, timeout=333.3,
                                     max_concurrent=3, retained=7, durable_store=False),
        timing=Timing(latency=0.3, jitter=1.7, buffer_records=5, channel_capacity=2,
                      record_cost=0.001, upload_time=0.0, rpc_latency=2.5),
        restart=RestartStrategy(attempts=0, delay=0),
        sink="idempotent", txn_timeout=12.5,
        savepoints=(SavepointRequest(at=7), SavepointRequest(at=9.5, restore_parallelism=3),
                    SavepointRequest(at=20, stop=True, drain=True)),
        seed=99),
    # the latest possible savepoint, with an interval that keeps the ticks bounded
    Scenario(checkpoints=CheckpointConfig(mode="at_least_once", interval=1000.0), sink="append",
             workload=Workload(records=0, keys=1, splits=1),
             savepoints=(SavepointRequest(at=1e9, stop=True),)),
]


@pytest.mark.parametrize("scenario", ROUND_TRIP)
def test_json_round_trip(scenario: Scenario) -> None:
    text = scenario.to_json()
    back = Scenario.from_json(text)
    assert back == scenario
    assert back.to_json() == text
    assert Scenario.from_json(scenario.to_json(indent=2)) == scenario
    assert Scenario.from_json(text.encode()) == scenario
    # integer times are stored as floats, so the JSON form is stable
    assert isinstance(back.savepoints[0].at if back.savepoints else 0.0, float)
