"""Plug your own operators and sinks into scenarios, by name.

A scenario is data, so user code enters it through a name registered here:
a vertex with `kind="my_op"` runs `factory(param)`, and the oracle computes
its expected output with `fold`, a plain sequential function (never the
simulation).  A sink registered with `register_sink` is chosen with
`Scenario(sink="my_sink")`.  Register in a module and load it with
`onceflow ... --plugin my_module` on the command line, or import it in your
tests.

`fold(param, records, state)` gets the records of one key in order (a fresh
`state` dict per key and vertex) and returns the output records in order.  A
keyed operator keeps the key's state as `state[key]`, equal to what its
`snapshot_state()` holds for that key, so that consistent cuts can be checked.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from attrs import frozen

from onceflow.errors import OnceflowError, RegistrationError

__all__ = ["OPERATORS", "SINKS", "SOURCES", "STORES", "OperatorSpec", "SinkSpec", "SourceSpec",
           "StoreSpec", "register_operator", "register_sink", "register_source",
           "register_store"]

_BUILTIN_OPERATORS = ("source", "map", "filter", "flat_map", "reduce", "window", "sink")
_BUILTIN_SINKS = ("append", "idempotent", "two_phase")
_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,40}")


@frozen
class OperatorSpec:
    name: str
    factory: Callable[[int], Any]
    fold: Callable[[int, list[Any], dict[Any, Any]], list[Any]]
    keyed: bool = False


@frozen
class SinkSpec:
    name: str
    factory: Callable[[], Any]
    exactly_once: bool
    upsert: bool = False


@frozen
class StoreSpec:
    name: str
    factory: Callable[..., Any]


OPERATORS: dict[str, OperatorSpec] = {}
SINKS: dict[str, SinkSpec] = {}
STORES: dict[str, StoreSpec] = {}


def _check_name(name: str, builtin: tuple[str, ...]) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise OnceflowError(f"bad name {name!r}: use lowercase letters, digits, _ and -")
    if name in builtin:
        raise OnceflowError(f"{name!r} is a built-in; choose another name")


def register_operator(name: str, *, factory: Callable[[int], Any],
                      fold: Callable[[int, list[Any], dict[Any, Any]], list[Any]],
                      keyed: bool = False) -> OperatorSpec:
    """Make `Vertex(uid, name, ...)` run `factory(param)`; `fold` is its oracle."""
    _check_name(name, _BUILTIN_OPERATORS)
    if not callable(factory) or not callable(fold):
        raise OnceflowError("factory and fold must be callables")
    spec = OperatorSpec(name, factory, fold, keyed)
    OPERATORS[name] = spec
    return spec


def register_sink(name: str, *, factory: Callable[[], Any], exactly_once: bool,
                  upsert: bool = False) -> SinkSpec:
    """Make `Scenario(sink=name)` use `factory()`.

    `exactly_once` says whether the sink promises exactly-once effects (as a
    two-phase or idempotent sink does); `upsert` that its output is keyed by
    record id (later writes replace earlier ones).
    """
    _check_name(name, _BUILTIN_SINKS)
    if not callable(factory):
        raise OnceflowError("factory must be a callable")
    spec = SinkSpec(name, factory, exactly_once, upsert)
    SINKS[name] = spec
    return spec


def register_store(name: str, *, factory: Callable[..., Any]) -> StoreSpec:
    """Make `Scenario(store=name)` write to `factory(txn_timeout=..., label=...)`.

    The factory returns a fresh, empty store (an `onceflow.stores.Store`) for one
    timeline; `label` names the timeline (for files kept for inspection).  It gets
    only the keywords it declares (a factory taking none is called bare, and the
    scenario's `txn_timeout` is set on the store).  Built-in stores are registered
    here too.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise OnceflowError(f"bad name {name!r}: use lowercase letters, digits, _ and -")
    if name in STORES and STORES[name].factory.__module__.startswith("onceflow.stores"):
        raise OnceflowError(f"{name!r} is a built-in store; choose another name")
    if not callable(factory):
        raise OnceflowError("factory must be a callable")
    spec = StoreSpec(name, factory)
    STORES[name] = spec
    return spec


def _memory_store(*, txn_timeout: float, label: str = "") -> Any:
    from onceflow.stores.memory import MemoryStore  # noqa: PLC0415

    return MemoryStore(txn_timeout, label=label)


_memory_store.__module__ = "onceflow.stores.memory"
STORES["memory"] = StoreSpec("memory", _memory_store)


def _sqlite_store(*, txn_timeout: float, label: str = "") -> Any:
    from onceflow.stores.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(txn_timeout, label=label)


_sqlite_store.__module__ = "onceflow.stores.sqlite"
STORES["sqlite"] = StoreSpec("sqlite", _sqlite_store)

# -- sources --------------------------------------------------------------------------------

@frozen
class SourceSpec:
    """A registered source: how to build its readers, and its split enumerator.

    `factory()` returns a fresh `onceflow.model.sources.SourceReader` for each
    source subtask (Flink's `Source.createReader`); `enumerator(ctx, restored)`
    returns the `SplitEnumerator` that runs on the coordinator side
    (`createEnumerator` when `restored` is None, else `restoreEnumerator`), or
    None for the default one (splits handed out one at a time to readers that
    ask, as Flink's FileSource does).
    """

    name: str
    factory: Callable[[], Any]
    enumerator: Callable[[Any, Any], Any] | None = None
    module: str = ""
    builtin: bool = False


SOURCES: dict[str, SourceSpec] = {}


def _registering_module() -> str:
    """The module whose code called register_source (named in reproduce commands)."""
    import sys  # noqa: PLC0415

    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def register_source(name: str, *, factory: Callable[[], Any],
                    enumerator: Callable[[Any, Any], Any] | None = None,
                    _builtin: bool = False) -> SourceSpec:
    """Make `Scenario(source=name)` read the log with `factory()` readers.

    `enumerator(ctx, restored)` builds the source's split enumerator (None: the
    default one).  The job builds every source through here, the built-in
    `log` source included.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistrationError(f"bad source name {name!r}: use 1-41 lowercase letters, digits, "
                                "_ and -, starting with a letter")
    taken = SOURCES.get(name)
    if not _builtin and taken is not None and taken.builtin:
        raise RegistrationError(f"{name!r} is a built-in source; register yours under another "
                                "name")
    if not callable(factory):
        raise RegistrationError(f"source {name!r}: factory must be a callable returning a "
                                f"SourceReader (a class or a function), got "
                                f"{type(factory).__name__}")
    if enumerator is not None and not callable(enumerator):
        raise RegistrationError(f"source {name!r}: enumerator must be a callable "
                                "enumerator(ctx, restored) returning a SplitEnumerator, or None "
                                f"for the default one; got {type(enumerator).__name__}")
    for what, fn in (("factory", factory), ("enumerator", enumerator)):
        if fn is not None and not _accepts(fn, 2 if what == "enumerator" else 0):
            want = "enumerator(ctx, restored)" if what == "enumerator" else "factory()"
            raise RegistrationError(f"source {name!r}: {what} must be callable as {want}; "
                                    f"{getattr(fn, '__name__', fn)!r} is not")
    spec = SourceSpec(name, factory, enumerator, "" if _builtin else _registering_module(),
                      _builtin)
    SOURCES[name] = spec
    return spec


def _accepts(fn: Callable[..., Any], count: int) -> bool:
    """Can `fn` be called with `count` positional arguments (True when unknown)?"""
    import inspect  # noqa: PLC0415

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): cannot tell
        return True
    return True


def _log_reader() -> Any:
    from onceflow.model.sources import LogReader  # noqa: PLC0415 (layers: registry is below)

    return LogReader()


register_source("log", factory=_log_reader, _builtin=True)
