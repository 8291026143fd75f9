"""`premature`: what read-committed readers see is covered by completed snapshots, always."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

from onceflow import Scenario
from onceflow.model import run
from onceflow.model.sinks import StoreWriter, TwoPhaseCommitSink
from onceflow.properties import Violation, check
from onceflow.registry import SINKS, register_sink
from onceflow.shrinking import shrink
from onceflow.strategies import scenario_from_seed


class EagerWriter(StoreWriter):
    """Commits at pre-commit (before the checkpoint completes): the planted bug."""

    def pre_commit(self, ctx: Any, txn: str) -> None:
        super().pre_commit(ctx, txn)
        ctx.store.commit(ctx.now, txn)


class EagerSink(TwoPhaseCommitSink):
    def __init__(self) -> None:
        super().__init__(writer=EagerWriter())


@pytest.fixture
def eager_sink() -> Any:
    register_sink("test-eager", factory=EagerSink, exactly_once=True)
    yield "test-eager"
    del SINKS["test-eager"]


def _premature(scenario: Scenario) -> Any:
    with pytest.raises(Violation) as err:
        check(run(scenario))
    return err.value.finding


def test_a_registered_sink_committing_at_pre_commit_is_premature_without_faults(
        eager_sink: str) -> None:
    scenario = Scenario(sink=eager_sink)
    assert not scenario.faults
    finding = _premature(scenario)
    assert (finding.property, finding.anomaly) == ("visibility", "premature")
    assert "transaction" in finding.summary and "t=" in finding.summary
    assert finding.records and finding.faults == ()


def test_it_is_found_on_sqlite_too_and_shrinks(eager_sink: str) -> None:
    scenario = Scenario(sink=eager_sink, store="sqlite")
    finding = _premature(scenario)
    assert finding.anomaly == "premature"
    outcome = shrink(scenario)
    assert outcome is not None and outcome.finding.anomaly == "premature"
    assert not outcome.scenario.faults


def test_a_built_in_shaped_sink_committing_early_is_premature(monkeypatch: pytest.MonkeyPatch) -> None:
    def pre_commit(self: StoreWriter, ctx: Any, txn: str) -> None:
        ctx.store.precommit(ctx.now, txn)
        ctx.store.commit(ctx.now, txn)

    monkeypatch.setattr(StoreWriter, "pre_commit", pre_commit)
    finding = _premature(Scenario())
    assert finding.anomaly == "premature" and finding.faults == ()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_correct_model_is_never_premature(store: str) -> None:
    for seed in range(40):
        check(run(scenario_from_seed(seed, store=store)))
