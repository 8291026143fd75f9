"""User operators and sinks plug in by name; the harness judges them unchanged."""

from __future__ import annotations

import itertools
import random
from typing import Any, ClassVar

import pytest

import onceflow
from onceflow import (CheckpointConfig, OnceflowError, Record, Scenario, Timing, Topology,
                      Vertex, Workload)
from onceflow.errors import OperatorError, ScenarioError
from onceflow.model.sinks import StoreWriter, TwoPhaseCommitSink
from onceflow.registry import OPERATORS, SINKS, register_operator, register_sink


class CountPerKey:
    """A keyed operator: emits how many records of its key it has seen."""

    state_kind: ClassVar[str | None] = "keyed"

    def open(self, ctx: Any, restored: Any) -> None:
        self.counts: dict[int, int] = dict(restored or {})

    def process(self, records: list[Record], out: list[Record]) -> None:
        for r in records:
            self.counts[r.key] = self.counts.get(r.key, 0) + 1
            out.append(r._replace(value=self.counts[r.key]))

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return dict(self.counts)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


def count_fold(param: int, records: list[Record], state: dict[Any, Any]) -> list[Record]:
    out = []
    for r in records:
        state[r.key] = state.get(r.key, 0) + 1
        out.append(r._replace(value=state[r.key]))
    return out


class EagerWriter(StoreWriter):
    """A buggy writer: it commits its transaction when it pre-commits it, before the
    checkpoint completes."""

    def pre_commit(self, ctx: Any, txn: str) -> None:
        super().pre_commit(ctx, txn)
        ctx.store.commit(ctx.now, txn)


class EagerCommitSink(TwoPhaseCommitSink):
    """A buggy two-phase sink: its writer commits at pre-commit."""

    def __init__(self) -> None:
        super().__init__(writer=EagerWriter())


class Exploding(CountPerKey):
    def process(self, records: list[Record], out: list[Record]) -> None:
        raise ValueError("boom")


class CoinFlip(CountPerKey):
    """Non-deterministic: adds a coin flip from the global RNG to every value."""

    state_kind: ClassVar[str | None] = None

    def process(self, records: list[Record], out: list[Record]) -> None:
        out.extend(r._replace(value=r.value + random.randrange(2)) for r in records)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None


CALLS = itertools.count()


class GlobalCounter(CoinFlip):
    """Non-deterministic across runs: a module-level counter survives from one run to
    the next, so the second run of a scenario numbers its records differently."""

    def process(self, records: list[Record], out: list[Record]) -> None:
        out.extend(r._replace(value=r.value + next(CALLS)) for r in records)


def identity_fold(param: int, records: list[Record], state: dict[Any, Any]) -> list[Record]:
    return list(records)


@pytest.fixture(autouse=True)
def registered() -> Any:
    register_operator("count", factory=lambda param: CountPerKey(), fold=count_fold, keyed=True)
    register_operator("explode", factory=lambda param: Exploding(), fold=count_fold, keyed=True)
    register_operator("coin_flip", factory=lambda param: CoinFlip(), fold=identity_fold)
    register_operator("global_counter", factory=lambda param: GlobalCounter(), fold=identity_fold)
    register_sink("eager_2pc", factory=EagerCommitSink, exactly_once=True)
    yield
    for name in ("count", "explode", "coin_flip", "global_counter"):
        OPERATORS.pop(name, None)
    SINKS.pop("eager_2pc", None)


def scenario(op: str = "count", sink: str = "two_phase", **kw: Any) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("op", op, 2, "hash"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=120, keys=5),
                    checkpoints=CheckpointConfig(interval=2.0), sink=sink,
                    timing=Timing(record_cost=0.05), **kw)


def test_a_user_operator_runs_and_is_judged_by_its_fold() -> None:
    result = onceflow.run(scenario())
    assert result.status == "finished"
    onceflow.check(result)  # exactly-once, consistent cuts, restores: against `count_fold`
    assert sorted(r.value for r in result.committed() if r.key == 0)[-1] == sum(
        1 for r in result.committed() if r.key == 0)


def test_a_crash_does_not_break_a_correct_user_operator() -> None:
    faults = (onceflow.faults.plan.Crash(9.0, "op[1]"),)
    onceflow.check(onceflow.run(scenario(faults=faults)))


def test_a_buggy_user_sink_is_caught() -> None:
    faults = (onceflow.faults.plan.PhaseCrash("after_sync_snapshot", "sink[0]", 1),)
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(onceflow.run(scenario(sink="eager_2pc", faults=faults)))
    assert info.value.finding.anomaly == "duplicate"


def test_a_raising_operator_is_reported_as_an_operator_error() -> None:
    result = onceflow.run(scenario(op="explode"))
    assert result.status == "error"
    with pytest.raises(OperatorError, match="raised ValueError: boom"):
        onceflow.check(result)


def test_unregistered_names_are_scenario_errors() -> None:
    with pytest.raises(ScenarioError, match="kind"):
        Vertex("op", "no_such_op", 1, "hash")
    with pytest.raises(ScenarioError, match="sink"):
        Scenario(sink="no_such_sink")


def test_names_are_checked() -> None:
    with pytest.raises(OnceflowError):
        register_operator("map", factory=lambda p: CountPerKey(), fold=count_fold)
    with pytest.raises(OnceflowError):
        register_sink("Bad Name", factory=EagerCommitSink, exactly_once=True)


def stateless(op: str) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("noisy", op, 2, "rebalance"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=120, keys=5),
                    checkpoints=CheckpointConfig(interval=2.0), timing=Timing(record_cost=0.05))


@pytest.mark.parametrize("op", ["coin_flip", "global_counter"])
def test_a_nondeterministic_user_operator_is_reported_as_such(op: str) -> None:
    """Its wrong values look like duplicates to exactly-once, but the verdict is that two
    runs of the scenario differ, naming the operator, not an exactly-once violation."""
    result = onceflow.run(scenario := stateless(op))
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(result)
    finding = info.value.finding
    assert (finding.property, finding.anomaly) == ("determinism", "nondeterministic"), finding
    assert f"operator 'noisy' of kind '{op}' (a user operator)" in finding.summary
    text = str(info.value)
    assert "first difference:" in text and "in the first run" in text
    # what the first run looked like is kept, marked as not reported
    assert "not reported: exactly_once" in text
    assert isinstance(info.value.__cause__, onceflow.Violation)
    assert onceflow.decode_token(finding.token) == scenario
    # without the re-run, the same run looks like an exactly-once violation
    with pytest.raises(onceflow.Violation) as plain:
        onceflow.check(result, deterministic=False)
    assert plain.value.finding.property == "exactly_once"


def test_a_deterministic_user_operator_failing_is_not_called_nondeterministic() -> None:
    faults = (onceflow.faults.plan.PhaseCrash("after_sync_snapshot", "sink[0]", 1),)
    result = onceflow.run(scenario(sink="eager_2pc", faults=faults))
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(result)
    assert info.value.finding.property != "determinism"
    assert info.value.__cause__ is None
