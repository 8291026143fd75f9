"""The generator reaches a stop-with-savepoint that fails with no crash.

A failed stop-with-savepoint (drained or not) fails a Flink job over to its latest
checkpoint; a crash would fail it over anyway, so the window is a stop whose savepoint
fails by itself: its upload fails, or outlasts the checkpoint timeout.  The generator
draws such a storage fault as a companion of a stop in the plan (`_stop_failure`);
before it, drained-stop-resumes (FLINK-21030) was found after ~1,000 scenarios.
"""

from __future__ import annotations

from onceflow.faults.plan import StorageFault
from onceflow.model.simulation import run
from onceflow.properties.checks import check
from onceflow.properties.violation import Violation
from onceflow.strategies import scenario_from_seed

SEEDS = range(300)


def _stop_failures(mutants: tuple[str, ...] = ()) -> list:
    out = []
    for seed in SEEDS:
        s = scenario_from_seed(seed, mutants=mutants)
        if not any(r.stop for r in s.savepoints):
            continue
        last = s.faults[-1] if s.faults else None
        if (isinstance(last, StorageFault) and last.snapshot == "savepoint"
                and (last.effect == "fail_write" or last.delay > s.checkpoints.timeout)):
            out.append(s)
    return out


def test_a_stop_in_the_plan_often_comes_with_a_savepoint_that_fails() -> None:
    drawn = _stop_failures()
    assert len(drawn) >= 20, len(drawn)  # ~1 in 6 scenarios
    for s in drawn:
        # a slow upload outlasts the timeout the scenario ends with; the job may restart
        # once more for it
        assert len(s.faults) <= 4
        assert s.restart.attempts >= 2 + sum(r.stop for r in s.savepoints)


def test_the_window_of_a_stop_failing_after_its_drain_is_reached() -> None:
    """Among the drawn scenarios with such a companion, drained-stop-resumes (the job
    goes on after a drained stop fails, its input cut short) is found, and the correct
    model judges the same scenarios clean."""
    found = []
    for s in _stop_failures(("drained-stop-resumes",)):
        try:
            check(run(s))
        except Violation as violation:
            found.append((s, violation.finding))
    assert found, "no drawn stop-with-savepoint failed after its drain"
    for s, finding in found[:3]:
        assert finding.property == "no_loss"
        check(run(s.__class__.from_data({**s.to_data(), "mutants": []})))
