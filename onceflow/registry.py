"""Plug your own operators and sinks into scenarios, by name.

A scenario is data, so code enters it through a name registered here: a
vertex with `kind="my_op"` runs `factory(param)`, and the oracle computes its
expected output with `fold`, a plain sequential function (never the
simulation).  A sink registered with `register_sink` is chosen with
`Scenario(sink="my_sink")` and judged by what it declares itself to be, never
by its name.  The built-in operators and sinks are registered here through
the very same calls.  Register in a module and load it with `onceflow
--plugin my_module ...` (or an entry point in the group `onceflow.plugins`,
or `[tool.onceflow] plugins = [...]` in pyproject.toml), or import it in
your tests.

`fold(param, records, state)` gets the records of one key in order (a fresh
`state` dict per key and vertex) and returns the output records in order.  A
keyed operator keeps the key's state as `state[key]`, equal to what its
`snapshot_state()` holds for that key, so that consistent cuts can be checked.
`flush(param, key, state)` (optional) returns what the operator emits for
`key` at the end of input (in `finish()`), updating `state[key]`.

An operator also declares the traits the properties judge it by (never its name):
`ids` (what it does to record ids: "keep", "drop", "multiply", "replace"),
`aggregate` (what of a keyed operator's output is independent of its input
order: "max" or "sum"), `order_dependent_state` (its keyed state depends on the
order of a key's records and on where the end of input is) and `state_view`
(what of a key's snapshot value the fold's `state[key]` holds).  The built-ins
declare theirs through the same call: map keeps ids, filter drops, flat_map
multiplies; reduce is keyed with aggregate "max"; window is keyed, replaces ids,
aggregate "sum", order-dependent state.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

from attrs import frozen

from onceflow.errors import OnceflowError, RegistrationError

__all__ = ["OPERATORS", "OPERATOR_AGGREGATES", "OPERATOR_IDS", "SINKS", "SINK_KINDS", "SOURCES",
           "STORES", "OperatorSpec", "RegistrationError", "SinkSpec", "SourceSpec", "StoreSpec",
           "default_exactly_once", "operator_spec", "register_operator", "register_sink",
           "register_source", "register_store", "sink_spec"]

#: What a sink can declare itself to be.
#: - "append": writes at once; a replay after a failover writes again (duplicates).
#: - "idempotent": upserts by record id; a replay overwrites what it wrote before.
#: - "two_phase": writes into a transaction per checkpoint, committed when the
#:   checkpoint completes (pre-commit on the barrier, commit on notify-complete).
SINK_KINDS = ("append", "idempotent", "two_phase")

#: Vertex kinds that are the ends of a pipeline, not operators.
_ENDS = ("source", "sink")
_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,40}")
_STATE_KINDS = (None, "keyed", "list")

#: What an operator can declare it does to record ids (`ids=`).
#: - "keep": each input record leaves as one record under its own id (map, reduce).
#: - "drop": a subset of the input leaves, under its own ids, chosen by value (filter).
#: - "multiply": each input record leaves as several records under derived ids (flat_map).
#: - "replace": it emits records under new ids, not one per input record (window).
#: Not declaring (None) keeps today's treatment of a user operator: the canonical form and
#: the generator assume it may drop or multiply; the per-record-id accounting of the checks
#: assumes it keeps ids.
OPERATOR_IDS = ("keep", "drop", "multiply", "replace")
#: What a keyed operator can declare is independent of its input order (`aggregate=`).
#: - "max": the largest output value per key (a running sum of non-negative values).
#: - "sum": the sum of its output values per key once every group closed (count windows).
#: Not declaring (None): nothing; the generator never feeds it over a shuffling edge.
OPERATOR_AGGREGATES = ("max", "sum")


@frozen
class OperatorSpec:
    """A registered operator: how to build it, and its oracle."""

    name: str
    factory: Callable[[int], Any]
    fold: Callable[[int, list[Any], dict[Any, Any]], list[Any]]
    keyed: bool = False
    #: what the operator emits for one key at the end of input (None: nothing)
    flush: Callable[[int, Any, dict[Any, Any]], list[Any]] | None = None
    #: the range `param` is drawn from when a generated topology places it
    params: tuple[int, int] = (0, 0)
    #: the module whose import registered it (named in reproduce commands)
    module: str = ""
    builtin: bool = False
    #: what it does to record ids: one of OPERATOR_IDS, or None (not declared)
    ids: str | None = None
    #: keyed only: what of its output per key is order-independent (OPERATOR_AGGREGATES)
    aggregate: str | None = None
    #: keyed only: its state depends on the order of a key's records and on whether the
    #: end of input reached it; consistent cuts compare it only where order is fixed
    order_dependent_state: bool = False
    #: keyed only: maps a key's value in snapshot_state() to the fold's state[key], or to
    #: None where the key holds nothing yet (None: compared as it is)
    state_view: Callable[[Any], Any] | None = None
    #: the values a scenario may give its `param` (Vertex validation), and what the
    #: param means (named in the message when a value is out of range)
    param_bounds: tuple[int, int] = (0, 1_000_000)
    param_name: str = "param"
    #: the most records it emits for `records` records in, given its param and the
    #: number of keys: `output_bound(records, param, keys)` (None: one out per record
    #: in); the cost estimate and the record-visit bound follow it
    output_bound: Callable[[int, int, int], int] | None = None

    def most_output(self, records: int, param: int, keys: int) -> int:
        """The most records it emits for `records` in (see `output_bound`)."""
        if self.output_bound is None:
            return records
        try:
            out = self.output_bound(records, param, keys)
        except Exception as exc:  # user code: named as the operator's error
            raise RegistrationError(f"operator {self.name!r}: output_bound({records}, {param}, "
                                    f"{keys}) raised {type(exc).__name__}: {exc}; make it "
                                    "return the most records out as an int") from exc
        if isinstance(out, bool) or not isinstance(out, int) or out < 0:
            raise RegistrationError(f"operator {self.name!r}: output_bound({records}, {param}, "
                                    f"{keys}) returned {str(out)[:40]!r}; it must return a "
                                    "non-negative int (the most records out)")
        return out

    @property
    def changes_ids(self) -> bool:
        """Can it drop or multiply records (or is that not declared)?"""
        return self.ids != "keep"

    @property
    def drops_by_value(self) -> bool:
        """Does which input ids leave it depend on the values it sees?"""
        return self.ids == "drop"

    @property
    def derives_ids(self) -> bool:
        """Do its output ids stop identifying input records one to one?"""
        return self.ids in ("multiply", "replace")


@frozen
class SinkSpec:
    """A registered sink and what it declares itself to be."""

    name: str
    factory: Callable[[], Any]
    kind: str
    exactly_once: bool
    module: str = ""
    builtin: bool = False
    #: it has a Sink V2 global committer (parallelism 1) behind its committers
    global_committer: bool = False

    @property
    def upsert(self) -> bool:
        """Its output is keyed by record id: later writes replace earlier ones."""
        return self.kind == "idempotent"

    @property
    def transactional(self) -> bool:
        """It writes into transactions committed after a checkpoint completes: it passes
        the pre-commit and commit phases, and readers see only committed output."""
        return self.kind == "two_phase"


@frozen
class StoreSpec:
    name: str
    factory: Callable[..., Any]
    #: Whether the store keeps files that `--keep-store DIR` can keep (its factory reads
    #: the directory from `onceflow.stores.kept_directory()`).
    keeps_files: bool = False
    #: the module whose import registered it (named in reproduce commands)
    module: str = ""


OPERATORS: dict[str, OperatorSpec] = {}
SINKS: dict[str, SinkSpec] = {}
STORES: dict[str, StoreSpec] = {}


def _caller_module() -> str:
    """The module that called register_*: importing it registers the component again."""
    frame = inspect.currentframe()
    try:
        f = frame.f_back.f_back if frame and frame.f_back else None  # type: ignore[union-attr]
        while f is not None and f.f_globals.get("__name__") == __name__:
            f = f.f_back
        return str(f.f_globals.get("__name__", "")) if f is not None else ""
    finally:
        del frame


def _check_name(name: Any, taken: dict[str, Any], what: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistrationError(f"bad {what} name {name!r:.60}: use 1-41 lowercase letters, digits, "
                                "_ and -, starting with a letter")
    spec = taken.get(name)
    if name in _ENDS or (spec is not None and spec.builtin):
        raise RegistrationError(f"{name!r} is a built-in {what}; register yours under another name")


def _declared_state_kind(factory: Any) -> Any:
    """The `state_kind` a factory's class declares, when it can be told without calling it."""
    if inspect.isclass(factory):
        return getattr(factory, "state_kind", ...)
    return ...


def register_operator(name: str, *, factory: Callable[[int], Any],
                      fold: Callable[[int, list[Any], dict[Any, Any]], list[Any]],
                      keyed: bool = False,
                      flush: Callable[[int, Any, dict[Any, Any]], list[Any]] | None = None,
                      params: tuple[int, int] = (0, 0), ids: str | None = None,
                      aggregate: str | None = None, order_dependent_state: bool = False,
                      state_view: Callable[[Any], Any] | None = None,
                      param_bounds: tuple[int, int] = (0, 1_000_000), param_name: str = "param",
                      output_bound: Callable[[int, int, int], int] | None = None,
                      _builtin: bool = False) -> OperatorSpec:
    """Make `Vertex(uid, name, ...)` run `factory(param)`; `fold` (and `flush`) is its oracle.

    `keyed=True` declares a keyed operator (its state is a dict key -> value, its
    input arrives over a hash edge); `params=(lo, hi)` is the range generated
    topologies draw its `param` from.  `ids` declares what it does to record ids
    (see OPERATOR_IDS).  A keyed operator may declare `aggregate` (see
    OPERATOR_AGGREGATES), `order_dependent_state=True` (consistent cuts compare its
    state only where the topology fixes order and no end of input is in flight) and
    `state_view` (maps a key's snapshot value to the fold's state[key], None: idle).
    `param_bounds=(lo, hi)` is what a scenario may set its `param` to (`param_name`
    says what it means, for messages); `output_bound(records, param, keys)` is the most
    records it emits for `records` in (None: one per record), which the cost budget
    counts: an operator that emits more than one record per input must declare it.
    """
    if not _builtin:
        _check_name(name, OPERATORS, "operator")
    if not callable(factory):
        raise RegistrationError(f"operator {name!r}: factory must be a callable taking the "
                                f"vertex's param, got {type(factory).__name__}")
    if not callable(fold):
        raise RegistrationError(f"operator {name!r}: fold must be a callable "
                                "fold(param, records, state) -> output records (the oracle)")
    if flush is not None and not callable(flush):
        raise RegistrationError(f"operator {name!r}: flush must be a callable "
                                "flush(param, key, state) -> records, or None")
    if not isinstance(keyed, bool):
        raise RegistrationError(f"operator {name!r}: keyed must be True or False")
    if (not isinstance(params, tuple) or len(params) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in params)
            or not 0 <= params[0] <= params[1] <= 1_000_000):
        raise RegistrationError(f"operator {name!r}: params must be a (lo, hi) pair of integers "
                                f"with 0 <= lo <= hi <= 1000000, got {params!r:.60}")
    if ids is not None and ids not in OPERATOR_IDS:
        raise RegistrationError(f"operator {name!r}: unknown ids={ids!r:.60}; declare one of "
                                f"{', '.join(OPERATOR_IDS)} (what it does to record ids)")
    if aggregate is not None and aggregate not in OPERATOR_AGGREGATES:
        raise RegistrationError(f"operator {name!r}: unknown aggregate={aggregate!r:.60}; declare "
                                f"one of {', '.join(OPERATOR_AGGREGATES)}, or None")
    if not isinstance(order_dependent_state, bool):
        raise RegistrationError(f"operator {name!r}: order_dependent_state must be True or False")
    if state_view is not None and not callable(state_view):
        raise RegistrationError(f"operator {name!r}: state_view must be a callable "
                                "state_view(snapshot value) -> fold state, or None")
    if not keyed:
        for trait, value in (("aggregate", aggregate), ("state_view", state_view)):
            if value is not None:
                raise RegistrationError(f"operator {name!r} declares {trait} but is not keyed: "
                                        f"register it with keyed=True, or drop {trait}=")
        if order_dependent_state:
            raise RegistrationError(f"operator {name!r} declares order_dependent_state but is "
                                    "not keyed: register it with keyed=True, or drop it")
    if (not isinstance(param_bounds, tuple) or len(param_bounds) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in param_bounds)
            or not 0 <= param_bounds[0] <= param_bounds[1] <= 1_000_000
            or not param_bounds[0] <= params[0] <= params[1] <= param_bounds[1]):
        raise RegistrationError(f"operator {name!r}: param_bounds must be a (lo, hi) pair of "
                                f"integers with 0 <= lo <= hi <= 1000000 that holds params "
                                f"{params!r:.60}, got {param_bounds!r:.60}")
    if not isinstance(param_name, str) or not param_name or len(param_name) > 40:
        raise RegistrationError(f"operator {name!r}: param_name must be a short description "
                                "of what param means (at most 40 characters)")
    if output_bound is not None and not callable(output_bound):
        raise RegistrationError(f"operator {name!r}: output_bound must be a callable "
                                "output_bound(records, param, keys) -> most records out, or None")
    declared = _declared_state_kind(factory)
    if declared is not ... and declared not in _STATE_KINDS:
        raise RegistrationError(f"operator {name!r}: {factory.__name__}.state_kind is "
                                f"{declared!r:.60}; declare None, 'keyed' or 'list'")
    if (inspect.isclass(factory) and getattr(factory, "union_state", False) is True
            and declared != "list"):
        raise RegistrationError(f"operator {name!r}: {factory.__name__}.union_state is True "
                                f"but its state_kind is {declared!r:.60}; union list state is list "
                                "state: declare state_kind = 'list', or drop union_state")
    if declared == "keyed" and not keyed:
        raise RegistrationError(f"operator {name!r} is registered with keyed=False but "
                                f"{factory.__name__}.state_kind is 'keyed': keyed state lives on "
                                "a keyed stream; register it with keyed=True (a hash edge feeds "
                                "it), or keep operator state as state_kind = 'list'")
    spec = OperatorSpec(name, factory, fold, keyed, flush, params,
                        "" if _builtin else _caller_module(), _builtin, ids, aggregate,
                        order_dependent_state, state_view, param_bounds, param_name,
                        output_bound)
    OPERATORS[name] = spec
    return spec


def default_exactly_once(kind: str) -> bool:
    """Can a sink of this declared kind give exactly-once effects?  An append sink
    writes again what a replay after a failover sends again; the others cannot."""
    return kind in ("idempotent", "two_phase")


def register_sink(name: str, *, factory: Callable[[], Any], kind: str | None = None,
                  exactly_once: bool | None = None, upsert: bool | None = None,
                  global_committer: bool | None = None, _builtin: bool = False) -> SinkSpec:
    """Make `Scenario(sink=name)` use `factory()`, judged as what `kind` declares.

    `kind` is "append", "idempotent" (upserts by record id) or "two_phase"
    (transactions committed when a checkpoint completes); `exactly_once` says
    whether the sink promises exactly-once effects (default: True for
    idempotent and two-phase sinks, False for append sinks).  Without `kind`,
    `upsert=True` means idempotent, `exactly_once=True` two-phase.
    `global_committer=True` declares a Sink V2 global committer behind the committers
    (a two-phase sink whose `global_committer` attribute is set, e.g.
    `SinkV2(writer, committer, global_committer=...)`); it is read from the factory's
    class when not given.
    """
    if not _builtin:
        _check_name(name, SINKS, "sink")
    if not callable(factory):
        raise RegistrationError(f"sink {name!r}: factory must be a callable returning the sink, "
                                f"got {type(factory).__name__}")
    for flag, value in (("exactly_once", exactly_once), ("upsert", upsert),
                        ("global_committer", global_committer)):
        if value is not None and not isinstance(value, bool):
            raise RegistrationError(f"sink {name!r}: {flag} must be True or False, got {value!r:.60}")
    if kind is None:
        kind = "idempotent" if upsert else ("two_phase" if exactly_once else "append")
    elif kind not in SINK_KINDS:
        raise RegistrationError(f"sink {name!r}: unknown kind {kind!r:.60}; declare one of "
                                f"{', '.join(SINK_KINDS)}")
    if upsert is not None and upsert != (kind == "idempotent"):
        raise RegistrationError(f"sink {name!r} declares kind={kind!r:.60} and upsert={upsert}: "
                                "only an idempotent sink upserts; drop upsert= or declare "
                                "kind='idempotent'")
    if exactly_once is None:
        exactly_once = default_exactly_once(kind)
    if exactly_once and not default_exactly_once(kind):
        raise RegistrationError(f"sink {name!r} declares kind='append' and exactly_once=True: a "
                                "replay after a failover appends again; declare "
                                "kind='idempotent' or kind='two_phase', or exactly_once=False")
    declared = _declared_state_kind(factory)
    if declared is not ... and declared not in _STATE_KINDS:
        raise RegistrationError(f"sink {name!r}: {factory.__name__}.state_kind is {declared!r:.60}; "
                                "declare None, 'keyed' or 'list'")
    if declared is not ... and kind == "two_phase" and declared != "list":
        raise RegistrationError(f"sink {name!r} declares kind='two_phase' but "
                                f"{factory.__name__}.state_kind is {declared!r:.60}: a two-phase "
                                "sink keeps its pending transactions as list state; set "
                                "state_kind = 'list' (or subclass TwoPhaseCommitSink)")
    if global_committer is None:
        global_committer = getattr(factory, "global_committer", None) is not None \
            if isinstance(factory, type) else False
    if global_committer and kind != "two_phase":
        raise RegistrationError(f"sink {name!r} declares global_committer=True and "
                                f"kind={kind!r:.60}: only a two-phase sink has committers; declare "
                                "kind='two_phase' or drop global_committer=")
    spec = SinkSpec(name, factory, kind, exactly_once, "" if _builtin else _caller_module(),
                    _builtin, global_committer)
    SINKS[name] = spec
    return spec


def register_store(name: str, *, factory: Callable[..., Any],
                   keeps_files: bool | None = None) -> StoreSpec:
    """Make `Scenario(store=name)` write to `factory(txn_timeout=..., label=...)`.

    The factory returns a fresh, empty store (an `onceflow.stores.Store`) for one
    timeline; `label` names the timeline (for files kept for inspection).  It gets
    only the keywords it declares (a factory taking none is called bare, and the
    scenario's `txn_timeout` is set on the store).  Built-in stores are registered
    here too.  `keeps_files` declares that the store writes files `--keep-store DIR`
    keeps (its factory finds DIR in `onceflow.stores.kept_directory()`); by default
    the factory's own `keeps_files` attribute (a store class may declare it), else False.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistrationError(f"bad store name {str(name)[:60]!r}: use 1-41 lowercase "
                                "letters, digits, _ and -, starting with a letter")
    if name in STORES and STORES[name].factory.__module__.startswith("onceflow.stores"):
        raise RegistrationError(f"{name!r} is a built-in store; register yours under another "
                                "name")
    if not callable(factory):
        raise RegistrationError(f"store {name!r}: factory must be a callable returning a fresh "
                                f"store, got {type(factory).__name__}")
    if keeps_files is None:
        keeps_files = getattr(factory, "keeps_files", False)
    if not isinstance(keeps_files, bool):
        raise RegistrationError(f"store {name!r}: keeps_files must be True or False, got "
                                f"{str(keeps_files)[:40]!r}")
    spec = StoreSpec(name, factory, keeps_files, _caller_module())
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
STORES["sqlite"] = StoreSpec("sqlite", _sqlite_store, keeps_files=True)


_PLUGIN_HINT = ("add --plugin MODULE, the module that registers it (in tests: import it)")


def sink_spec(name: str) -> SinkSpec:
    """The registered sink `name`; RegistrationError naming the fix if there is none."""
    spec = SINKS.get(name)
    if spec is None:
        raise RegistrationError(unknown_message("sink", name, SINKS))
    return spec


def operator_spec(name: str) -> OperatorSpec:
    """The registered operator `name`; RegistrationError naming the fix if there is none."""
    spec = OPERATORS.get(name)
    if spec is None:
        raise RegistrationError(unknown_message("operator", name, OPERATORS))
    return spec


def unknown_message(what: str, name: Any, known: dict[str, Any]) -> str:
    shown = repr(name) if isinstance(name, str) and len(name) <= 60 else repr(str(name)[:60])
    return (f"unknown {what} {shown}: not registered here; {_PLUGIN_HINT}; registered: "
            f"{', '.join(sorted(known)[:12])}")


# -- the built-ins, registered through the same calls ---------------------------------------

def _model(name: str) -> Any:
    import importlib  # noqa: PLC0415 (the model imports the values that import this module)

    return importlib.import_module(f"onceflow.model.{name}")


def _map(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    return [r._replace(value=r.value + param) for r in records]


def _tally(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    return list(records)


def _filter(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    return [r for r in records if r.value % param == 0]


def _flat_map(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    return [r._replace(id=f"{r.id}.{i}", value=r.value + i) for r in records for i in range(param)]


def _reduce(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    out = []
    for r in records:
        state[r.key] = state.get(r.key, 0) + r.value
        out.append(r._replace(value=state[r.key]))
    return out


def _window(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    out = []
    for r in records:
        count, total, fired = state.get(r.key, (0, 0, 0))
        count, total = count + 1, total + r.value
        if count == param:
            out.append(r._replace(id=f"w{r.key}.{fired}", value=total))
            count, total, fired = 0, 0, fired + 1
        state[r.key] = (count, total, fired)
        if count:
            state[(r.key, "last")] = r
    return out


def _window_flush(param: int, key: Any, state: dict[Any, Any]) -> list[Any]:
    count, total, fired = state.get(key, (0, 0, 0))
    if not count:
        return []
    last = state[(key, "last")]
    state[key] = (0, 0, fired + 1)
    return [last._replace(id=f"w{key}.{fired}", value=total)]


def _window_view(value: Any) -> Any:
    """A window key's (count, total, fired) in its snapshot value; None while idle."""
    view = tuple(value[:3])
    return None if view == (0, 0, 0) else view


def _fan_out(records: int, param: int, keys: int) -> int:
    """A flat_map emits `param` records per record."""
    return records * max(param, 1)


def _window_output(records: int, param: int, keys: int) -> int:
    """A count window of `param` records emits one per `param` records of a key, and at
    most one per key at the end of input (never more than it read)."""
    return min(records, records // max(param, 1) + keys)


def _register_builtins() -> None:
    ops = lambda: _model("operators")  # noqa: E731
    sinks = lambda: _model("sinks")  # noqa: E731
    register_operator("map", factory=lambda p: ops().MapOperator(p), fold=_map,
                      params=(0, 3), ids="keep", _builtin=True)
    register_operator("filter", factory=lambda p: ops().FilterOperator(p), fold=_filter,
                      params=(1, 3), ids="drop", param_bounds=(1, 1_000_000),
                      param_name="modulus", _builtin=True)
    register_operator("flat_map", factory=lambda p: ops().FlatMapOperator(p), fold=_flat_map,
                      params=(1, 3), ids="multiply", param_bounds=(1, 8), param_name="fan-out",
                      output_bound=_fan_out, _builtin=True)
    # union list state (FLINK-21080); drawn by the generator behind the source (strategies)
    register_operator("tally", factory=lambda p: ops().TallyOperator(), fold=_tally,
                      ids="keep", _builtin=True)
    register_operator("reduce", factory=lambda p: ops().ReduceOperator(), fold=_reduce,
                      keyed=True, ids="keep", aggregate="max", _builtin=True)
    register_operator("window", factory=lambda p: ops().WindowOperator(p), fold=_window,
                      flush=_window_flush, keyed=True, params=(1, 4), ids="replace",
                      aggregate="sum", order_dependent_state=True, state_view=_window_view,
                      param_bounds=(1, 1_000_000), param_name="size in records",
                      output_bound=_window_output, _builtin=True)
    register_sink("append", factory=lambda: sinks().AppendSink(), kind="append", _builtin=True)
    register_sink("idempotent", factory=lambda: sinks().IdempotentSink(), kind="idempotent",
                  _builtin=True)
    register_sink("two_phase", factory=lambda: sinks().TwoPhaseCommitSink(), kind="two_phase",
                  _builtin=True)
    register_sink("two_phase_global", factory=lambda: sinks().TwoPhaseGlobalCommitSink(),
                  kind="two_phase", global_committer=True, _builtin=True)


_register_builtins()


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
        raise RegistrationError(f"bad source name {name!r:.60}: use 1-41 lowercase letters, digits, "
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
                                    f"{getattr(fn, '__name__', fn)!r:.60} is not")
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
