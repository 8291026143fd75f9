"""External stores: the systems sinks write to, which outlive every crash of the job.

`Store` is the protocol; `MemoryStore` the default; `SQLiteStore` a real
SQLite database per timeline.  Plug in another system with
`onceflow.registry.register_store(name, factory=...)` and choose it with
`Scenario(store=name)`.  Stores sit below the model: they import nothing of it.
"""

from onceflow.stores.memory import MemoryStore
from onceflow.errors import ProducerStateError
from onceflow.stores.protocol import (ABORTED, COMMITTED, EXPIRED, OPEN, PRECOMMITTED, Entry,
                                      ProducerFencedError, Store, StoreError, Transaction, TransactionLostError,
                                      Visible)
from onceflow.stores.sqlite import SQLiteStore, keep_store, kept_directory

__all__ = ["ABORTED", "COMMITTED", "EXPIRED", "OPEN", "PRECOMMITTED", "Entry", "MemoryStore",
           "ProducerFencedError", "ProducerStateError",
           "SQLiteStore", "Store", "StoreError", "Transaction", "TransactionLostError", "Visible", "fork_of",
           "keep_store", "kept_directory", "make_store"]


def make_store(name: str, *, txn_timeout: float, label: str = "") -> Store:
    """A fresh store of registered kind `name` (a timeline's external system)."""
    from onceflow.registry import STORES  # noqa: PLC0415

    spec = STORES.get(name)
    if spec is None:
        raise StoreError(f"no store named {name!r}; registered: {', '.join(sorted(STORES))} "
                         "(register yours with onceflow.registry.register_store and load it "
                         "with --plugin)")
    factory = spec.factory
    wanted = _keywords(factory)
    kwargs = {k: v for k, v in (("txn_timeout", txn_timeout), ("label", label))
              if wanted is None or k in wanted}
    try:
        store = factory(**kwargs)
    except StoreError:
        raise
    except Exception as exc:  # the user's factory failed: say whose, in one line
        raise StoreError(f"the factory of store {name!r} raised {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}; fix the factory "
                         "(it is called as factory(txn_timeout=..., label=...))") from None
    _check(store, name)
    if "txn_timeout" not in kwargs:
        try:
            store.txn_timeout = txn_timeout  # the scenario's timeout applies to every store
        except AttributeError:
            pass
    return store


def _keywords(factory: object) -> set[str] | None:
    """The keyword arguments `factory` accepts (None: any)."""
    import inspect  # noqa: PLC0415

    try:
        params = inspect.signature(factory).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


_REQUIRED = ("ops", "txn_timeout", "begin", "write", "precommit", "commit", "abort", "append",
             "upsert", "set_metadata", "metadata", "version", "mark", "entries",
             "read_committed", "read_uncommitted", "destroyed", "unfinished",
             "open_transactions", "blocking_transaction", "visibility", "fork", "close")


def fork_of(store: Store, version: int, *, label: str = "") -> Store:
    """`store.fork(version)`, checked: a fork that fails, returns the store itself or
    something that is not a store is a StoreError naming the broken protocol."""
    kind = type(store).__name__
    try:
        other = store.fork(version, label=label)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store ({kind}) broke the store protocol: fork({version}) raised "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if other is store:
        raise StoreError(f"the store ({kind}) broke the store protocol: fork() returned the "
                         "store itself; it must return a new, independent store")
    _check(other, f"{kind} (a fork)")
    return other


def _check(store: object, name: str) -> None:
    missing = [a for a in _REQUIRED if not hasattr(store, a)]
    if missing:
        raise StoreError(f"store {name!r} breaks the store protocol: its factory returned a "
                         f"{type(store).__name__} without {', '.join(missing)}; implement "
                         "onceflow.stores.Store")
