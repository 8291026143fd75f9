"""Transactional ids with producer epochs and fencing (Kafka's initTransactions) in the
store protocol: the memory and SQLite stores agree call by call, forks replay them, and
the state is plain JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onceflow.errors import TransactionLostError
from onceflow.model.records import Record
from onceflow.stores import (MemoryStore, ProducerFencedError, ProducerStateError, SQLiteStore,
                             Store)

STORES = [MemoryStore, SQLiteStore]
OWNER = ("sink", 0)


@pytest.mark.parametrize("kind", STORES)
def test_init_fences_the_older_producer_and_aborts_its_open_transaction(kind: Any) -> None:
    store = kind(1000.0)
    assert store.init_producer(0.0, "p-0-1", OWNER) == 0  # first use: epoch 0
    store.begin(1.0, "a", OWNER, ("p-0-1", 0))
    store.write(2.0, "a", [Record("r1", 0, 1, 0, 0)])
    store.precommit(3.0, "a")  # flushed, still ongoing for Kafka's coordinator
    assert store.init_producer(4.0, "p-0-1", OWNER) == 1
    assert store.txns["a"].state == "aborted" and store.txns["a"].producer == ("p-0-1", 0)
    with pytest.raises(ProducerFencedError, match="bumped its epoch to 1"):
        store.commit(5.0, "a")
    with pytest.raises(TransactionLostError):  # a fenced producer's send fails
        store.write(5.0, "a", [Record("r2", 0, 1, 0, 1)])
    with pytest.raises(ProducerFencedError):
        store.begin(6.0, "b", OWNER, ("p-0-1", 0))
    assert store.read_committed(7.0) == []
    assert store.producers() == {"p-0-1": 1}


@pytest.mark.parametrize("kind", STORES)
def test_a_committed_transaction_stays_committed_but_its_retry_is_fenced(kind: Any) -> None:
    """FLINK-8086's shape: a transactional id committed, then reused; committing the old
    transaction again (a restore of an older checkpoint) is fenced, its data stays."""
    store = kind(1000.0)
    epoch = store.init_producer(0.0, "p", OWNER)
    store.begin(1.0, "a", OWNER, ("p", epoch))
    store.write(1.0, "a", [Record("r1", 0, 1, 0, 0)])
    store.precommit(2.0, "a")
    assert store.commit(3.0, "a") is True and store.commit(3.5, "a") is True  # idempotent
    store.init_producer(4.0, "p", OWNER)
    with pytest.raises(ProducerFencedError):
        store.commit(5.0, "a")
    assert [r.id for r in store.read_committed(6.0)] == ["r1"]


@pytest.mark.parametrize("kind", STORES)
def test_producer_misuse_is_a_specific_error_that_states_the_fix(kind: Any) -> None:
    store = kind(1000.0)
    with pytest.raises(ProducerStateError, match="call store.init_producer"):
        store.begin(0.0, "a", OWNER, ("never", 0))
    store.init_producer(0.0, "p", OWNER)
    store.begin(1.0, "a", OWNER, ("p", 0))
    with pytest.raises(ProducerStateError, match="one transaction at a time"):
        store.begin(2.0, "b", OWNER, ("p", 0))
    store.abort(3.0, "a")
    store.begin(4.0, "b", OWNER, ("p", 0))  # after an abort the producer may go on


_OPS = st.lists(st.tuples(st.sampled_from(["init", "begin", "write", "precommit", "commit",
                                          "abort"]),
                          st.integers(0, 2), st.integers(0, 3)), max_size=30)


def _apply(store: Store, ops: list[tuple[str, int, int]]) -> list[str]:
    """Run `ops` on `store`; what each call returned or raised, as text."""
    out: list[str] = []
    epochs: dict[str, int] = {}
    begun: list[str] = []
    for step, (op, pid, which) in enumerate(ops):
        now = float(step * 100)
        tid = f"p{pid}"
        if op not in ("init", "begin") and not begun:
            continue
        txn = begun[which % len(begun)] if begun else ""
        try:
            if op == "init":
                epochs[tid] = store.init_producer(now, tid, OWNER)
                got: Any = epochs[tid]
            elif op == "begin":
                name = f"t{step}"
                store.begin(now, name, OWNER, (tid, epochs.get(tid, 0) - which % 2))
                begun.append(name)
                got = name
            elif op == "write":
                got = store.write(now, txn, [Record(f"r{step}", pid, 1, 0, step)])
            elif op == "precommit":
                got = store.precommit(now, txn)
            elif op == "commit":
                got = store.commit(now, txn)
            else:
                got = store.abort(now, txn)
        except (TransactionLostError, ProducerStateError) as exc:
            got = type(exc).__name__
        out.append(f"{op} {got}")
    end = float(len(ops) * 100)
    out.append(json.dumps(store.producers()))
    out.append(json.dumps(sorted((t.id, t.state, list(t.producer or ()))
                                 for t in store.txns.values())))
    out.append(json.dumps([r.id for r in store.read_committed(end)]))
    return out


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_memory_and_sqlite_agree_on_drawn_producer_calls_and_forks_replay_them(
        ops: list[tuple[str, int, int]]) -> None:
    memory, sqlite = MemoryStore(450.0), SQLiteStore(450.0)
    try:
        got = _apply(memory, ops)
        assert _apply(sqlite, ops) == got
        for store in (memory, sqlite):
            fork = store.fork(store.version())
            assert fork.producers() == store.producers()
            assert ({t.id: (t.state, t.producer) for t in fork.txns.values()}
                    == {t.id: (t.state, t.producer) for t in store.txns.values()})
            fork.close()
    finally:
        sqlite.close()
