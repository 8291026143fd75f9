"""The public component protocols: sources, operators, and two-phase sinks as a writer plus
a committer (Flink's Sink V2 shape), which users swap for their own."""

from __future__ import annotations

from typing import Any

import pytest

import onceflow
from onceflow import CheckpointConfig, Scenario, Timing, Topology, Vertex, Workload
from onceflow.faults.plan import Crash, PhaseCrash
from onceflow.model.sinks import Committer, SinkWriter, StoreCommitter, StoreWriter, TwoPhaseCommitSink
from onceflow.registry import SINKS, register_sink


class CountingCommitter(StoreCommitter):
    """A correct committer that fails every first attempt (transiently) and counts calls."""

    calls: list[str] = []  # every call of every instance, for the test to read

    def __init__(self) -> None:
        self.tried: set[str] = set()

    def commit(self, ctx: Any, txn: str) -> bool | None:
        CountingCommitter.calls.append(txn)
        if txn not in self.tried:  # decisions use this instance's state only: deterministic
            self.tried.add(txn)
            return None  # transient: the sink retries
        return super().commit(ctx, txn)


class ForgetfulCommitter(StoreCommitter):
    """A buggy committer: after a restore it reports the recovered transactions as
    committed without committing them (it trusts a cache that died with the task)."""

    def commit(self, ctx: Any, txn: str) -> bool | None:
        written_by = txn.split(".")[2]  # transactions are named uid.subtask.attempt.n
        if written_by != ctx.attempt:
            return True  # a recovery commit: "already done", it wrongly assumes
        return super().commit(ctx, txn)


@pytest.fixture(autouse=True)
def sinks() -> Any:
    register_sink("counting_2pc", factory=lambda: TwoPhaseCommitSink(
        writer=StoreWriter(), committer=CountingCommitter()), exactly_once=True)
    register_sink("forgetful_2pc", factory=lambda: TwoPhaseCommitSink(
        committer=ForgetfulCommitter()), exactly_once=True)
    CountingCommitter.calls = []
    yield
    SINKS.pop("counting_2pc", None)
    SINKS.pop("forgetful_2pc", None)


def scenario(sink: str, **kw: Any) -> Scenario:
    topology = Topology((Vertex("source", "source", 2), Vertex("reduce", "reduce", 2, "hash"),
                         Vertex("sink", "sink", 2, "forward")))
    return Scenario(topology=topology, workload=Workload(records=120, keys=5),
                    checkpoints=CheckpointConfig(interval=2.0), sink=sink,
                    timing=Timing(record_cost=0.05), **kw)


def test_the_built_in_halves_satisfy_the_protocols() -> None:
    writer: SinkWriter = StoreWriter()
    committer: Committer = StoreCommitter()
    assert callable(writer.pre_commit) and callable(committer.commit)


def test_a_user_committer_is_judged_unchanged_through_crashes_and_retries() -> None:
    result = onceflow.run(scenario("counting_2pc", faults=(Crash(9.0, "sink[1]"),)))
    onceflow.check(result)
    assert result.restarts == 1
    retried = {t for t in CountingCommitter.calls if CountingCommitter.calls.count(t) >= 2}
    assert retried and retried == set(CountingCommitter.calls)


def test_a_committer_that_skips_recovery_commits_loses_data() -> None:
    # the sink crashes after pre-commit, so the restored job must commit that transaction
    faults = (PhaseCrash("pre_commit", "sink[0]", 2),)
    onceflow.check(onceflow.run(scenario("two_phase", faults=faults)))
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(onceflow.run(scenario("forgetful_2pc", faults=faults)))
    assert info.value.finding.anomaly == "lost"


def test_every_built_in_component_satisfies_the_public_protocol_it_documents() -> None:
    from onceflow.model import LogReader, Operator, SourceReader
    from onceflow.model.operators import (FilterOperator, FlatMapOperator, MapOperator,
                                          ReduceOperator, WindowOperator)
    from onceflow.model.sinks import AppendSink, IdempotentSink

    assert isinstance(LogReader(), SourceReader)
    for component in (MapOperator(1), FilterOperator(2), FlatMapOperator(2), ReduceOperator(),
                      WindowOperator(3), AppendSink(), IdempotentSink(), TwoPhaseCommitSink()):
        assert isinstance(component, Operator), type(component).__name__
