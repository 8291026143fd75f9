"""A lost transaction timed by progress (issue 11): the external system drops a sink
subtask's open transaction at its n-th record after k completed checkpoints, as
`ProgressCrash` times a crash; the writer fails, the job recovers, memory and SQLite
agree; the lost-transaction mutant is found with it; the generator draws it."""

from __future__ import annotations

import json

import pytest
from attrs import evolve

import onceflow
from onceflow import Scenario
from onceflow.errors import ScenarioError
from onceflow.faults.injector import unfired
from onceflow.faults.plan import ProgressLostTransaction
from onceflow.strategies import scenario_from_seed
from tests.test_sinkv2 import events, scenario
from tests.verdicts import verdict

LOST = ProgressLostTransaction("sink[1]", record=30, after_checkpoints=2)



@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_transaction_is_lost_at_the_record_after_the_checkpoints(store: str) -> None:
    result = onceflow.run(evolve(scenario(LOST), store=store))
    (fired,) = result.faults_fired
    assert fired["kind"] == "progress_lost_transaction" and fired["phase"] == "progress"
    assert fired["effect"] == "lost_transaction" and fired["target"] == "sink[1]"
    evs = result.trace.events
    hit = next(i for i, e in enumerate(evs) if e[1] == "fault")
    completed = [e for e in evs[:hit] if e[1] == "completed" and e[3][1] == "checkpoint"]
    assert len(completed) >= 2
    # sink[1] had handled 29 records of its first attempt when its transaction was lost
    seen = sum(len(e[3][0]) if isinstance(e[3][0], (list, tuple)) else 1
               for e in evs[:hit] if e[1] == "processed" and e[2] == "sink[1]")
    (lost,) = events(result, "txn_lost")
    assert lost[0] == evs[hit][0] and lost[3][0].startswith("sink.1.")
    failed = events(result, "failed", "sink[1]")
    assert failed and lost[3][0] in failed[0][3][0]
    assert result.status == "finished" and result.restarts == 1
    assert result.store.txns[lost[3][0]].state == "aborted"
    assert seen <= 29, seen
    onceflow.check(result)


def test_memory_and_sqlite_agree() -> None:
    s = scenario(LOST)
    assert verdict(s) == verdict(evolve(s, store="sqlite")) == ("clean", verdict(s)[1])


def test_it_strikes_once_and_never_past_the_input() -> None:
    result = onceflow.run(scenario(LOST))
    assert len(events(result, "txn_lost")) == 1  # the restarted subtask counts again: once
    beyond = onceflow.run(scenario(ProgressLostTransaction("sink[0]", record=10**6)))
    assert unfired(beyond) and not events(beyond, "txn_lost")
    onceflow.check(beyond)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_lost_transaction_mutant_is_found_with_it(store: str) -> None:
    s = evolve(scenario(LOST, mutants=("writer-swallows-lost-transaction",)), store=store)
    assert verdict(s)[0] == "lost"
    assert verdict(evolve(s, mutants=()))[0] == "clean"
    assert verdict(evolve(s, faults=()))[0] == "clean"


def test_json_and_validation() -> None:
    s = scenario(LOST)
    data = json.loads(s.to_json())["faults"][0]
    assert data == {"kind": "progress_lost_transaction", "target": "sink[1]", "record": 30,
                    "after_checkpoints": 2}
    assert Scenario.from_json(s.to_json()) == s
    for fault, field in ((ProgressLostTransaction("map[0]"), "target"),
                         (ProgressLostTransaction("sink[7]"), "target"),
                         (ProgressLostTransaction("sink[0]", record=0), "record"),
                         (ProgressLostTransaction("sink[0]", after_checkpoints=-1),
                          "after_checkpoints")):
        with pytest.raises(ScenarioError) as info:
            scenario(fault)
        assert info.value.field == f"faults[0].{field}", fault


def test_the_generator_draws_it_and_its_runs_are_clean() -> None:
    drawn = [s for s in map(scenario_from_seed, range(800))
             if any(isinstance(f, ProgressLostTransaction) for f in s.faults)]
    assert len(drawn) >= 5
    fired = 0
    for s in drawn[:12]:
        result = onceflow.run(s)
        onceflow.check(result)
        fired += any(f["kind"] == "progress_lost_transaction" for f in result.faults_fired)
    assert fired >= 1
