"""Store faults on the store protocol (issue 11): a lost transaction fails the writer,
a slow commit keeps the committer busy; memory and SQLite alike; the mutants that need
them; `onceflow store FILE` and the --keep-store declaration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

import onceflow
from onceflow import Scenario
from onceflow.errors import ScenarioError
from onceflow.faults.plan import StoreFault
from onceflow.properties import Violation
from onceflow.registry import STORES, register_store
from onceflow.stores import (ABORTED, MemoryStore, SQLiteStore, StoreError, TransactionLostError,
                             keep_store)
from tests.test_cli import cli
from tests.test_sinkv2 import events, scenario
from tests.verdicts import verdict as _verdict

LOST = StoreFault("lost_transaction", 12.0, 1, "sink[0]")
SLOW = StoreFault("slow_commit", 1.0, 10, "*", 40.0)



@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_lost_transaction_fails_the_writer_and_the_job_recovers(store: str) -> None:
    result = onceflow.run(evolve(scenario(LOST), store=store))
    (lost,) = events(result, "txn_lost")
    failed = events(result, "failed", "sink[0]")
    assert failed and lost[3][0] in failed[0][3][0] and "fail the task" in failed[0][3][0]
    assert result.status == "finished" and result.restarts == 1
    assert result.store.txns[lost[3][0]].state == ABORTED
    onceflow.check(result)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_slow_commit_keeps_the_committer_busy_and_lands_later(store: str) -> None:
    fast = onceflow.run(evolve(scenario(), store=store))
    slow = onceflow.run(evolve(scenario(StoreFault("slow_commit", 1.0, 1, "*", 40.0)),
                               store=store))
    onceflow.check(slow)
    first = min(e for e in events(slow, "commit"))
    visible = [v for v in slow.store.visibility() if v.txn == first[3][0]]
    assert visible and visible[0].time == first[0] + 40.0  # visible once the commit ends
    # the committing subtask handled nothing in between: it was busy committing
    busy = [e for e in slow.trace.events if e[2] == first[2] and first[0] < e[0] < first[0] + 40.0]
    assert not busy, busy[:3]
    assert slow.end_time > fast.end_time


@pytest.mark.parametrize("fault", [LOST, SLOW, StoreFault("lost_transaction", 12.0, 1, "*")])
def test_memory_and_sqlite_agree_under_store_faults(fault: StoreFault) -> None:
    s = scenario(fault)
    assert _verdict(s) == _verdict(evolve(s, store="sqlite")) == ("clean", _verdict(s)[1])


@pytest.mark.parametrize("store", [MemoryStore(100.0), SQLiteStore(100.0)], ids=["memory", "sqlite"])
def test_writes_into_a_dropped_transaction_raise_and_forks_replay_them(store: Any) -> None:
    store.begin(0.0, "t", ("sink", 0))
    store.abort(1.0, "t")
    with pytest.raises(TransactionLostError, match="fail the task"):
        store.write(2.0, "t", [])
    with pytest.raises(TransactionLostError):
        store.precommit(3.0, "t")
    store.begin(0.0, "old", ("sink", 0))
    with pytest.raises(TransactionLostError, match=r"transaction timeout \(100 ms\)"):
        store.write(200.0, "old", [])
    fork = store.fork(store.version())
    assert fork.version() == store.version()


class _SilentStore(MemoryStore):
    """A registered store that drops writes into dead transactions silently (the old
    behaviour): the fault view still fails the writer."""

    def write(self, now: float, txn_id: str, records: list[Any]) -> None:
        try:
            super().write(now, txn_id, records)
        except TransactionLostError:
            pass

    def precommit(self, now: float, txn_id: str) -> None:
        try:
            super().precommit(now, txn_id)
        except TransactionLostError:
            pass


def test_a_registered_store_that_drops_writes_silently_still_fails_the_writer() -> None:
    register_store("test-silent", factory=lambda *, txn_timeout, label="": _SilentStore(txn_timeout))
    try:
        result = onceflow.run(evolve(scenario(LOST), store="test-silent"))
        assert events(result, "failed", "sink[0]") and result.restarts == 1
        onceflow.check(result)
    finally:
        del STORES["test-silent"]


KILLS = {"writer-swallows-lost-transaction": LOST, "committer-commits-async": SLOW}


@pytest.mark.parametrize("mutant", sorted(KILLS))
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_each_store_fault_mutant_needs_its_fault(mutant: str, store: str) -> None:
    s = evolve(scenario(KILLS[mutant], mutants=(mutant,)), store=store)
    with pytest.raises(Violation) as info:
        onceflow.check(onceflow.run(s))
    assert info.value.finding.anomaly == "lost"
    onceflow.check(onceflow.run(evolve(s, mutants=())))  # the fault alone: clean
    onceflow.check(onceflow.run(evolve(s, faults=())))   # the mutant alone: clean


@pytest.mark.parametrize("fault, field", [
    (StoreFault("slow_commit", 1.0, 1, "*", 0.0), "delay"),
    (StoreFault("slow_commit", 1.0, 1, "sink[0]", 5.0), "target"),
    (StoreFault("lost_transaction", 1.0, 1, "*", 5.0), "delay"),
    (StoreFault("lost_transaction", 1.0, 1, "sink[9]"), "target"),
    (StoreFault("commit_failure", 1.0, 1, "sink[0]"), "target"),
    (StoreFault("lost_all", 1.0), "effect"),
])
def test_bad_store_faults_name_the_field(fault: StoreFault, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(fault)
    assert info.value.field == f"faults[0].{field}"


def test_the_generator_draws_every_store_fault() -> None:
    from onceflow.strategies import scenario_from_seed

    drawn = {f.effect for seed in range(400) for f in scenario_from_seed(seed).faults
             if isinstance(f, StoreFault)}
    assert drawn == {"commit_failure", "lost_transaction", "slow_commit"}


# -- reading a kept database back, and --keep-store by declaration ---------------------------

def test_onceflow_store_reads_a_kept_file_without_changing_it(tmp_path: Path) -> None:
    with keep_store(tmp_path):
        result = onceflow.run(Scenario(store="sqlite"))
    path = tmp_path / f"{result.run_id}-t0.sqlite"
    before = path.read_bytes()
    out = cli("store", str(path))
    assert out.returncode == 0, out.stderr
    assert f"read-committed at t=" in out.stdout
    assert f": {len(result.committed())} records" in out.stdout
    out = cli("store", str(path), "--json")
    import json

    summary = json.loads(out.stdout)
    assert summary["committed"] == len(result.committed()) and summary["transactions"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["missing", "corrupt", "foreign", "locked", "unreadable"])
def test_onceflow_store_on_a_bad_file_is_one_line_exit_2(bad_sqlite_file: Any, kind: str) -> None:
    path = bad_sqlite_file(kind)
    out = cli("store", str(path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("onceflow: error: SQLite store")


def test_keep_store_follows_the_store_declaration(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "mystores.py").write_text(
        "from onceflow.registry import register_store\n"
        "from onceflow.stores import MemoryStore, SQLiteStore\n"
        "register_store('keeper', keeps_files=True, factory=lambda *, txn_timeout, label='': "
        "SQLiteStore(txn_timeout, label=label))\n"
        "register_store('nofiles', factory=MemoryStore)\n")
    out = cli("--plugin", "mystores", "run", "--seed", "1", "--store", "keeper",
              "--keep-store", str(tmp_path / "k"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "k").glob("*.sqlite"))
    out = cli("--plugin", "mystores", "run", "--seed", "1", "--store", "nofiles",
              "--keep-store", str(tmp_path / "n"), cwd=tmp_path)
    assert out.returncode == 2 and "the nofiles store keeps none" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    register_store("test-nofiles", factory=MemoryStore)
    try:
        assert STORES["test-nofiles"].keeps_files is False  # MemoryStore declares it
        assert STORES["sqlite"].keeps_files is True
    finally:
        del STORES["test-nofiles"]
    with pytest.raises(Exception, match="keeps_files"):
        register_store("test-bad-keep", factory=MemoryStore, keeps_files="yes")  # type: ignore[arg-type]


def test_a_sink_whose_final_commit_is_slow_finishes_after_it() -> None:
    plain = onceflow.run(scenario())
    last = max(e[0] for e in events(plain, "commit"))
    slow = onceflow.run(scenario(StoreFault("slow_commit", last - 0.01, 4, "*", 25.0)))
    onceflow.check(slow)
    landed = max(v.time for v in slow.store.visibility())
    finished = max(e[0] for e in events(slow, "task_finished"))
    assert finished >= landed > last


def test_the_readme_example_is_clean_with_both_faults_fired() -> None:
    s = Scenario.from_json((Path(__file__).parent.parent / "examples" / "lost-and-slow.json")
                           .read_text())
    result = onceflow.run(s)
    assert {f["effect"] for f in result.faults_fired} == {"lost_transaction", "slow_commit"}
    assert result.restarts == 1
    onceflow.check(result)
    with pytest.raises(Violation):
        onceflow.check(onceflow.run(evolve(s, mutants=("writer-swallows-lost-transaction",))))


class _BrokenOpen(MemoryStore):
    def open_transactions(self, sink_uid: str) -> list[Any]:
        return [object()]


def test_a_store_whose_open_transactions_break_under_a_fault_is_named() -> None:
    register_store("test-broken-open",
                   factory=lambda *, txn_timeout, label="": _BrokenOpen(txn_timeout))
    try:
        with pytest.raises(StoreError, match="broke the store protocol.*lost_transaction"):
            onceflow.run(evolve(scenario(LOST), store="test-broken-open"))
    finally:
        del STORES["test-broken-open"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_lost_transaction_with_nothing_open_waits_for_the_next_write(store: str) -> None:
    from onceflow.faults.plan import Crash

    # sink[0] is down (restarting) at t=12: nothing of it is open; the fault strikes the
    # first transaction the restarted subtask writes into
    s = evolve(scenario(Crash(11.0, "sink[0]"), LOST), store=store)
    result = onceflow.run(s)
    (lost,) = events(result, "txn_lost")
    assert lost[0] > 12.0 and ".a2." in lost[3][0]  # a transaction of the second attempt
    assert result.restarts == 2
    onceflow.check(result)


def test_a_sink_that_rethrows_the_lost_transaction_as_its_own_error_fails_over() -> None:
    """KafkaWriter rethrows the producer's error as an IOException: still a failover,
    not a bug in the sink."""
    from onceflow.model.sinks import StoreWriter, TwoPhaseCommitSink
    from onceflow.registry import SINKS, register_sink

    class Rethrowing(StoreWriter):
        def write(self, ctx: Any, txn: str, records: list[Any]) -> None:
            try:
                super().write(ctx, txn, records)
            except TransactionLostError as exc:
                raise OSError("One or more send requests have encountered exception") from exc

    register_sink("test-rethrowing", factory=lambda: TwoPhaseCommitSink(writer=Rethrowing()),
                  kind="two_phase")
    try:
        result = onceflow.run(evolve(scenario(LOST), sink="test-rethrowing"))
        assert result.status == "finished" and result.restarts == 1
        onceflow.check(result)
    finally:
        del SINKS["test-rethrowing"]


def test_drawn_scenarios_with_lost_or_slow_commits_agree_on_memory_and_sqlite() -> None:
    """The generator's lost-transaction and slow-commit scenarios: the correct model is
    clean, with the same digest on both stores (128 of 1500 seeds checked by hand)."""
    from onceflow.strategies import scenario_from_seed

    seen = 0
    for seed in range(400):
        s = scenario_from_seed(seed)
        if not any(isinstance(f, StoreFault) and f.effect != "commit_failure" for f in s.faults):
            continue
        seen += 1
        assert _verdict(s) == _verdict(evolve(s, store="sqlite")) == ("clean", _verdict(s)[1])
        if seen == 8:
            break
    assert seen == 8


# Ten slow commits of 25.5 ms made five checkpoints in a row expire (the committing sink was
# busy past the 50 ms timeout); with no failure tolerated each failed the job over, and the
# drawn restart budget (one failover per fault) ran out: "stuck" on the correct model.
_SLOW_COMMITS_OUTLAST_RESTARTS = (
    "of1.eNqNkt2O4yAMhd-Fy1U0Skfb0SqvMqqQC07KxgGWn2aqKu8-dtKJ2rvNFYGD_Z1j7spc0IwxOF-y6u7K1gRnQp1LSKi6Hihjo_gU0xVIde3bsVETfGkTvKkpoS-qO_BWsCxXQG7waFWjEhZwspTT4iYMlZXH9q3l30C4tenBEVr9AtEujeqhkqw_7wqKdOVbFgluqns_CgL2PRo-UZnCzDDT5Ap3HZ23srnScyNIA4rql9oguOShXU7MWwus3T5PwppZWcQ_lIJTlIPfe0f2zEgZrviD-IKV2OeelJTi3jpCAiIklyfV-UrUCFR86IQgs2lbCTeEjBIVl8vOjwxc5qDjBbK4eMxC5X_kCm5OnB8E91w5h6QTmpBsXrM2F_AeSRuIYFy5rZt_HftKD2KCgt6sxg5CLHc5wlx-dqLRr5oaKYDVkuBaY5EZxkBhuAmFvIcXw4f3P426YirO4BYX2kEs9CHNkOzTpEJNRjy93t_-pzWR6p6ES7PXOidmMpCf5y7h_UctkS0ncfHl9f44P1r5JCFGzy749fIc0ijuxeiIty3kPfD2eXQjzo-Ic-RRiXRZvgFrcR5e")


def test_the_drawn_restart_budget_covers_every_slow_commit() -> None:
    from onceflow.model.simulation import run
    from onceflow.properties import check
    from onceflow.strategies import scenario_from_seed
    from onceflow.token import decode

    scenario = decode(_SLOW_COMMITS_OUTLAST_RESTARTS)
    (slow,) = scenario.faults
    assert scenario.restart.attempts < slow.times  # as drawn before: it ran out
    check(run(evolve(scenario, restart=evolve(scenario.restart, attempts=slow.times + 2))))
    drawn = 0
    for seed in range(400):
        s = scenario_from_seed(seed)
        slow_commits = [f for f in s.faults
                        if isinstance(f, StoreFault) and f.effect == "slow_commit"]
        if slow_commits:
            drawn += 1
            stops = sum(r.stop for r in s.savepoints)
            assert s.restart.attempts >= len(s.faults) + stops + 2 + sum(
                f.times - 1 for f in slow_commits), seed
    assert drawn >= 5
