"""The partitioning property: records are processed where their edges route them."""

from __future__ import annotations

import pytest

import onceflow
from onceflow import Violation
from onceflow.model import keygroups
from onceflow.properties import PROPERTIES
from onceflow.properties.placement import expected_subtask, partitioning
from onceflow.scenario import Scenario
from onceflow.strategies import scenario_from_seed

# found by fuzzing the unaligned-pointwise-rescale mutant, then shrunk: an unaligned
# checkpoint holds in-flight data of the forward channel reduce1[0] -> sink[0] (rpc_latency
# re-tuned from 1.5 when split assignment moved to the split enumerator)
MISROUTED = {
    "topology": {"vertices": [
        {"uid": "source", "kind": "source", "parallelism": 1, "edge": "forward", "param": 0},
        {"uid": "reduce1", "kind": "reduce", "parallelism": 4, "edge": "hash", "param": 0},
        {"uid": "sink", "kind": "sink", "parallelism": 4, "edge": "forward", "param": 0}],
        "max_parallelism": 128},
    "workload": {"records": 4, "keys": 1, "splits": 1, "skew": 0.0, "seed": 1931},
    "checkpoints": {"mode": "unaligned", "interval": 0.5, "timeout": 210.0, "max_concurrent": 1,
                    "retained": 2, "durable_store": True},
    "timing": {"latency": 0.7, "jitter": 0.0, "buffer_records": 1, "channel_capacity": 4,
               "record_cost": 0.5, "upload_time": 0.0, "rpc_latency": 0.5},
    "restart": {"attempts": 2, "delay": 9.0}, "sink": "append", "txn_timeout": 600000.0,
    "savepoints": [], "faults": [], "mutants": ["unaligned-pointwise-rescale"], "seed": 0,
    "version": 1}


def test_its_key_formula_agrees_with_the_models() -> None:
    # the property keeps its own copy of the formula; the two must never drift apart
    top = onceflow.Topology((onceflow.Vertex("source", "source", 2),
                             onceflow.Vertex("sink", "sink", 3, "hash")))
    for key in range(-20, 500):
        assert expected_subtask(top, 1, key, 0) == keygroups.subtask_for_key(key, 3, 128)


def test_forward_edges_keep_the_upstream_subtask_and_rebalance_leaves_it_open() -> None:
    top = onceflow.Topology((onceflow.Vertex("source", "source", 3),
                             onceflow.Vertex("map0", "map", 3, "forward"),
                             onceflow.Vertex("map1", "map", 2, "rebalance"),
                             onceflow.Vertex("sink", "sink", 2, "forward")))
    # the forward edge keeps the subtask of the source that read the record
    assert expected_subtask(top, 1, key=7, split=5, reader=2) == 2
    assert expected_subtask(top, 1, key=7, split=5) is None  # reader unknown
    assert expected_subtask(top, 2, key=7, split=5, reader=2) is None
    assert expected_subtask(top, 3, key=7, split=5, reader=2) is None


def test_misrouted_in_flight_data_is_found_on_the_restored_timeline() -> None:
    scenario = Scenario.from_data(MISROUTED)
    with pytest.raises(Violation) as err:
        onceflow.check(onceflow.run(scenario))
    finding = err.value.finding
    assert (finding.property, finding.anomaly) == ("partitioning", "misrouted")
    assert finding.snapshot is not None and finding.snapshot.startswith("checkpoint 1")
    assert f"routes it to sink[{keygroups.subtask_for_key(0, 4, 128)}]" in str(err.value)


def test_the_same_scenario_without_the_mutant_routes_every_record_right() -> None:
    data = dict(MISROUTED, mutants=[])
    onceflow.check(onceflow.run(Scenario.from_data(data)))


@pytest.mark.parametrize("seed", range(0, 400, 7))
def test_no_false_alarm_on_drawn_scenarios(seed: int) -> None:
    result = onceflow.run(scenario_from_seed(seed))
    partitioning(result)
    for snapshot, parallelism in onceflow.properties.restores_of(result):
        partitioning(onceflow.restore(result, snapshot, parallelism))


def test_is_a_named_property() -> None:
    assert PROPERTIES["partitioning"] is partitioning
