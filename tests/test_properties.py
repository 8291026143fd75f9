"""The properties end to end: the guarantee matrix both ways, shrinking, the oracle, determinism.

Where exactly-once is promised, drawn scenarios pass every property; where it
is not (append sinks, at-least-once barriers with a shuffle into keyed state),
faults produce duplicates but never a loss.  Drawn examples are derandomized so
that the suite is the same with and without CI=1.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from attrs import evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onceflow
import onceflow.fuzz
import onceflow.shrinking
from onceflow import (CheckpointConfig, Scenario, Timing, Topology, Vertex, Violation, Workload,
                      check, run)
from onceflow.faults.plan import Crash
from onceflow.fuzz import fuzz
from onceflow.model.records import Record
from onceflow.properties import (AT_LEAST_ONCE, EXACTLY_ONCE, canonical, determinism,
                                 exactly_once, expected_output, guarantee, no_loss)
from onceflow.properties.checks import snapshots_resolve
from onceflow.properties.guarantees import guarantee_along
from onceflow.strategies import scenario_from_seed, scenarios
from onceflow.token import decode

DRAWN = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])

PROMISED = [(m, s) for m in ("aligned", "unaligned") for s in ("two_phase", "idempotent")]


def committed_vs_oracle(result: Any) -> tuple[Any, Any]:
    s = result.scenario
    want = [r for rs in expected_output(s).values() for r in rs]
    return canonical(result.committed(), s.topology), canonical(want, s.topology)


# -- the guarantee matrix, where exactly-once is promised ------------------------------------

@pytest.mark.parametrize(("mode", "sink"), PROMISED)
@DRAWN
@given(data=st.data())
def test_exactly_once_where_promised(mode: str, sink: str, data: st.DataObject) -> None:
    scenario = data.draw(scenarios(mode=mode, sink=sink), label="scenario")
    assert guarantee(scenario) == EXACTLY_ONCE
    check(run(scenario))  # every property, restores from every snapshot included


# -- ... and where it is not: duplicates, never a loss ------------------------------------------

def shuffled_keyed(mode: str, sink: str, at: float, target: str, jitter: float) -> Scenario:
    """source p=2 -> keyed reduce p=2 (hash) -> sink, one crash after a checkpoint."""
    topology = Topology((Vertex("source", "source", 2),
                         Vertex("reduce", "reduce", 2, "hash"),
                         Vertex("sink", "sink", 2, "forward")), max_parallelism=8)
    return Scenario(topology=topology, workload=Workload(records=200, keys=8, splits=2),
                    checkpoints=CheckpointConfig(mode=mode, interval=8.0),
                    timing=Timing(latency=1.0, jitter=jitter, record_cost=0.2, buffer_records=4),
                    sink=sink, faults=(Crash(at, target),))


CRASHES = [(at, target, jitter) for at in (10.0, 20.0, 30.0)
           for target in ("reduce[0]", "sink[1]") for jitter in (0.0, 0.5)]


@pytest.mark.parametrize(("mode", "sink"), [
    ("aligned", "append"), ("unaligned", "append"), ("at_least_once", "append"),
    ("at_least_once", "two_phase"), ("at_least_once", "idempotent")])
def test_at_least_once_duplicates_but_never_loses(mode: str, sink: str) -> None:
    anomalies = []
    for at, target, jitter in CRASHES:
        scenario = shuffled_keyed(mode, sink, at, target, jitter)
        assert guarantee(scenario) == AT_LEAST_ONCE
        result = run(scenario)
        assert result.status == "finished" and result.restarts == 1
        no_loss(result)
        check(result, deterministic=False)  # what is promised (at-least-once) holds
        try:
            exactly_once(result)
        except Violation as violation:
            anomalies.append(violation.finding.anomaly)
    assert anomalies, "a crash after a checkpoint should replay something"
    assert set(anomalies) == {"duplicate"}, anomalies


@pytest.mark.parametrize("sink", ["two_phase", "idempotent"])
def test_same_crashes_are_exactly_once_with_aligned_barriers(sink: str) -> None:
    """The control: the scenarios above are exactly-once where the matrix promises it."""
    for at, target, jitter in CRASHES:
        scenario = shuffled_keyed("aligned", sink, at, target, jitter)
        assert guarantee(scenario) == EXACTLY_ONCE
        result = run(scenario)
        assert result.restarts == 1
        check(result, deterministic=False)


@pytest.mark.parametrize("pins", [{"sink": "append"}, {"mode": "at_least_once"}],
                         ids=["append", "at_least_once"])
@DRAWN
@given(data=st.data())
def test_drawn_at_least_once_never_loses(pins: dict[str, str], data: st.DataObject) -> None:
    scenario = data.draw(scenarios(**pins), label="scenario")
    result = run(scenario)
    check(result, deterministic=False)
    no_loss(result)
    if guarantee(scenario) == AT_LEAST_ONCE:
        try:
            exactly_once(result)
        except Violation as violation:
            assert violation.finding.anomaly == "duplicate", violation
    else:  # at-least-once barriers on single-input tasks are exactly-once
        exactly_once(result)


def test_fuzzer_finds_and_shrinks_a_duplicate_where_exactly_once_is_not_promised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The matrix's other direction, found by the fuzzer: judged as if exactly-once were
    promised, an at-least-once cell (append sink) yields a duplicate (never a loss:
    `no_loss` runs first on every scenario), shrunk to a few records.

    (`mode="at_least_once", sink="two_phase"` finds one too, but Hypothesis takes
    10-20 s to shrink it; the hand-written crashes above cover that cell.)
    """
    as_if_promised = functools.partial(check, expect=EXACTLY_ONCE)
    monkeypatch.setattr(onceflow.fuzz, "check", as_if_promised)  # Hypothesis' loop
    monkeypatch.setattr(onceflow.shrinking, "check", as_if_promised)  # the greedy polish
    monkeypatch.setattr(onceflow.fuzz, "POLISH_SECONDS", 4.0)
    outcome = fuzz(budget=10, seed=0, sink="append")
    assert outcome.status == "violation", outcome.status
    finding, shrunk = outcome.finding, outcome.scenario
    assert finding is not None and shrunk is not None
    assert (finding.property, finding.anomaly) == ("exactly_once", "duplicate"), finding
    assert guarantee(shrunk) == AT_LEAST_ONCE
    assert outcome.first_size is not None and outcome.first_size["records"] > 10
    assert shrunk.size["records"] <= 5 and shrunk.size["faults"] <= 1, shrunk.size
    assert decode(finding.token) == shrunk
    # the normal checks judge what is promised (at-least-once): no violation
    check(run(shrunk))
    with pytest.raises(Violation) as info:
        check(run(shrunk), expect=EXACTLY_ONCE)
    assert info.value.finding.anomaly == "duplicate"


def test_check_as_if_exactly_once_were_promised() -> None:
    scenario = shuffled_keyed("at_least_once", "two_phase", 20.0, "reduce[0]", 0.0)
    result = run(scenario)
    check(result, deterministic=False)
    with pytest.raises(Violation) as info:
        check(result, deterministic=False, expect=EXACTLY_ONCE)
    assert info.value.finding.anomaly == "duplicate"
    check(result, deterministic=False, expect=AT_LEAST_ONCE)
    with pytest.raises(ValueError, match="expect"):
        check(result, expect="at_most_once")


def test_single_input_at_least_once_is_exactly_once() -> None:
    topology = Topology((Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 1),
                         Vertex("sink", "sink", 2, "forward")))
    scenario = Scenario(topology=topology, checkpoints=CheckpointConfig(mode="at_least_once"))
    assert guarantee(scenario) == EXACTLY_ONCE
    assert guarantee(evolve(scenario, sink="append")) == AT_LEAST_ONCE


#: at-least-once barriers, source(p=1) -> sink(p=1): single input, exactly-once; its rescale
#: chain restores at parallelism 8 (eight channels into each sink subtask), takes checkpoint 2
#: there with a record past source[0]'s barrier already in sink[1]'s transaction, and restores
#: that: a duplicate Flink allows (found by harden4's fuzz; judged exactly-once before)
RESCALED_SINGLE_INPUT = (
    "of1.eNqNk9tu2zAMht-F10Zgp22c-VWKQmBkJtGsSIIOSY3A7z7STroEW4f5SpR4-PmRvoI-kh6CNy4n6K7Q"
    "l4g7SyplHwm6HAtVwI8Uz2ihq1dvFZzwU2nvdImRXIau4SvfszdgVpYwZcWvBBVEymgc9dCtK8jmRL6If1uv"
    "ara9paXYHo2lXj1JaaYK9lisnN8_uELJ6O5GpKTRklhX2KEe5gIBI1pL1qQTdNsKEp7pnk6iksOQjj6LUDfC"
    "VH0X-_rP2N8yYVq0ZIxZ4GHOdAoSwpR6sjhC167q6S_pOElfLDN7r6taLkgotS-bH3w2jkVBvngVjphIHazf"
    "Mf0FoWWgUixlCgsAfWTI91n9AeFLeCMNf-_7-ui7nj6muZxxBym2K_s9RRVJ-"
    "9ineeScyTmySmNAbfI4X_40jCDKnvCALWZyWh5WW-Eksbw4SbTIewxaPfis66ePh1KC9dgr6XpOKZJ88NYfR"
    "hEle_jUwsu63XClM8Vs9G07qD_IZu59vGDsmeFgHJOG5Eucd_QpQ7PYfGJ9xTw4Crxbrkg8DVw2_J5NRvYfu"
    "cRtQfvp1NcPsZkbFiQsPRnv5uCLj4P0L60ONC7UHyew7EzTbNsNGwNdbtxTsGb5haZfTUxJDA")


def test_a_single_input_job_rescaled_to_several_channels_is_at_least_once() -> None:
    scenario = decode(RESCALED_SINGLE_INPUT)
    assert guarantee(scenario) == EXACTLY_ONCE and scenario.rescales
    wide = evolve(scenario, topology=scenario.topology.with_parallelism(8))
    assert guarantee_along([scenario, wide]) == AT_LEAST_ONCE
    assert guarantee_along([scenario, scenario]) == EXACTLY_ONCE
    result = run(scenario)
    check(result)  # the chain link restored from the wide timeline is judged at-least-once
    with pytest.raises(Violation) as info:
        check(result, expect=EXACTLY_ONCE)
    assert info.value.finding.anomaly == "duplicate"


# -- false alarms on the correct model (found while writing these tests) ----------------------------

#: Scenarios without any mutant on which `check` reports a violation.  The model
#: is correct: each is a false alarm of a property (or a modelling error).
FALSE_ALARMS = {
    # an unaligned barrier overtakes an END_OF_INPUT: the snapshot says the input
    # ended (input_ended) but the overtaken end-of-input is not channel state, so
    # consistent_cut expects fired windows that the window has not fired yet
    "unaligned-overtaken-end-of-input": (
        '{"checkpoints":{"durable_store":false,"interval":0.5,"max_concurrent":1,"mode":'
        '"unaligned","retained":1,"timeout":50.0},"faults":[],"mutants":[],"restart":{"attempts"'
        ':2,"delay":0.5},"savepoints":[],"seed":0,"sink":"two_phase","timing":{"buffer_records"'
        ':8,"channel_capacity":1,"jitter":0.7000000000000001,"latency":0.1,"record_cost":0.1,'
        '"rpc_latency":0.1,"upload_time":0.0},"topology":{"max_parallelism":128,"vertices":[{'
        '"edge":"forward","kind":"source","parallelism":4,"param":0,"uid":"source"},{"edge":'
        '"hash","kind":"window","parallelism":1,"param":2,"uid":"window0"},{"edge":"hash",'
        '"kind":"sink","parallelism":1,"param":0,"uid":"sink"}]},"txn_timeout":600000.0,'
        '"version":1,"workload":{"keys":1,"records":41,"seed":0,"skew":0.0,"splits":1}}'),
    # a savepoint uploads slowly and completes after a stop-with-savepoint has
    # committed later transactions; restoring it replays committed records
    "savepoint-completes-after-stop-savepoint": (
        '{"checkpoints":{"durable_store":false,"interval":0.5,"max_concurrent":1,"mode":'
        '"aligned","retained":1,"timeout":50.0},"faults":[{"checkpoint":0,"delay":5.0,"effect":'
        '"slow_upload","kind":"storage","target":"sink[0]"}],"mutants":[],"restart":{"attempts"'
        ':2,"delay":0.5},"savepoints":[{"at":0.76,"drain":false,"restore_parallelism":null,'
        '"stop":true},{"at":0.0,"drain":false,"restore_parallelism":null,"stop":false}],"seed":0,'
        '"sink":"two_phase","timing":{"buffer_records":8,"channel_capacity":1,"jitter":0.0,'
        '"latency":0.1,"record_cost":0.1,"rpc_latency":0.1,"upload_time":0.0},"topology":{'
        '"max_parallelism":128,"vertices":[{"edge":"forward","kind":"source","parallelism":1,'
        '"param":0,"uid":"source"},{"edge":"forward","kind":"sink","parallelism":1,"param":0,'
        '"uid":"sink"}]},"txn_timeout":600000.0,"version":1,"workload":{"keys":1,"records":9,'
        '"seed":0,"skew":0.0,"splits":1}}'),
    # a savepoint uploads slowly and completes after later checkpoints committed
    # the data behind its barrier; restoring it replays committed records
    "savepoint-completes-after-later-checkpoints": (
        '{"checkpoints":{"durable_store":false,"interval":0.5,"max_concurrent":2,"mode":'
        '"aligned","retained":1,"timeout":50.0},"faults":[{"checkpoint":0,"delay":5.0,"effect":'
        '"slow_upload","kind":"storage","target":"source[0]"}],"mutants":[],"restart":{'
        '"attempts":2,"delay":0.5},"savepoints":[{"at":0.0,"drain":false,"restore_parallelism":'
        'null,"stop":false},{"at":0.0,"drain":false,"restore_parallelism":null,"stop":false}],'
        '"seed":0,"sink":"two_phase","timing":{"buffer_records":8,"channel_capacity":1,"jitter":'
        '0.0,"latency":0.1,"record_cost":0.1,"rpc_latency":0.1,"upload_time":0.0},"topology":{'
        '"max_parallelism":128,"vertices":[{"edge":"forward","kind":"source","parallelism":1,'
        '"param":0,"uid":"source"},{"edge":"forward","kind":"sink","parallelism":1,"param":0,'
        '"uid":"sink"}]},"txn_timeout":600000.0,"version":1,"workload":{"keys":1,"records":54,'
        '"seed":0,"skew":0.0,"splits":1}}'),
    # no faults: a pending savepoint whose barrier never reached the sink completes
    # when the sink finishes (counted as acknowledged with an empty final state),
    # holding window state from before the window fired; restoring it fires again
    "savepoint-completed-by-finished-sink": (
        '{"checkpoints":{"durable_store":true,"interval":1.0,"max_concurrent":2,"mode":'
        '"unaligned","retained":2,"timeout":220.0},"faults":[],"mutants":[],"restart":{'
        '"attempts":2,"delay":4.5},"savepoints":[{"at":0.73,"drain":false,"restore_parallelism":'
        'null,"stop":false}],"seed":0,"sink":"two_phase","timing":{"buffer_records":32,'
        '"channel_capacity":5,"jitter":0.0,"latency":2.2,"record_cost":0.1,"rpc_latency":'
        '0.6000000000000001,"upload_time":0.6000000000000001},"topology":{"max_parallelism":128,'
        '"vertices":[{"edge":"forward","kind":"source","parallelism":1,"param":0,"uid":"source"},'
        '{"edge":"hash","kind":"window","parallelism":1,"param":3,"uid":"window0"},{"edge":'
        '"rebalance","kind":"sink","parallelism":1,"param":0,"uid":"sink"}]},"txn_timeout":'
        '600000.0,"version":1,"workload":{"keys":1,"records":19,"seed":28742,"skew":0.0,'
        '"splits":1}}'),
}


@pytest.mark.parametrize("name", sorted(FALSE_ALARMS))
def test_correct_model_has_no_false_alarm(name: str) -> None:
    scenario = Scenario.from_json(FALSE_ALARMS[name])
    assert not scenario.mutants and guarantee(scenario) == EXACTLY_ONCE
    result = run(scenario)
    assert result.status == "finished"
    # the uninterrupted run commits exactly the oracle's output ...
    exactly_once(result)
    # ... so every property must hold
    check(result)


# -- shrinking -------------------------------------------------------------------------------

def test_fuzzer_shrinks_a_mutant_to_a_minimal_scenario() -> None:
    outcome = fuzz(budget=30, mutants=("no-final-checkpoint",), seed=3)
    assert outcome.status == "violation"
    assert outcome.finding is not None and outcome.scenario is not None
    assert outcome.finding.property == "no_loss" and outcome.finding.anomaly == "lost"
    size = outcome.scenario.size
    assert size["records"] <= 20, size
    assert size["faults"] <= 1, size
    assert size["parallelism"] == 1, size
    # the reported token is the shrunk scenario, and it still fails
    assert decode(outcome.finding.token) == outcome.scenario
    with pytest.raises(Violation):
        check(run(outcome.scenario))


# -- the oracle, under deliberately different timing ------------------------------------------

TOPOLOGIES = {
    "rebalance-before-keyed-reduce": Topology((
        Vertex("source", "source", 2), Vertex("map", "map", 3, "rebalance", 2),
        Vertex("reduce", "reduce", 2, "hash"), Vertex("sink", "sink", 2, "forward"))),
    "hash-reduce": Topology((
        Vertex("source", "source", 2), Vertex("reduce", "reduce", 3, "hash"),
        Vertex("sink", "sink", 3, "forward"))),
    "window": Topology((
        Vertex("source", "source", 2), Vertex("window", "window", 2, "hash", 3),
        Vertex("sink", "sink", 1, "hash"))),
    "rebalance-before-window": Topology((
        Vertex("source", "source", 2), Vertex("map", "map", 2, "rebalance", 1),
        Vertex("window", "window", 3, "hash", 4), Vertex("sink", "sink", 3, "forward"))),
    "flat_map-filter-reduce": Topology((
        Vertex("source", "source", 2), Vertex("flat_map", "flat_map", 2, "forward", 3),
        Vertex("filter", "filter", 3, "rebalance", 2), Vertex("reduce", "reduce", 2, "hash"),
        Vertex("sink", "sink", 2, "forward"))),
    "broadcast": Topology((
        Vertex("source", "source", 2), Vertex("map", "map", 2, "forward", 5),
        Vertex("sink", "sink", 3, "broadcast"))),
    "rebalance-sink": Topology((
        Vertex("source", "source", 3), Vertex("sink", "sink", 2, "rebalance"))),
}

TIMINGS = [
    (0, Timing()),
    (7, Timing(latency=0.1, jitter=2.0, record_cost=0.1, buffer_records=4, channel_capacity=1)),
    (12345, Timing(latency=3.0, jitter=0.5, record_cost=0.03, buffer_records=16)),
    (99, Timing(latency=0.5, jitter=1.5, record_cost=0.01, buffer_records=8, channel_capacity=2)),
]


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_oracle_matches_runs_with_different_timing(name: str) -> None:
    base = Scenario(topology=TOPOLOGIES[name], workload=Workload(records=150, keys=6, splits=3),
                    checkpoints=CheckpointConfig(interval=5.0))
    forms = []
    raw = set()
    for seed, timing in TIMINGS:
        scenario = evolve(base, seed=seed, timing=timing)
        result = run(scenario)
        assert result.status == "finished"
        got, want = committed_vs_oracle(result)
        assert got == want, f"{name} with seed {seed}, {timing}"
        forms.append(got)
        raw.add(tuple((r.id, r.key, r.value) for r in result.committed()))
    assert all(f == forms[0] for f in forms)
    assert len(raw) > 1, "the timings should change the raw commit order"


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_canonical_detects_a_real_difference(name: str) -> None:
    scenario = Scenario(topology=TOPOLOGIES[name], workload=Workload(records=60, keys=4, splits=2))
    out = [r for rs in expected_output(scenario).values() for r in rs]
    topology = scenario.topology
    assert canonical(out, topology) == canonical(list(reversed(out)), topology) or \
        topology.order_fixed
    for i in (0, len(out) // 2, len(out) - 1):
        dropped = out[:i] + out[i + 1:]
        assert canonical(dropped, topology) != canonical(out, topology), (name, i)
    doubled = out + [out[len(out) // 3]]
    assert canonical(doubled, topology) != canonical(out, topology)
    # a changed value: behind a keyed operator fed out of order only the order-independent
    # aggregate (largest running sum, total of window sums) is compared, so change the largest
    r = max(out, key=lambda x: x.value)
    changed = [x if x is not r else Record(r.id, r.key, r.value + 1, r.split, r.offset)
               for x in out]
    assert canonical(changed, topology) != canonical(out, topology)


# -- liveness: every checkpoint the job starts completes or aborts ---------------------------------

def test_a_finished_job_resolves_every_snapshot_it_triggered() -> None:
    for seed in range(40):
        result = run(scenario_from_seed(seed))
        snapshots_resolve(result)  # as Flink: what is pending when the job ends is aborted
        triggered = {d[0] for _, kind, _, d in result.trace.events if kind == "trigger"}
        resolved = {d[0] for _, kind, where, d in result.trace.events
                    if kind in ("completed", "aborted") and where == "coordinator"}
        if result.status == "finished":
            assert triggered <= resolved, seed


def test_a_snapshot_left_hanging_by_a_finished_job_is_a_liveness_violation() -> None:
    result = run(Scenario(workload=Workload(records=20)))
    assert result.status == "finished"
    result.trace.events.append((result.end_time - 0.5, "trigger", "coordinator",
                                (99, "checkpoint")))
    result.trace._digest = None
    with pytest.raises(Violation) as info:
        check(result, restores=False, deterministic=False)
    finding = info.value.finding
    assert (finding.property, finding.anomaly) == ("liveness", "stuck")
    assert "checkpoint 99" in finding.summary and "neither completed nor was aborted" in \
        finding.summary
    # a sink's transaction abort (`abort` at a subtask) does not resolve a checkpoint
    result.trace.events.append((result.end_time, "abort", "sink[0]", (99,)))
    with pytest.raises(Violation):
        snapshots_resolve(result)
    # the coordinator's abort does
    result.trace.events.append((result.end_time, "aborted", "coordinator", (99, "job finished")))
    snapshots_resolve(result)


def test_snapshots_of_a_failed_job_are_not_judged() -> None:
    topology = Topology((Vertex("source", "source", 1), Vertex("sink", "sink", 1, "forward")))
    scenario = Scenario(topology=topology, workload=Workload(records=50, keys=1, splits=1),
                        timing=Timing(record_cost=0.5), restart=onceflow.RestartStrategy(0),
                        faults=(Crash(3.0, "sink[0]"),))
    result = run(scenario)
    assert result.status == "failed"
    result.trace.events.append((result.end_time, "trigger", "coordinator", (99, "checkpoint")))
    snapshots_resolve(result)


# -- determinism -------------------------------------------------------------------------------

@DRAWN
@given(scenarios())
def test_determinism_on_drawn_scenarios(scenario: Scenario) -> None:
    result = run(scenario)
    determinism(result)
    again = run(Scenario.from_json(scenario.to_json()))
    assert again.digest == result.digest
    assert [r.id for r in again.committed()] == [r.id for r in result.committed()]


# -- the diagnosis ---------------------------------------------------------------------------

def test_violation_message_names_property_records_replay_and_digest() -> None:
    scenario = Scenario(topology=Topology((Vertex("source", "source", 1),
                                           Vertex("sink", "sink", 1, "forward"))),
                        workload=Workload(records=3, keys=1, splits=1),
                        mutants=("no-final-checkpoint",))
    result = run(scenario)
    with pytest.raises(Violation) as info:
        check(result)
    violation = info.value
    assert isinstance(violation, AssertionError)
    text = str(violation)
    finding = violation.finding
    assert text.startswith(f"{finding.property} violated: {finding.anomaly}")
    assert finding.property == "no_loss" and finding.anomaly == "lost"
    assert finding.records and all(f"{r.id} (key {r.key}" in text for r in finding.records)
    assert "replay: onceflow replay of1." in text
    assert f"digest: {result.digest}" in text
    assert "mutants on: no-final-checkpoint" in text
    assert onceflow.decode_token(finding.token) == scenario


def test_violation_on_a_restored_timeline_names_the_snapshot() -> None:
    topology = Topology((Vertex("source", "source", 1), Vertex("sink", "sink", 1, "forward")))
    scenario = Scenario(topology=topology, workload=Workload(records=5, keys=1, splits=1),
                        checkpoints=CheckpointConfig(mode="unaligned", interval=1.5),
                        mutants=("unaligned-committables",))
    result = run(scenario)
    with pytest.raises(Violation) as info:
        check(result)
    finding = info.value.finding
    text = str(info.value)
    assert finding.timeline.startswith("restored from checkpoint ")
    assert f"timeline: {finding.timeline}" in text
    assert finding.snapshot is not None and f"snapshot: {finding.snapshot}" in text
    assert "r0 (key 0, split 0, offset 0): committed 0x, expected 1x" in text
    # the digest and token are those of the original run, which the replay re-runs
    assert f"digest: {result.digest}" in text
    assert f"replay: onceflow replay {finding.token}" in text
    assert onceflow.decode_token(finding.token) == scenario
    # without the mutant the same scenario passes
    check(run(evolve(scenario, mutants=())))
