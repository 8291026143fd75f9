"""A crash interrupts a commit in flight (issue 11): a slow commit's outcome after a
crash is the fault's `on_crash` (the store completes it, or never got it), the restored
committer commits again and the output stays exactly-once; a committer that re-sends an
in-doubt commit (apache/iceberg #2808, #16008) is found only through the interrupted
commit; memory and SQLite agree."""

from __future__ import annotations

import json
from typing import Any

import pytest
from attrs import evolve

import onceflow
from onceflow import Scenario
from onceflow.errors import ScenarioError
from onceflow.faults.plan import PhaseCrash, StoreFault
from onceflow.strategies import scenario_from_seed
from tests.test_sinkv2 import events, scenario
from tests.verdicts import verdict

MUTANT = "committer-resends-in-doubt"


def slow(on_crash: str = "committed", delay: float = 30.0) -> StoreFault:
    return StoreFault("slow_commit", 0.0, 10, "*", delay, on_crash)


def job(*faults: Any, mutants: tuple[str, ...] = (), store: str = "memory") -> Scenario:
    s = scenario(*faults, mutants=mutants)
    # a restart (2 ms) quicker than the commit (30 ms): the restored committer commits
    # again while the interrupted commit is still in flight
    return evolve(s, restart=evolve(s.restart, delay=2.0), store=store,
                  workload=evolve(s.workload, records=20))



@pytest.mark.parametrize("on_crash", ["committed", "not_committed"])
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_interrupted_commit_is_committed_once(on_crash: str, store: str) -> None:
    s = job(slow(on_crash), PhaseCrash("commit_in_flight", "sink[0]"), store=store)
    result = onceflow.run(s)
    onceflow.check(result)
    interrupted = events(result, "commit_interrupted")
    assert interrupted and result.restarts == 1
    if on_crash == "not_committed":
        assert {e[3][1] for e in interrupted} == {"not committed"}
    else:
        assert {e[3][1] for e in interrupted} <= {"committed", "already committed"}
    # every interrupted transaction ends committed: the restored committer committed it
    for e in interrupted:
        assert result.store.txns[e[3][0]].state == "committed"


@pytest.mark.parametrize("on_crash", ["committed", "not_committed"])
def test_memory_and_sqlite_agree_on_interrupted_commits(on_crash: str) -> None:
    for mutants in ((), (MUTANT,)):
        s = job(slow(on_crash), PhaseCrash("commit_in_flight", "sink[0]"), mutants=mutants)
        assert verdict(s) == verdict(evolve(s, store="sqlite"))


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_in_doubt_mutant_needs_the_interrupted_commit(store: str) -> None:
    s = job(slow(), PhaseCrash("commit_in_flight", "sink[0]"), mutants=(MUTANT,), store=store)
    assert verdict(s)[0] == "duplicate"
    assert verdict(evolve(s, mutants=()))[0] == "clean"  # the control
    # not with the slow commit alone, nor with a crash after a commit that returned
    # or before one was sent, nor when the interrupted commit never reached the store
    for faults in ((slow(),), (slow(), PhaseCrash("commit_after", "sink[0]")),
                   (slow(), PhaseCrash("commit_before", "sink[0]")),
                   (slow("not_committed"), PhaseCrash("commit_in_flight", "sink[0]"))):
        assert verdict(evolve(s, faults=faults))[0] == "clean", faults


def test_the_outcome_is_omitted_from_json_by_default_and_validated() -> None:
    s = job(slow())
    assert "on_crash" not in s.to_json()  # older tokens keep their JSON and run id
    other = job(slow("not_committed"))
    assert json.loads(other.to_json())["faults"][0]["on_crash"] == "not_committed"
    assert Scenario.from_json(other.to_json()) == other
    with pytest.raises(ScenarioError) as info:
        job(slow("maybe"))
    assert info.value.field == "faults[0].on_crash"
    with pytest.raises(ScenarioError) as info:
        job(StoreFault("commit_failure", 1.0, 1, "*", 0.0, "not_committed"))
    assert info.value.field == "faults[0].on_crash"


def test_the_generator_aims_crashes_at_slow_commits_in_flight() -> None:
    drawn = [s for s in map(scenario_from_seed, range(600))
             if any(isinstance(f, PhaseCrash) and f.phase == "commit_in_flight"
                    for f in s.faults)]
    paired = [s for s in drawn if any(isinstance(f, StoreFault) and f.effect == "slow_commit"
                                      for f in s.faults)]
    assert len(paired) >= 5, (len(drawn), len(paired))
    outcomes = {f.on_crash for s in paired for f in s.faults if isinstance(f, StoreFault)}
    assert outcomes == {"committed", "not_committed"}


def test_the_readme_example_is_clean_and_finds_the_mutant() -> None:
    from pathlib import Path

    s = Scenario.from_json((Path(__file__).parent.parent / "examples" / "commit-in-flight.json")
                           .read_text())
    assert s.store == "sqlite"
    result = onceflow.run(s)
    assert {f["phase"] or f["effect"] for f in result.faults_fired} == {
        "slow_commit", "commit_in_flight"}
    onceflow.check(result)
    assert verdict(evolve(s, mutants=(MUTANT,)))[0] == "duplicate"


#: found by test_properties' Hypothesis run: a stop-with-savepoint whose sink finished
#: while its final commit was in flight, and a transient commit failure that came after
#: the commit was sent, failed the landing commit (a false loss)
STOP_WHILE_IN_FLIGHT = "of1.eNqVk92OozAMhd8llytUwYw6u-JVqiryBANZQhLlp52q4t3XDm0FF6ud5Yokjv2dY-cu1Ihq8k7bFEV7F10O8GlQxuQCirYHE7ESdIrhAka09eFYiRm-pHJW5RDQJtE2tOU6Chdg9GCxE5UImEDzL58mPaPLFHmsDzUtncG1TA_aYCd3EPVSiR6y4f_TfQNIR5WYtKWcwo8QUaoAcaRiZfUsPzNTJaIFH0eXeNveaCNBGJCX0eWg8FSfxVLdBXDew8d7JTo0cOMFlcG-R8XBys2zTgU0kyMvgNWgTdYfYtVJ1A3n_R_uRxFtZU8Kxn_gazvt4esX-9sePhp3lWvyb5LXy5mamROUVpzO3MhIkYmHA1LC2fPBz41bR-pXhAs--3d6YjXsaaApeM0R56Li0kMAY9DoOIvWZmMqpvKiTSEjE0Ryr8sGV4SIPEckjKUTcLo6uVpXwLUdmO4zk-wgAyoXOuL4VVEPwFo0UoEHpdOtDONvTTLCwzcDCa0qOhrm47vkWEzPHa_kPiZ746CTbFjJsfA8e2fccGMKfhs7ec0bgVwwJK1wdQe7gZveu3CF0G0aU-aSx2J3f13PxYCsN4E8AH_NxU59IxOHLWfW8GXl65l-1PyxPwQetbPl8tWFibWzzAlvsWy-7G62fZrw-jA4eqNTeRPLHykpda0"


def test_regression_a_stop_with_savepoint_waits_for_a_commit_in_flight() -> None:
    from onceflow.token import decode

    result = onceflow.run(decode(STOP_WHILE_IN_FLIGHT))
    onceflow.check(result)
    # the sink did not finish with its commit in flight: the in-flight crash struck it,
    # which fails a stopping job for good; the store completed the commit it had got
    assert not events(result, "task_finished", "sink[0]")
    assert events(result, "failed", "sink[0]") and result.status == "failed"
    (landed,) = events(result, "commit_interrupted")
    assert landed[3][1] == "committed" and len(result.committed()) == 1
