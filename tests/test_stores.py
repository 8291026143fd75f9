"""The store protocol: transactions, upserts by key, metadata, views, visibility, forks."""

from __future__ import annotations

import pytest

from onceflow import Scenario
from onceflow.errors import OnceflowError
from onceflow.model import run
from onceflow.model.records import Record
from onceflow.registry import STORES, register_store
from onceflow.stores import MemoryStore, Store, StoreError, make_store


def rec(i: int) -> Record:
    return Record(f"r{i}", i % 3, i, 0, i)


@pytest.fixture(params=sorted(n for n in ("memory", "sqlite") if n in STORES))
def store(request: pytest.FixtureRequest) -> Store:
    s = make_store(request.param, txn_timeout=100.0, label="test")
    yield s
    s.close()


def test_every_builtin_store_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_transactions_commit_idempotently_and_expire(store: Store) -> None:
    store.begin(0.0, "a", ("sink", 0))
    store.write(1.0, "a", [rec(1), rec(2)])
    assert store.read_committed(2.0) == []
    assert store.read_uncommitted(2.0) == [rec(1), rec(2)]
    store.precommit(2.0, "a")
    assert store.commit(3.0, "a") is True
    assert store.commit(4.0, "a") is True  # idempotent
    assert store.read_committed(5.0) == [rec(1), rec(2)]
    store.begin(5.0, "b", ("sink", 1))
    store.write(6.0, "b", [rec(3)])
    assert store.blocking_transaction(7.0).id == "b"  # type: ignore[union-attr]
    assert store.commit(200.0, "b") is False  # expired after the 100 ms timeout
    assert store.txns["b"].state == "expired"
    assert [e.record for e, _ in store.destroyed(200.0)] == [rec(3)]
    store.begin(201.0, "c", ("sink", 0))
    store.write(202.0, "c", [rec(4)])
    store.abort(203.0, "c")
    assert store.commit(204.0, "c") is False
    assert store.read_committed(300.0) == [rec(1), rec(2)]
    assert [v.ids for v in store.visibility()] == [("r1", "r2")]


def test_transient_failures_change_nothing(store: Store) -> None:
    store.begin(0.0, "a", ("sink", 0))
    store.write(1.0, "a", [rec(1)])
    store.transient_failures = 1
    assert store.commit(2.0, "a") is None
    assert store.read_committed(2.0) == []
    assert store.commit(3.0, "a") is True


def test_upserts_by_a_key_the_sink_chooses(store: Store) -> None:
    store.upsert(0.0, [rec(1), rec(2)], ["k1", "k2"])
    store.upsert(1.0, [rec(3)], ["k1"])
    store.append(2.0, [rec(4)])
    assert store.read_committed(3.0) == [rec(4), rec(3), rec(2)]
    assert [v.upsert for v in store.visibility()] == [True, True, False]


def test_metadata_per_owner(store: Store) -> None:
    store.set_metadata(0.0, "sink", "last", 3)
    store.set_metadata(1.0, "sink", "table", "out")
    store.set_metadata(1.0, "other", "last", 9)
    assert store.metadata("sink") == {"last": 3, "table": "out"}
    assert store.metadata("nobody") == {}


def test_fork_at_a_moment_is_independent(store: Store) -> None:
    store.begin(0.0, "a", ("sink", 0))
    store.write(1.0, "a", [rec(1)])
    store.set_metadata(1.0, "sink", "last", 1)
    moment = store.mark()
    store.commit(2.0, "a")
    store.set_metadata(2.0, "sink", "last", 2)
    fork = store.fork(moment, label="fork")
    try:
        assert fork.read_committed(3.0) == []
        assert fork.metadata("sink") == {"last": 1}
        assert fork.commit(3.0, "a") is True
        fork.append(3.0, [rec(9)])
        assert store.read_committed(4.0) == [rec(1)]
        assert fork.read_committed(4.0) == [rec(1), rec(9)]
    finally:
        fork.close()


def test_scenario_names_its_store_and_the_default_keeps_tokens() -> None:
    assert "store" not in Scenario().to_data()
    with pytest.raises(OnceflowError, match="store"):
        Scenario(store="nope")


def test_a_registered_store_is_used_by_the_run() -> None:
    made: list[MemoryStore] = []

    def factory(*, txn_timeout: float, label: str = "") -> MemoryStore:
        made.append(MemoryStore(txn_timeout, label=label))
        return made[-1]

    register_store("test-recording", factory=factory)
    try:
        result = run(Scenario(store="test-recording"))
        assert result.store is made[0]
        assert "store" in Scenario(store="test-recording").to_data()
        assert len(result.committed()) == Scenario().workload.records
    finally:
        del STORES["test-recording"]


def test_a_store_that_breaks_the_protocol_is_named() -> None:
    register_store("test-broken", factory=lambda **kw: object())
    try:
        with pytest.raises(StoreError, match="breaks the store protocol"):
            run(Scenario(store="test-broken"))
    finally:
        del STORES["test-broken"]


def test_register_store_validates() -> None:
    with pytest.raises(OnceflowError):
        register_store("Bad Name", factory=MemoryStore)
    with pytest.raises(OnceflowError):
        register_store("memory", factory=MemoryStore)
    with pytest.raises(OnceflowError):
        register_store("ok", factory=3)  # type: ignore[arg-type]


def test_a_sink_factory_may_take_the_store() -> None:
    from onceflow.model.sinks import AppendSink
    from onceflow.registry import SINKS, register_sink

    seen: list[object] = []

    def factory(store: Store) -> AppendSink:
        seen.append(store)
        return AppendSink()

    register_sink("test-store-arg", factory=factory, exactly_once=False)
    try:
        result = run(Scenario(sink="test-store-arg"))
        assert seen and all(s is result.store for s in seen)
    finally:
        del SINKS["test-store-arg"]


# -- memory and SQLite agree ----------------------------------------------------------------

@pytest.mark.parametrize("mutant", [None, "commit-only-exact-id", "lingering-transactions"])
def test_memory_and_sqlite_give_the_same_verdict_and_digest(mutant: str | None) -> None:
    from attrs import evolve

    from onceflow.properties import Violation, check
    from onceflow.strategies import scenario_from_seed

    def verdict(scenario: Scenario) -> tuple[object, ...]:
        result = run(scenario)
        try:
            check(result)
        except Violation as v:
            return (v.finding.property, v.finding.anomaly, result.digest,
                    [r.id for r in result.committed()])
        return ("clean", result.digest, [r.id for r in result.committed()])

    mutants = (mutant,) if mutant else ()
    for seed in range(12):
        scenario = scenario_from_seed(seed, mutants=mutants)
        assert verdict(scenario) == verdict(evolve(scenario, store="sqlite")), seed


def test_a_store_factory_gets_only_the_keywords_it_takes() -> None:
    register_store("test-bare", factory=lambda: MemoryStore(1.0))
    try:
        store = make_store("test-bare", txn_timeout=250.0)
        assert store.txn_timeout == 250.0
    finally:
        del STORES["test-bare"]


def test_a_store_factory_that_raises_is_a_store_error() -> None:
    def broken(*, txn_timeout: float) -> MemoryStore:
        raise RuntimeError("no connection\nto the server")

    register_store("test-raises", factory=broken)
    try:
        with pytest.raises(StoreError, match="no connection to the server"):
            run(Scenario(store="test-raises"))
    finally:
        del STORES["test-raises"]


def test_a_store_whose_visibility_breaks_the_protocol_is_named_not_judged() -> None:
    from onceflow.properties import check

    class Liar(MemoryStore):
        def visibility(self) -> list:  # type: ignore[override]
            return [("not", "an", "event")]

    register_store("test-liar", factory=lambda *, txn_timeout, label="": Liar(txn_timeout))
    try:
        with pytest.raises(StoreError, match="broke the store protocol"):
            check(run(Scenario(store="test-liar")))
    finally:
        del STORES["test-liar"]


@pytest.mark.parametrize("how", ["itself", "raises", "nothing"])
def test_a_store_whose_fork_breaks_the_protocol_is_named(how: str) -> None:
    from onceflow.model import restore

    class BadFork(MemoryStore):
        def fork(self, version: int, *, label: str = "") -> MemoryStore:  # type: ignore[override]
            if how == "itself":
                return self
            if how == "raises":
                raise KeyError(version)
            return None  # type: ignore[return-value]

    register_store("test-badfork", factory=lambda *, txn_timeout, label="": BadFork(txn_timeout))
    try:
        result = run(Scenario(store="test-badfork"))
        with pytest.raises(StoreError, match="broke the store protocol|breaks the store protocol"):
            restore(result, result.snapshots[0])
    finally:
        del STORES["test-badfork"]
