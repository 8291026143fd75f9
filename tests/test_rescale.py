"""Rescaling from checkpoints and savepoints, aligned and unaligned: keyed state by key
group, in-flight channel state redistributed as Flink does, and rescale chains drawn by
the generator, restored and judged."""

from __future__ import annotations

from typing import Any

import pytest

import onceflow
from onceflow.properties.oracle import cut_offsets
from onceflow import (CheckpointConfig, RescaleStep, RestoreError, SavepointRequest, Scenario,
                      ScenarioError, Timing, Topology, Vertex, Workload, restore, run)
from onceflow.model.keygroups import subtask_for_key
from onceflow.model.rescaling import redistribute_channel_state
from onceflow.model.records import Record
from onceflow.properties.checks import chain_timelines
from onceflow.properties.oracle import expected_state
from onceflow.strategies import scenario_from_seed


def topology(p: int = 2, maxp: int = 13) -> Topology:
    return Topology((Vertex("source", "source", p), Vertex("map", "map", p, "forward", 1),
                     Vertex("reduce", "reduce", p, "hash"),
                     Vertex("window", "window", p, "hash", 3),
                     Vertex("sink", "sink", p, "rebalance")), max_parallelism=maxp)


def chain_scenario(mode: str, sink: str = "two_phase") -> Scenario:
    # 2 -> 5 -> 3 at max parallelism 13, across a checkpoint and a savepoint
    return Scenario(
        topology=topology(), workload=Workload(records=300, keys=10, splits=3),
        checkpoints=CheckpointConfig(mode=mode, interval=3.0),
        timing=Timing(latency=1.0, record_cost=0.1, buffer_records=4, channel_capacity=2),
        sink=sink, rescales=(RescaleStep(5, "checkpoint", 3, (SavepointRequest(at=1.0),)),
                             RescaleStep(3, "savepoint")))


def placed(result: Any, uid: str) -> dict[int, set[int]]:
    """key -> the subtasks of `uid` that processed it on this timeline."""
    where: dict[int, set[int]] = {}
    for _, kind, task, detail in result.trace.events:
        if kind == "process" and task.startswith(uid + "["):
            subtask = int(task[len(uid) + 1:-1])
            for r in detail[0]:
                where.setdefault(r.key, set()).add(subtask)
    return where


@pytest.mark.parametrize("sink", ["two_phase", "idempotent", "append"])
@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
def test_a_chain_2_5_3_keeps_every_key_where_flink_puts_it_and_its_state(mode: str,
                                                                          sink: str) -> None:
    s = chain_scenario(mode, sink)
    result = run(s)
    timelines = list(chain_timelines(result))
    assert [t.restored_from.kind for t in timelines] == ["checkpoint", "savepoint"]
    assert [t.scenario.topology.vertices[2].parallelism for t in timelines] == [5, 3]
    if mode == "unaligned":
        assert timelines[0].restored_from.in_flight_records > 0  # channel state rescaled
    for t in (result, *timelines):
        p = t.scenario.topology.vertices[2].parallelism
        for uid in ("reduce", "window"):
            for key, subtasks in placed(t, uid).items():
                assert subtasks == {subtask_for_key(key, p, 13)}, (uid, key)
    # every snapshot of the chain holds the oracle's keyed state for its offsets
    for t in timelines:
        for snap in t.snapshots:
            # records kept in flight on the way to reduce are not in its state yet
            flight = frozenset(r.id for name, items in snap.channel_state.items()
                               if "->reduce[" in name or "->map[" in name
                               for item in items if isinstance(item, list) for r in item)
            want = expected_state(s, cut_offsets(s, snap), end_of_input=snap.input_ended,
                                  in_flight=flight)
            got = {k: v for group in snap.state["reduce"].values() for k, v in group.items()}
            # FLIP-147: a subtask that had finished holds no state
            p = snap.parallelism["reduce"]
            assert got == {k: v for k, v in want["reduce"].items()
                           if f"reduce[{subtask_for_key(k, p, 13)}]" not in snap.finished}
    onceflow.check(result)  # judges the chain's timelines too


def test_the_generator_draws_chains_that_are_restored_and_judged() -> None:
    seen = []
    for seed in range(1500):
        s = scenario_from_seed(seed, mode="unaligned")
        if len(s.rescales) < 2:
            continue
        result = run(s)
        timelines = list(chain_timelines(result))
        if len(timelines) == 2 and {t.restored_from.kind for t in timelines} == {
                "checkpoint", "savepoint"}:
            seen.append(seed)
            onceflow.check(result)
        if len(seen) >= 2:
            break
    assert len(seen) >= 2


def test_rescale_steps_round_trip_and_are_validated() -> None:
    s = chain_scenario("unaligned")
    assert Scenario.from_json(s.to_json()) == s
    assert "rescales" not in Scenario().to_json()  # earlier tokens stay valid
    with pytest.raises(ScenarioError, match="broadcast"):
        Scenario(topology=Topology((Vertex("source", "source", 2),
                                    Vertex("sink", "sink", 2, "broadcast"))),
                 rescales=(RescaleStep(3),))
    with pytest.raises(ScenarioError, match="drain"):
        RescaleStep(3, savepoints=(SavepointRequest(at=1, stop=True, drain=True),))
    with pytest.raises(ScenarioError, match="snapshot"):
        RescaleStep(3, "retained")


# -- channel state ------------------------------------------------------------------------

def _snapshot_with(channel_state: dict[str, list[Any]], p: int) -> Any:
    s = chain_scenario("unaligned")
    result = run(s)
    snap = next(x for x in result.snapshots if x.has_channel_state)
    return snap.__class__(**{**{f: getattr(snap, f) for f in (
        "id", "kind", "triggered", "completed", "mode", "max_parallelism", "state",
        "store_version", "run", "stop", "timeline", "input_ended")},
        "parallelism": {v.uid: p for v in s.topology.vertices},
        "channel_state": channel_state})


def rec(i: int, key: int) -> Record:
    return Record(f"r{i}", key, 1, 0, i)


def test_hash_edge_in_flight_records_go_to_the_new_owner_of_their_key_group() -> None:
    records = [rec(i, key) for i, key in enumerate(range(12))]
    snap = _snapshot_with({"in:map[1]->reduce[0]": [records[:6]],
                           "out:map[1]->reduce[1]": [records[6:]]}, 2)
    out = redistribute_channel_state(snap, topology(5))
    got = {name: [r.key for buf in items for r in buf] for name, items in out.items()}
    for name, keys in got.items():
        sender, receiver = name.split("->")
        assert sender == "map[1]"  # old sender 1 -> new sender 1 % 5
        assert all(receiver == f"reduce[{subtask_for_key(k, 5, 13)}]" for k in keys)
    assert sorted(k for keys in got.values() for k in keys) == list(range(12))
    # downscaling: old sender 1 of 2 -> new sender 1 % 1 = 0
    out = redistribute_channel_state(snap, topology(1))
    assert set(out) == {"map[0]->reduce[0]"}
    assert [r.id for buf in out["map[0]->reduce[0]"] for r in buf] == [r.id for r in records]


def test_an_end_of_input_in_flight_is_never_replayed_only_buffers_are() -> None:
    # Flink persists data buffers only (ChannelStatePersister: buffer.isBuffer()): a
    # restored sender sends its own end of input again, after whatever input it now holds
    from onceflow.model.records import END_OF_INPUT

    a, b = [rec(1, 3)], [rec(2, 3)]
    snap = _snapshot_with({"in:window[0]->sink[1]": [a, END_OF_INPUT],
                           "in:window[1]->sink[0]": [END_OF_INPUT],
                           "out:window[0]->sink[1]": [b]}, 2)
    for p in (2, 3, 1):
        out = redistribute_channel_state(snap, topology(p))
        assert all(item.__class__ is list for items in out.values() for item in items)
        assert [r for items in out.values() for buf in items for r in buf] == a + b
    assert redistribute_channel_state(snap, topology(2)) == {"window[0]->sink[1]": [a, b]}


def test_a_restored_end_of_input_does_not_end_a_channel_that_gets_new_input() -> None:
    # source 0 has ended before checkpoint 1's barrier, which reaches reduce0 late, so the
    # end of input is in flight; the one split is with source 1.  On restore the split
    # goes to the subtask its state lands on: every record still reaches the sink
    from onceflow.model.records import END_OF_INPUT
    from onceflow.properties import check

    s = Scenario(topology=Topology((Vertex("source", "source", 4),
                                    Vertex("reduce0", "reduce", 1, "hash"),
                                    Vertex("sink", "sink", 1, "forward"))),
                 workload=Workload(records=3, keys=1, splits=1),
                 checkpoints=CheckpointConfig(mode="unaligned", interval=0.5), sink="two_phase",
                 timing=Timing(latency=0.1, record_cost=1.0, buffer_records=1,
                               channel_capacity=1, jitter=0.1, upload_time=0.0,
                               rpc_latency=0.1))
    result = run(s)
    ended = [snap for snap in result.snapshots
             if any(item is END_OF_INPUT for items in snap.channel_state.values()
                    for item in items)]
    assert ended  # the situation under test: an end of input kept as channel state
    for snap in ended:
        restored = restore(result, snap)
        check(restored)
        assert sorted(r.id for r in restored.committed()) == ["r0", "r1", "r2"]


def test_input_side_state_replays_before_output_side_state_and_unchanged_is_identity() -> None:
    a, b = [rec(1, 3)], [rec(2, 3)]
    snap = _snapshot_with({"out:window[0]->sink[1]": [b], "in:window[0]->sink[1]": [a]}, 2)
    assert redistribute_channel_state(snap, topology(2)) == {"window[0]->sink[1]": [a, b]}
    # rebalance: old receiver 1 -> new receiver 1 % 3 (ROUND_ROBIN), in before out
    out = redistribute_channel_state(snap, topology(3))
    assert out == {"window[0]->sink[1]": [a, b]}
    out = redistribute_channel_state(snap, topology(1))
    assert out == {"window[0]->sink[0]": [a, b]}


def test_in_flight_data_on_an_edge_the_job_lost_is_refused() -> None:
    s = chain_scenario("unaligned")
    result = run(s)
    snap = next(x for x in result.snapshots if x.has_channel_state)
    other = Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 1),
                      Vertex("reduce", "reduce", 2, "hash"), Vertex("sink", "sink", 2, "hash"),
                      ), max_parallelism=13)
    with pytest.raises(RestoreError):
        restore(result, snap, topology=other)


def test_restored_in_flight_data_is_processed_before_any_new_data() -> None:
    s = chain_scenario("unaligned")
    result = run(s)
    snap = next(x for x in result.snapshots if x.in_flight_records)
    restored = restore(result, snap, 5)
    kept = {r.id for items in snap.channel_state.values() for item in items
            if isinstance(item, list) for r in item}
    for p in range(5):
        ids = [r.id for _, kind, task, d in restored.trace.events
               if kind == "process" and task == f"reduce[{p}]" for r in d[0]]
        mine = [i for i in ids if i in kept]
        assert ids[:len(mine)] == mine  # the restored ones first


# -- mutants of rescaling -----------------------------------------------------------------

@pytest.mark.parametrize(("mutant", "properties"), [
    ("rescale-skips-stateless", {"no_loss", "exactly_once", "consistent_cut"}),
    ("rescale-drops-output-state", {"no_loss", "exactly_once", "consistent_cut"}),
    ("rescale-unfiltered-inflight", {"exactly_once", "partitioning", "consistent_cut"}),
    ("unstable-key-hash", {"partitioning", "exactly_once", "no_loss", "consistent_cut"}),
])
def test_each_rescale_mutant_is_found_on_the_chain_and_the_correct_model_is_not(
        mutant: str, properties: set[str]) -> None:
    s = chain_scenario("unaligned")
    onceflow.check(run(s))
    bad = Scenario.from_data({**s.to_data(), "mutants": [mutant]})
    with pytest.raises(onceflow.Violation) as err:
        onceflow.check(run(bad))
    assert err.value.finding.property in properties, err.value


# -- the aligned-checkpoint timeout ----------------------------------------------------------

def timeout_scenario(timeout: float) -> Scenario:
    return Scenario(
        topology=topology(3), workload=Workload(records=300, keys=10, splits=3),
        checkpoints=CheckpointConfig(mode="unaligned", interval=3.0, aligned_timeout=timeout),
        timing=Timing(latency=1.0, jitter=2.0, record_cost=0.1, buffer_records=4,
                      channel_capacity=2), sink="two_phase")


def test_a_checkpoint_starts_aligned_and_switches_after_the_timeout() -> None:
    result = run(timeout_scenario(8.0))
    switched = [e for e in result.trace.events if e[1] == "alignment_timed_out"]
    assert switched
    for time, _, task, (cid, waited) in switched:
        (trigger,) = [e[0] for e in result.trace.events if e[1] == "trigger" and e[3][0] == cid]
        assert time >= trigger + 8.0 - 1e-9  # counted from the trigger, as Flink
    assert any(s.has_channel_state for s in result.snapshots)
    onceflow.check(result)


def test_a_long_timeout_keeps_checkpoints_aligned() -> None:
    result = run(timeout_scenario(10_000.0))
    assert not [e for e in result.trace.events if e[1] in ("alignment_timed_out",
                                                              "barrier_overtaken")]
    assert result.snapshots and not any(s.has_channel_state for s in result.snapshots)
    onceflow.check(result)


def test_a_zero_timeout_is_unaligned_from_the_start_and_only_unaligned_mode_takes_one() -> None:
    result = run(timeout_scenario(0.0))
    assert any(e[1] == "barrier_overtaken" for e in result.trace.events)
    assert not any(e[1] == "alignment_timed_out" for e in result.trace.events)
    with pytest.raises(ScenarioError, match="unaligned"):
        CheckpointConfig(mode="aligned", aligned_timeout=5.0)
    s = timeout_scenario(2.5)
    assert Scenario.from_json(s.to_json()) == s
    assert "aligned_timeout" not in Scenario().to_json()


def test_rescaling_in_flight_data_of_a_forward_edge_fails_the_restore_as_in_flink() -> None:
    from tests.test_placement import MISROUTED  # forward reduce1 -> sink holds in-flight data

    result = run(Scenario.from_data(MISROUTED))
    snap = next(x for x in result.snapshots
                if any("->sink[" in k and v for k, v in x.channel_state.items()))
    restored = restore(result, snap, 2)
    assert restored.status == "failed"
    assert any("pointwise partitioner" in str(e[3]) for e in restored.trace.events
               if e[1] == "failed")


# -- restored channel state goes first, also past a barrier ------------------------------------

# An unaligned barrier overtook the restored channel state at the head of a channel: a
# later buffer of the same key reached the new owner's reduce first (a false "missed
# input", rescaled to 6), and on a window a false "counted input twice" (rescaled to 8).
_BARRIER_OVERTOOK_RESTORED_STATE = (
    "of1.eNqVU9tuozAQ_Rc_owqy22qVX4kqNDVD4mWwvWM7Kar4984ASZvt9mF5wvjM8bmYN2NPaIcYnM_J7N8MkDt67NrsRgwlm3390FSmKwwvhG3KgdHse6CElZEZ5DOQgh4rM8Jra4O3hRm9TMrcGDqBm-I3WlMZxgxOX3X_dspj_VDLMhCuB_XgSFTciavnyvRQSN8Pz0JeMvjrgjFl4LxYyBnHqBs7UY4E0yJQphOc8cp2UKBuyLkdi6SbLaUSm20EBiIkl0az94VICHKIG26WQ5Po6wqJxUOtS1RbwpecH8R2voQ2niChWSY1OZP-kMv6Qaw7f1S9L6XvkVtGG7gTZb8qKQW8R2otRLAuT4uV306M8SaZIKO309bPOivpp2tjHG17jymRAqzFLhyz5h0DheOkKrS9O8fNToSckbOzuOaF3VEt9IEvwNrl4HynnkJhq57u5nfrelwSKe4TcK5uXJLO6YOIJc2vRD--Eq3A-n-Zdt8xNd8zLV3-xdP8w5rC5mcN9dV__D1PtT5amCSZXPDL8CXwoGVo7gNO60299f-z-XyVBrxslacoV0ex8_wOKMs55A",
    "of1.eNp1UuFO8zAMfBf_rlA3xie0V0GoMqm7haZJ5CQr09R3_-y2Awasfxond5fzORcwRzJ9DNbnBPsLoLMHT22T7UChZNjXD5sK2sL45qhJOTDBvkOXqALhEJ_QKeipggE_GhO8KczkhSm8IbQCh-JXWaiAKaPVpZ5_3vJUP9RSBkfLRR1aJy5uzNVTBR0Wp-uXVxEvGf21YEoZOc8t5ExD1IOtOCeH59mgsBOe6KqmpCT6bXG0VqSuxEayvhfXeQxNPGIimI1af1D1t9J1xA2TCdymuQtzRO_JNQYjGpvlul0F71Zs8Jqfw0zenNdq4UpWSVPSxjma5hZTogu4jEF3tpOmE4MLh7O60KwjMjpHzqZBZLbPFZyIszWk3V2A2oNm3wUekTX53nrpD1IobLSnG_7jUg9zAMV-A07Vp5aEcfwSYsnut9Dut9ACrO8rjfIL431L26vSAtzcV5pH90Nn80drCpteNdQP__XW_9X66UAkyWSDn8lj4F6Hobn3dJZ0n68zlPXj7vvL6WlcR5qis_MbnKb_1s4d3g",
)


@pytest.mark.parametrize("token", _BARRIER_OVERTOOK_RESTORED_STATE)
def test_a_barrier_does_not_overtake_restored_channel_state(token: str) -> None:
    from onceflow.properties import check
    from onceflow.token import decode

    check(run(decode(token)))


def test_an_overtaking_barrier_stays_behind_restored_channel_state() -> None:
    """In Flink the restored in-flight data sits in the receiver's recovered input channel,
    consumed before the sender's partition is requested: an unaligned barrier overtakes
    only what the sender sent since, and only that becomes channel state."""
    import random

    import simpy

    from onceflow.model.channel import Channel

    class _Receiver:
        name = "reduce[0]"

        def wake(self) -> None:
            pass

    env = simpy.Environment()
    ch = Channel(env, "map[0]", _Receiver(), 0, latency=0.1, jitter=0.0,  # type: ignore[arg-type]
                 rng=random.Random(0), capacity=4, pointwise=False)
    old = [[Record("r1", 0, 1, 0, 0)], [Record("r2", 0, 2, 0, 1)]]
    ch.prefill(old)
    new = [Record("r3", 0, 3, 0, 2)]
    ch.send(new)
    overtaken = ch.overtake("barrier")
    assert overtaken == [new]
    assert [item for _, item in ch.items] == [old[0], old[1], "barrier", new]
    env.run()
    assert [ch.take() for _ in range(4)] == [old[0], old[1], "barrier", new]
