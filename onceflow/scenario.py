"""`Scenario`: one run described completely, as frozen values that round-trip through JSON.

Every random choice a run makes is derived from its scenario (the workload seed
and the scheduling seed), so a scenario *is* its reproduction.  Times are in
simulated milliseconds.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any, ClassVar

from attrs import evolve, field, fields, frozen

from onceflow.errors import ScenarioError, UnknownComponentError
from onceflow.registry import OPERATORS, SINK_KINDS, SINKS, SOURCES, STORES, unknown_message

__all__ = [
    "BARRIER_MODES",
    "EDGE_KINDS",
    "OPERATOR_KINDS",
    "SINK_KINDS",
    "CheckpointConfig",
    "RescaleStep",
    "RestartStrategy",
    "START_MODES",
    "SavepointRequest",
    "Scenario",
    "StartPosition",
    "Timing",
    "Topology",
    "Vertex",
    "Workload",
]

BARRIER_MODES = ("aligned", "unaligned", "at_least_once")
START_MODES = ("earliest", "latest", "timestamp")
EDGE_KINDS = ("forward", "hash", "rebalance", "broadcast")
#: the built-in vertex kinds (registered operators are valid kinds too)
OPERATOR_KINDS = ("source", "map", "filter", "flat_map", "reduce", "window", "sink")
SCENARIO_VERSION = 1

# Limits that keep a hostile token or file from exhausting the machine.
MAX_PARALLELISM_LIMIT = 8  # per vertex, as the model promises (1..8)
#: records that enter vertices, summed over the topology (flat_maps multiply them,
#: a broadcast edge copies each to every subtask): what a run's memory and time follow
MAX_RECORD_VISITS = 1_000_000
MAX_RECORDS = MAX_RECORD_VISITS // 2  # a source and a sink see every record
MAX_KEYS = 100_000
MAX_SPLITS = 256
MAX_VERTICES = 12
MAX_LIST_ITEMS = 64
MAX_SAVEPOINTS = 16  # each is restored (a whole run) when the properties are checked
MAX_RESCALES = 4  # each link of a rescale chain is a whole run
MAX_SCHEDULE = 64  # drawn tie-breaks at the start of a run, and the largest choice
MAX_FAULTS = 32  # each crash may replay the input since the last checkpoint
#: checkpoint timer ticks until the horizon (horizon / interval): a job that never
#: finishes ticks until then
MAX_CHECKPOINT_TICKS = 5_000_000
MAX_KEY_GROUPS = 32768
MAX_TIME = 1e9
MAX_JSON_DEPTH = 16  # a scenario nests 5 levels

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 40, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4


def _show(value: Any) -> str:
    """A bounded repr for error messages (input may be hostile: huge or deeply nested)."""
    return _SHORT.repr(value)


def _fail(field_name: str, reason: str) -> None:
    raise ScenarioError(field_name, reason)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(name, f"must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        _fail(name, f"must be between {lo} and {hi}, got {value}")


def _check_time(name: str, value: Any, *, positive: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        _fail(name, f"must be a number of simulated milliseconds, got {_show(value)}")
    if value < 0 or value > MAX_TIME or not math.isfinite(value):
        _fail(name, f"must be a finite time between 0 and {MAX_TIME:g} ms, got {_show(value)}")
    if positive and value == 0:
        _fail(name, "must be greater than 0")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(name, f"unknown value {_show(value)}; choose one of {', '.join(choices)}")


def _time(value: Any) -> Any:
    """Accept integers for times, store floats (so JSON round-trips exactly)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # beyond any float: validation refuses it with a message
            return value
    return value


def _opt_time(value: Any) -> Any:
    return None if value is None else _time(value)


@frozen
class Vertex:
    """One vertex of the job graph: a source, an operator or the sink.

    `edge` is how records reach this vertex from the previous one; `param` is
    the operator's one knob (map: addend, filter: modulus, flat_map: fan-out,
    window: size in records).
    """

    uid: str
    kind: str
    parallelism: int = 1
    edge: str = "forward"
    param: int = 0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.uid, str) or not self.uid or len(self.uid) > 64:
            _fail("uid", "must be a non-empty string of at most 64 characters, "
                         f"got {_show(self.uid)}")
        if not isinstance(self.kind, str):
            _fail("kind", f"must be an operator name (a string), got {_show(self.kind)}")
        if self.kind not in OPERATORS and self.kind not in ("source", "sink"):
            raise UnknownComponentError("kind", unknown_message("operator", self.kind, OPERATORS))
        _check_int("parallelism", self.parallelism, 1, MAX_PARALLELISM_LIMIT)
        _check_choice("edge", self.edge, EDGE_KINDS)
        _check_int("param", self.param, 0, 1_000_000)
        spec = OPERATORS.get(self.kind)
        if spec is not None:  # what the operator declares its param may be
            lo, hi = spec.param_bounds
            if not lo <= self.param <= hi:
                _fail("param", f"operator {self.kind!r} takes a {spec.param_name} between "
                               f"{lo} and {hi}, got {self.param}")

    @property
    def keyed(self) -> bool:
        spec = OPERATORS.get(self.kind)
        return spec is not None and spec.keyed


@frozen
class Topology:
    """A linear job graph: one source, operators, one sink."""

    vertices: tuple[Vertex, ...] = field(converter=tuple)
    max_parallelism: int = 128

    _nested: ClassVar[dict[str, Any]] = {"vertices": (Vertex,)}

    def __attrs_post_init__(self) -> None:
        _check_int("max_parallelism", self.max_parallelism, 1, MAX_KEY_GROUPS)
        vs = self.vertices
        if not 2 <= len(vs) <= MAX_VERTICES:
            _fail("vertices", f"need a source, a sink and at most {MAX_VERTICES} vertices in all")
        seen: set[str] = set()
        for i, v in enumerate(vs):
            name = f"vertices[{i}]"
            if not isinstance(v, Vertex):
                _fail(name, "must be a Vertex")
            if v.uid in seen:
                _fail(f"{name}.uid", f"duplicate uid {v.uid!r}; every vertex needs its own")
            seen.add(v.uid)
            if v.parallelism > self.max_parallelism:
                _fail(f"{name}.parallelism",
                      f"{v.parallelism} is above max_parallelism {self.max_parallelism}")
            if (i == 0) != (v.kind == "source"):
                _fail(f"{name}.kind", "the first vertex, and only it, must be the source")
            if (i == len(vs) - 1) != (v.kind == "sink"):
                _fail(f"{name}.kind", "the last vertex, and only it, must be the sink")
            if i == 0:
                continue
            if v.edge == "forward" and v.parallelism != vs[i - 1].parallelism:
                _fail(f"{name}.edge",
                      f"a forward edge needs equal parallelism ({vs[i - 1].parallelism} -> "
                      f"{v.parallelism}); use rebalance or hash")
            if v.keyed and v.edge != "hash":
                _fail(f"{name}.edge", f"keyed operator {v.kind!r} must be fed by a hash edge")

    def vertex(self, uid: str) -> Vertex:
        for v in self.vertices:
            if v.uid == uid:
                return v
        raise ScenarioError("uid", f"no vertex with uid {uid!r}; the topology has "
                                   f"{', '.join(v.uid for v in self.vertices)}")

    def with_parallelism(self, parallelism: int) -> "Topology":
        """The same graph with every vertex at `parallelism` (for rescaled restores)."""
        return evolve(self, vertices=tuple(evolve(v, parallelism=parallelism) for v in self.vertices))

    @property
    def order_fixed(self) -> bool:
        """True when records of one key reach every operator in source order."""
        return all(v.edge in ("forward", "hash") for v in self.vertices[1:])


@frozen
class Workload:
    """A bounded input described by a few parameters, not record by record.

    Keys are spread over `splits` log partitions (key k lives in split k mod
    splits), with a Zipf-like `skew` (0 = uniform).  The log is a produced topic:
    record i (in generation order) is appended at simulated time
    `first_produce + i * produce_interval`, so with the defaults the whole log
    exists when the job starts (t=0); a negative `first_produce` means records
    produced before the job started, a positive interval a log that grows while
    the job runs.
    """

    records: int = 200
    keys: int = 8
    splits: int = 4
    skew: float = 0.0
    seed: int = 0
    produce_interval: float = field(default=0.0, converter=_time)
    first_produce: float = field(default=0.0, converter=_time)

    def __attrs_post_init__(self) -> None:
        _check_int("records", self.records, 0, MAX_RECORDS)
        _check_int("keys", self.keys, 1, MAX_KEYS)
        _check_int("splits", self.splits, 1, MAX_SPLITS)
        if not isinstance(self.skew, (int, float)) or not 0 <= self.skew <= 4:
            _fail("skew", f"must be a number between 0 and 4, got {_show(self.skew)}")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_time("produce_interval", self.produce_interval)
        if (not isinstance(self.first_produce, (int, float)) or isinstance(self.first_produce, bool)
                or not math.isfinite(self.first_produce) or abs(self.first_produce) > MAX_TIME):
            _fail("first_produce", f"must be a finite time between {-MAX_TIME:g} and "
                                   f"{MAX_TIME:g} ms, got {_show(self.first_produce)}")
        if self.last_produce > MAX_TIME:
            _fail("produce_interval", f"the last record would be produced at "
                                      f"{self.last_produce:g} ms, after {MAX_TIME:g} ms: use a "
                                      "shorter interval or fewer records")

    @property
    def last_produce(self) -> float:
        """When the last record is appended to the log (simulated ms)."""
        return self.first_produce + max(self.records - 1, 0) * self.produce_interval


@frozen
class StartPosition:
    """Where a source starts reading each split on a fresh start (never on a restore,
    which resumes from the snapshot), as Kafka's `OffsetsInitializer`:

    - "earliest": the beginning of each split;
    - "latest": the end of each split when the job starts (t=0): only records
      produced after that are read;
    - "timestamp": the first record of each split produced at or after
      `timestamp` (the end of the split when there is none).
    """

    mode: str = "earliest"
    timestamp: float = field(default=0.0, converter=_time)

    def __attrs_post_init__(self) -> None:
        _check_choice("mode", self.mode, START_MODES)
        if (not isinstance(self.timestamp, (int, float)) or isinstance(self.timestamp, bool)
                or not math.isfinite(self.timestamp) or abs(self.timestamp) > MAX_TIME):
            _fail("timestamp", f"must be a finite time between {-MAX_TIME:g} and {MAX_TIME:g} "
                               f"ms, got {_show(self.timestamp)}")
        if self.mode != "timestamp" and self.timestamp != 0.0:
            _fail("timestamp", f"only mode 'timestamp' takes a timestamp; set mode='timestamp' "
                               f"or drop the timestamp (mode is {self.mode!r})")


@frozen
class CheckpointConfig:
    """Flink's checkpointing options.

    `tolerable_failed_checkpoints` is `execution.checkpointing.tolerable-failed-checkpoints`:
    how many consecutive checkpoint failures (declined, expired, failed uploads) the
    job tolerates before it fails over; 0, Flink's default, fails over on the first;
    2**31 - 1 (Flink's unlimited) never does.
    """

    mode: str = "aligned"
    interval: float = field(default=50.0, converter=_time)
    timeout: float = field(default=2000.0, converter=_time)
    max_concurrent: int = 1
    retained: int = 3
    durable_store: bool = True
    tolerable_failed_checkpoints: int = 0
    #: Flink's `execution.checkpointing.aligned-checkpoint-timeout` (unaligned mode
    #: only): a checkpoint starts aligned and a task switches it to unaligned once its
    #: alignment took this long.  None: unaligned from the start.
    aligned_timeout: float | None = field(default=None, converter=_opt_time)

    def __attrs_post_init__(self) -> None:
        _check_choice("mode", self.mode, BARRIER_MODES)
        if self.aligned_timeout is not None:
            _check_time("aligned_timeout", self.aligned_timeout)
            if self.mode != "unaligned":
                _fail("aligned_timeout", "applies to unaligned checkpoints only (Flink switches "
                                         "an aligned start to unaligned); set mode to unaligned "
                                         "or leave it out")
        _check_time("interval", self.interval, positive=True)
        _check_time("timeout", self.timeout, positive=True)
        _check_int("max_concurrent", self.max_concurrent, 1, 8)
        _check_int("retained", self.retained, 1, 64)
        if not isinstance(self.durable_store, bool):
            _fail("durable_store", "must be true or false")
        _check_int("tolerable_failed_checkpoints", self.tolerable_failed_checkpoints, 0, 2**31 - 1)


@frozen
class Timing:
    """Latencies and capacities of the simulated cluster."""

    latency: float = field(default=1.0, converter=_time)
    jitter: float = field(default=0.0, converter=_time)
    buffer_records: int = 32
    channel_capacity: int = 4
    record_cost: float = field(default=0.01, converter=_time)
    upload_time: float = field(default=2.0, converter=_time)
    rpc_latency: float = field(default=1.0, converter=_time)

    def __attrs_post_init__(self) -> None:
        _check_time("latency", self.latency)
        _check_time("jitter", self.jitter)
        _check_int("buffer_records", self.buffer_records, 1, 4096)
        _check_int("channel_capacity", self.channel_capacity, 1, 1024)
        _check_time("record_cost", self.record_cost, positive=True)
        _check_time("upload_time", self.upload_time)
        _check_time("rpc_latency", self.rpc_latency)


@frozen
class RestartStrategy:
    """Fixed-delay restarts, as Flink's `fixed-delay` strategy."""

    attempts: int = 3
    delay: float = field(default=10.0, converter=_time)

    def __attrs_post_init__(self) -> None:
        _check_int("attempts", self.attempts, 0, 100)
        _check_time("delay", self.delay)


@frozen
class SavepointRequest:
    """A user's savepoint at simulated time `at`; `stop` ends the job with it.

    `restore_parallelism` is the parallelism the properties restore it at
    (None: the job's own).
    """

    at: float = field(converter=_time)
    stop: bool = False
    drain: bool = False
    restore_parallelism: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        if self.restore_parallelism is not None:
            _check_int("restore_parallelism", self.restore_parallelism, 1, MAX_PARALLELISM_LIMIT)
        if not isinstance(self.stop, bool) or not isinstance(self.drain, bool):
            _fail("stop", "stop and drain must be true or false")
        if self.drain and not self.stop:
            _fail("drain", "drain only applies to stop-with-savepoint; set stop too")


@frozen
class RescaleStep:
    """One link of a rescale chain (Flink's autoscaler restarting from a snapshot).

    The properties restore the previous timeline's snapshot of kind `snapshot`
    ("checkpoint", "savepoint" or "any"; `back` = 0 is the latest completed one,
    1 the one before, ...) with every vertex at `parallelism`, request
    `savepoints` on the restored timeline (times from its start), and judge it;
    the next step restores a snapshot of that timeline.
    """

    parallelism: int
    snapshot: str = "checkpoint"
    back: int = 0
    savepoints: tuple[SavepointRequest, ...] = field(default=(), converter=tuple)

    _nested: ClassVar[dict[str, Any]] = {"savepoints": (SavepointRequest,)}

    def __attrs_post_init__(self) -> None:
        _check_int("parallelism", self.parallelism, 1, MAX_PARALLELISM_LIMIT)
        _check_choice("snapshot", self.snapshot, ("checkpoint", "savepoint", "any"))
        _check_int("back", self.back, 0, 64)
        if len(self.savepoints) > MAX_SAVEPOINTS:
            _fail("savepoints", f"{len(self.savepoints)} entries; at most {MAX_SAVEPOINTS}")
        for i, sp in enumerate(self.savepoints):
            if not isinstance(sp, SavepointRequest):
                _fail(f"savepoints[{i}]", "must be a SavepointRequest")
            if sp.drain:
                _fail(f"savepoints[{i}].drain", "a drained savepoint ends the input for good; "
                                                "a rescale chain cannot go on from it")


def json_error(exc: Exception) -> str:
    """Why `json.loads` refused a scenario's text, and what to do."""
    if "integer string conversion" in str(exc):  # Python's int_max_str_digits guard
        return ("a number has thousands of digits; no scenario field takes more than 19: "
                "fix the number")
    return f"not valid JSON ({exc})"


def _default_topology() -> Topology:
    return Topology((
        Vertex("source", "source", 2),
        Vertex("map", "map", 2, "forward", 1),
        Vertex("reduce", "reduce", 2, "hash"),
        Vertex("sink", "sink", 2, "forward"),
    ))


@frozen
class Scenario:
    """Everything one run depends on.  `Scenario.from_json(s.to_json()) == s`."""

    topology: Topology = field(factory=_default_topology)
    workload: Workload = field(factory=Workload)
    checkpoints: CheckpointConfig = field(factory=CheckpointConfig)
    timing: Timing = field(factory=Timing)
    restart: RestartStrategy = field(factory=RestartStrategy)
    sink: str = "two_phase"
    #: The external system the sink writes to: a registered store ("memory", "sqlite").
    store: str = "memory"
    #: the registered source the job reads the log with (`onceflow.registry.register_source`)
    source: str = "log"
    start_position: StartPosition = field(factory=StartPosition)
    txn_timeout: float = field(default=600_000.0, converter=_time)
    savepoints: tuple[SavepointRequest, ...] = field(default=(), converter=tuple)
    faults: tuple[Any, ...] = field(default=(), converter=tuple)
    mutants: tuple[str, ...] = field(default=(), converter=tuple)
    #: The first tie-breaks among simultaneously ready inputs, in the order the run
    #: meets them (entry v picks the ready input v mod their count); later ones
    #: come from `seed`.  Drawn, so that Hypothesis shrinks orderings choice by choice.
    schedule: tuple[int, ...] = field(default=(), converter=tuple)
    seed: int = 0
    version: int = SCENARIO_VERSION
    #: A rescale chain the properties follow from this run: each step restores a
    #: snapshot of the previous timeline at another parallelism (see `RescaleStep`).
    rescales: tuple[RescaleStep, ...] = field(default=(), converter=tuple)

    _nested: ClassVar[dict[str, Any]] = {
        "topology": Topology,
        "workload": Workload,
        "checkpoints": CheckpointConfig,
        "timing": Timing,
        "restart": RestartStrategy,
        "start_position": StartPosition,
        "savepoints": (SavepointRequest,),
        "rescales": (RescaleStep,),
    }

    def __attrs_post_init__(self) -> None:
        for name, cls in (("topology", Topology), ("workload", Workload),
                          ("checkpoints", CheckpointConfig), ("timing", Timing),
                          ("restart", RestartStrategy), ("start_position", StartPosition)):
            if not isinstance(getattr(self, name), cls):
                _fail(name, f"must be a {cls.__name__}")
        if not isinstance(self.sink, str):
            _fail("sink", f"must be a sink name (a string), got {_show(self.sink)}")
        if self.sink not in SINKS:
            raise UnknownComponentError("sink", unknown_message("sink", self.sink, SINKS))
        if self.store not in STORES:
            _check_choice("store", self.store, tuple(sorted(STORES)))
        if self.source not in SOURCES:
            if not isinstance(self.source, str):
                _fail("source", f"must be the name of a registered source, got {_show(self.source)}")
            _fail("source", f"unknown source {_show(self.source)}: no source of that name is "
                            "registered; load the module that registers it with --plugin MODULE "
                            "(or import it in your tests); registered: "
                            f"{', '.join(sorted(SOURCES))}")
        _check_time("txn_timeout", self.txn_timeout, positive=True)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if len(self.schedule) > MAX_SCHEDULE:
            _fail("schedule", f"{len(self.schedule)} entries; at most {MAX_SCHEDULE}")
        for i, choice in enumerate(self.schedule):
            _check_int(f"schedule[{i}]", choice, 0, MAX_SCHEDULE)
        if self.version != SCENARIO_VERSION:
            _fail("version", f"this onceflow reads scenario version {SCENARIO_VERSION}, "
                             f"got {_show(self.version)}; re-create the scenario with this version")
        for label, items, limit in (("savepoints", self.savepoints, MAX_SAVEPOINTS),
                                    ("faults", self.faults, MAX_FAULTS),
                                    ("mutants", self.mutants, MAX_LIST_ITEMS)):
            if len(items) > limit:
                _fail(label, f"{len(items)} entries; at most {limit}")
        for i, sp in enumerate(self.savepoints):
            if not isinstance(sp, SavepointRequest):
                _fail(f"savepoints[{i}]", "must be a SavepointRequest")
        if len(self.rescales) > MAX_RESCALES:
            _fail("rescales", f"{len(self.rescales)} steps; at most {MAX_RESCALES}")
        for i, step in enumerate(self.rescales):
            if not isinstance(step, RescaleStep):
                _fail(f"rescales[{i}]", "must be a RescaleStep")
            if step.parallelism > self.topology.max_parallelism:
                _fail(f"rescales[{i}].parallelism",
                      f"{step.parallelism} is above max_parallelism {self.topology.max_parallelism}")
        if self.rescales and any(v.edge == "broadcast" for v in self.topology.vertices[1:]):
            _fail("rescales", "a broadcast edge copies each record once per receiver, so "
                              "rescaling changes the expected output; use hash, rebalance or "
                              "forward edges, or leave rescales out")
        from onceflow.faults.plan import validate_faults  # noqa: PLC0415 (cycle)
        from onceflow.mutants import validate_mutants  # noqa: PLC0415

        validate_faults(self)
        validate_mutants(self.mutants)
        self._check_effort()

    def _check_effort(self) -> None:
        """Bound what a valid scenario can cost: a short token must not exhaust memory."""
        visits = record_visits(self.topology, self.workload.records)
        if visits > MAX_RECORD_VISITS:
            amplifiers = [f"{v.uid} ({v.kind}) x{v.param}" for v in self.topology.vertices
                          if v.kind in OPERATORS and OPERATORS[v.kind].most_output(
                              1, v.param, 1) > 1]
            amplifiers += [f"{v.uid} (broadcast edge) x{v.parallelism}"
                           for v in self.topology.vertices[1:]
                           if v.edge == "broadcast" and v.parallelism > 1]
            _fail("workload.records",
                  f"{self.workload.records} records would make {visits:,} record visits "
                  f"through the topology ({'; '.join(amplifiers) or 'no fan-out'}); at most "
                  f"{MAX_RECORD_VISITS:,}: use fewer records, fewer or smaller flat_map "
                  "fan-outs, or lower parallelism behind broadcast edges")
        from onceflow.cost import horizon, slowest_idle_checkpoint  # noqa: PLC0415 (cycle)

        needed = slowest_idle_checkpoint(self)
        if self.checkpoints.timeout <= needed:
            t = self.timing
            hops = len(self.topology.vertices) - 1
            _fail("checkpoints.timeout",
                  f"{self.checkpoints.timeout:g} ms is not more than the {needed:g} ms a "
                  f"checkpoint can take with these timings (rpc_latency {t.rpc_latency:g} + "
                  f"{hops} barrier hop(s) x latency {t.latency:g} + upload_time "
                  f"{t.upload_time:g}, jitter {t.jitter:g} on each message): the final "
                  "checkpoint could never complete and no job would finish; raise the "
                  "timeout or lower those timings")

        ticks = horizon(self) / self.checkpoints.interval
        if ticks > MAX_CHECKPOINT_TICKS:
            _fail("checkpoints.interval",
                  f"{self.checkpoints.interval:g} ms would tick {ticks:,.0f} times before the "
                  f"run's horizon ({horizon(self):g} ms); at most {MAX_CHECKPOINT_TICKS:,}: "
                  "use a longer checkpoint interval, fewer records, a smaller record_cost or "
                  "earlier faults and savepoints")
        from onceflow.cost import check_budget  # noqa: PLC0415 (cycle)

        check_budget(self)

    # -- JSON ---------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        data = _to_data(self)
        # defaults left out: tokens of earlier versions stay valid (and their run ids)
        if data["store"] == "memory":
            del data["store"]  # the default: tokens of earlier versions stay valid
        # the same for the built-in source reading the whole log from the start
        if data["source"] == "log":
            del data["source"]
        if data["start_position"] == {"mode": "earliest", "timestamp": 0.0}:
            del data["start_position"]
        for name in ("produce_interval", "first_produce"):
            if data["workload"][name] == 0.0:
                del data["workload"][name]
        if not data["rescales"]:
            del data["rescales"]
        if data["checkpoints"]["aligned_timeout"] is None:
            del data["checkpoints"]["aligned_timeout"]
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_data(), sort_keys=True, indent=indent,
                          separators=None if indent else (",", ":"))

    @classmethod
    def from_data(cls, data: Any) -> "Scenario":
        _check_depth(data)
        return _from_data(cls, data, "")

    @classmethod
    def from_json(cls, text: str | bytes) -> "Scenario":
        try:
            data = json.loads(text)
        except RecursionError:
            raise ScenarioError("<json>", f"nested deeper than {MAX_JSON_DEPTH} levels; a "
                                          "scenario nests 5") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ScenarioError("<json>", json_error(exc)) from None
        return cls.from_data(data)

    # -- sizes, for reports ---------------------------------------------------

    @property
    def size(self) -> dict[str, int]:
        return {
            "records": self.workload.records,
            "keys": self.workload.keys,
            "faults": len(self.faults),
            "parallelism": max(v.parallelism for v in self.topology.vertices),
            "savepoints": len(self.savepoints),
        }


def record_visits(topology: Topology, records: int) -> int:
    """How many times records enter a vertex in one uninterrupted run, at most.

    Every record enters the source; a broadcast edge copies what crosses it to each
    subtask; an operator emits what its `output_bound` declares (a flat_map
    multiplies by its fan-out), one record out per in if it declares none; the
    number of keys is taken as the number of records (the most).
    """
    flow, total = records, 0
    for i, v in enumerate(topology.vertices):
        if i and v.edge == "broadcast":
            flow *= v.parallelism
        total += flow
        spec = OPERATORS.get(v.kind)
        if spec is not None:
            flow = max(flow, spec.most_output(flow, v.param, flow))
    return total


def _check_depth(data: Any) -> None:
    """Refuse JSON nested deeper than any scenario (before recursing into it)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ScenarioError("<json>", f"nested deeper than {MAX_JSON_DEPTH} levels; a "
                                          "scenario nests 5")
        stack.extend((child, depth + 1) for child in children)


def _to_data(obj: Any) -> Any:
    if hasattr(type(obj), "__attrs_attrs__"):
        data: dict[str, Any] = {}
        if hasattr(type(obj), "kind_name"):
            data["kind"] = type(obj).kind_name
        for f in fields(type(obj)):
            value = getattr(obj, f.name)
            if f.metadata.get("omit_default") and value == f.default:
                continue  # a field added later: older tokens keep their JSON and run id
            data[f.name] = _to_data(value)
        return data
    if isinstance(obj, (tuple, list)):
        return [_to_data(x) for x in obj]
    return obj


def _from_data(cls: Any, data: Any, path: str) -> Any:
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise ScenarioError(where, f"expected a JSON object, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ScenarioError(f"{path + '.' if path else ''}{unknown[0]}",
                            f"unknown field; {cls.__name__} has: {', '.join(names)}")
    nested = getattr(cls, "_nested", {})
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = f"{path}.{name}" if path else name
        spec = nested.get(name)
        if name == "faults":
            from onceflow.faults.plan import fault_from_data  # noqa: PLC0415

            if not isinstance(value, list):
                raise ScenarioError(sub, "expected a JSON list")
            if len(value) > MAX_LIST_ITEMS:
                raise ScenarioError(sub, f"at most {MAX_LIST_ITEMS} entries")
            value = tuple(fault_from_data(x, f"{sub}[{i}]") for i, x in enumerate(value))
        elif isinstance(spec, tuple):
            if not isinstance(value, list):
                raise ScenarioError(sub, "expected a JSON list")
            if len(value) > MAX_LIST_ITEMS:
                raise ScenarioError(sub, f"at most {MAX_LIST_ITEMS} entries")
            value = tuple(_from_data(spec[0], x, f"{sub}[{i}]") for i, x in enumerate(value))
        elif spec is not None:
            value = _from_data(spec, value, sub)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ScenarioError as exc:
        if path and not exc.field.startswith(path):
            raise type(exc)(f"{path}.{exc.field}", exc.reason) from None
        raise
    except TypeError as exc:
        raise ScenarioError(where, str(exc)) from None
