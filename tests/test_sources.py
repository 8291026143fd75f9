"""Sources as in Flink's FLIP-27: the log client, start positions, the split enumerator
(valve, assignment tracking, splits back on failover, reset on a global failover), user
sources through the public protocol only, and the bad input a source can give."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import onceflow
from onceflow import (CheckpointConfig, Scenario, Timing, Topology, Vertex, Violation,
                      Workload)
from onceflow.errors import OperatorError
from onceflow.faults.plan import CoordinatorCrash, Crash
from onceflow.model import LogClient, Record, Split
from onceflow.model.log import ProducedLog
from onceflow.model.records import split_logs
from onceflow.model.sources import (END_OF_INPUT, MORE_AVAILABLE, NOTHING_AVAILABLE,
                                    DefaultEnumerator)
from onceflow.properties.oracle import cut_offsets, expected_output, start_offsets
from onceflow.registry import SOURCES, register_source
from onceflow.scenario import StartPosition
from onceflow.strategies import scenario_from_seed


@pytest.fixture(autouse=True)
def _restore_registry():
    before = dict(SOURCES)
    yield
    SOURCES.clear()
    SOURCES.update(before)


def pipeline(p: int = 2, *, sink: str = "two_phase", source: str = "log",
             workload: Workload | None = None, faults: tuple[Any, ...] = (),
             start: StartPosition | None = None, interval: float = 4.0,
             mutants: tuple[str, ...] = (), rpc: float = 1.0, jitter: float = 0.0) -> Scenario:
    return Scenario(
        topology=Topology((Vertex("source", "source", p), Vertex("map", "map", p, "forward", 1),
                           Vertex("reduce", "reduce", p, "hash"),
                           Vertex("sink", "sink", p, "forward"))),
        workload=workload or Workload(records=120, keys=6, splits=4),
        checkpoints=CheckpointConfig(interval=interval),
        timing=Timing(latency=0.5, record_cost=0.1, buffer_records=4, rpc_latency=rpc,
                      jitter=jitter),
        sink=sink, source=source, start_position=start or StartPosition(), faults=faults,
        mutants=mutants)


def committed_ids(result: onceflow.RunResult) -> set[str]:
    return {r.id for r in result.committed()}


# -- the log client ----------------------------------------------------------------------------

def test_the_log_client_reads_like_a_kafka_consumer_of_a_growing_topic() -> None:
    w = Workload(records=40, keys=4, splits=2, produce_interval=1.0, first_produce=-10.0)
    now = [0.0]
    client = LogClient(ProducedLog(w), lambda: now[0])
    logs = split_logs(w)
    assert client.partitions() == [0, 1]
    assert client.beginning_offsets([0, 1]) == {0: 0, 1: 0}
    # at t=0 the records produced at -10..0 exist (11 of them), in their partitions
    ends = client.end_offsets([0, 1])
    assert sum(ends.values()) == 11
    client.assign([0])
    client.seek(0, 1)
    got = client.poll(100)
    assert got == logs[0][1:ends[0]] and client.position(0) == ends[0]
    assert client.poll(100) == []  # nothing more produced yet
    due = client.next_arrival()
    assert due is not None and due > 0
    now[0] = due
    more = client.poll(100)
    assert more and more[0].offset == ends[0]
    now[0] = 1000.0
    assert client.end_offsets([0, 1]) == {0: len(logs[0]), 1: len(logs[1])}
    assert client.next_arrival() is None or client.poll(1000)
    # offsets for times: the first record produced at or after the timestamp
    found = client.offsets_for_times({0: 5.0, 1: 10_000.0})
    stamps = [-10.0 + int(r.id[1:]) for r in logs[0]]
    assert found[0] == next(i for i, t in enumerate(stamps) if t >= 5.0)
    assert found[1] is None
    with pytest.raises(ValueError, match="not assigned"):
        client.seek(1, 0)
    with pytest.raises(ValueError, match="no partition 7"):
        client.assign([7])


@pytest.mark.parametrize("start", [StartPosition(), StartPosition("latest"),
                                   StartPosition("timestamp", 12.0),
                                   StartPosition("timestamp", 1e6)])
def test_the_start_position_decides_the_input_and_the_oracle_follows_the_declaration(
        start: StartPosition) -> None:
    w = Workload(records=150, keys=6, splits=3, produce_interval=0.25, first_produce=-10.0)
    s = pipeline(workload=w, start=start, sink="idempotent")
    result = onceflow.run(s)
    assert result.status == "finished"
    onceflow.check(result)
    # computed here from the produce times alone (never from the model)
    logs = split_logs(w)
    stamp = {r.id: -10.0 + int(r.id[1:]) * 0.25 for log in logs for r in log}
    if start.mode == "earliest":
        read = set(stamp)
    elif start.mode == "latest":
        read = {i for i, t in stamp.items() if t > 0.0}
    else:
        read = {i for i, t in stamp.items() if t >= start.timestamp}
    assert {r.id for rs in expected_output(s).values() for r in rs} == read
    assert committed_ids(result) == read
    assert all(off >= 0 for off in start_offsets(s).values())


def test_a_growing_log_is_read_as_it_is_produced() -> None:
    w = Workload(records=60, keys=3, splits=2, produce_interval=2.0)
    result = onceflow.run(pipeline(workload=w))
    onceflow.check(result)
    reads = [(t, r) for t, kind, _, d in result.trace.events if kind == "read" for r in d[0]]
    assert reads and all(t >= int(r.id[1:]) * 2.0 for t, r in reads)  # never before produced
    assert result.end_time >= w.last_produce


# -- the split enumerator ------------------------------------------------------------------------

def test_splits_are_assigned_on_request_and_every_split_is_in_one_place_per_snapshot() -> None:
    s = pipeline(workload=Workload(records=200, keys=8, splits=6), interval=3.0)
    result = onceflow.run(s)
    onceflow.check(result)
    events = result.trace.events
    assert len([e for e in events if e[1] == "reader_registered"]) == 2
    assigned = [e[3][0] for e in events if e[1] == "split_assigned"]
    assert sorted(assigned) == list(range(6))  # each split once (no failover)
    for snap in result.snapshots:
        readers = snap.state["source"]
        held = [sp.partition for sp in snap.coordinator_state["source"]]
        assert not set(readers) & set(held)  # never in two places
        assert all(isinstance(sp, Split) for sp in readers.values())


def test_a_failover_gives_the_splits_assigned_after_the_checkpoint_back() -> None:
    s = pipeline(workload=Workload(records=200, keys=8, splits=6), interval=3.0,
                 faults=(Crash(9.0, "source[0]"),))
    result = onceflow.run(s)
    onceflow.check(result)
    events = result.trace.events
    assert result.restarts == 1
    back = [e for e in events if e[1] == "splits_back"]
    assert back, "no split came back to the enumerator"
    (restart,) = [e for e in events if e[1] == "restart"]
    assert all(e[0] == restart[0] for e in back)


def test_without_giving_splits_back_they_are_lost_and_with_all_of_them_duplicated() -> None:
    crash = (Crash(16.0, "source[0]"),)  # after checkpoint 1 completed
    base = pipeline(workload=Workload(records=200, keys=8, splits=6), interval=3.0,
                    faults=crash)
    onceflow.check(onceflow.run(base))
    for mutant, anomaly in (("no-splits-back", "lost"),
                            ("splits-back-include-checkpointed", "duplicate")):
        s = Scenario.from_data({**base.to_data(), "mutants": [mutant]})
        with pytest.raises(Violation) as info:
            onceflow.check(onceflow.run(s))
        assert info.value.finding.anomaly == anomaly, (mutant, info.value)


def test_a_global_failover_resets_the_enumerator_to_the_checkpoint() -> None:
    s = pipeline(workload=Workload(records=200, keys=8, splits=6), interval=3.0,
                 faults=(CoordinatorCrash(10.0),))
    result = onceflow.run(s)
    assert result.restarts == 1
    onceflow.check(result)
    assert not [e for e in result.trace.events if e[1] == "splits_back"]


def test_events_held_by_the_valve_follow_the_barrier_of_their_snapshot() -> None:
    """Splits requested while a snapshot's barriers are not yet injected reach the reader
    after that barrier; without the valve (the mutant) some scenario holds a split twice."""
    found = None
    for seed in range(300):
        s = scenario_from_seed(seed, mutants=("enumerator-event-overtakes-barrier",))
        try:
            onceflow.check(onceflow.run(s))
        except Violation as v:
            found = (s, v)
            break
    assert found is not None, "the valve mutant was never caught"
    s, v = found
    assert v.finding.anomaly == "duplicate"
    onceflow.check(onceflow.run(Scenario.from_data({**s.to_data(), "mutants": []})))


# -- user sources through the public protocol -------------------------------------------------------

class FetchingReader:
    """A user's reader: fetches more than it emits (a fetch buffer, as Kafka readers have);
    `bug=True` snapshots the consumer's position (the next fetch) instead of the offset
    after the last record it emitted."""

    def __init__(self, bug: bool = False) -> None:
        self.bug = bug

    def open(self, ctx: Any) -> None:
        self.ctx, self.client = ctx, ctx.client
        self.splits: dict[int, Split] = {}
        self.next: dict[int, int] = {}
        self.buffer: list[Record] = []
        self.no_more = self.asked = False

    def add_splits(self, splits: list[Split]) -> None:
        for sp in splits:
            self.splits[sp.partition] = sp
            self.next[sp.partition] = sp.offset
        self.client.assign(sorted(self.splits))
        for sp in splits:
            self.client.seek(sp.partition, sp.offset)
        self.asked = False

    def start(self) -> None:
        self._ask()

    def _ask(self) -> None:
        if not self.splits and not self.no_more and not self.asked:
            self.asked = True
            self.ctx.send_split_request()

    def poll_next(self, out: list[Record], limit: int) -> str:
        if not self.buffer:
            for p in [p for p, sp in self.splits.items() if self.next[p] >= sp.end]:
                del self.splits[p], self.next[p]
                self.client.assign(sorted(self.splits))
            if not self.splits:
                if self.no_more:
                    return END_OF_INPUT
                self._ask()
                return NOTHING_AVAILABLE
            self.buffer = [r for r in self.client.poll(3 * limit)
                           if r.offset < self.splits[r.split].end]
            if not self.buffer:
                return NOTHING_AVAILABLE
        emit, self.buffer = self.buffer[:limit], self.buffer[limit:]
        for r in emit:
            self.next[r.split] = r.offset + 1
        out.extend(emit)
        return MORE_AVAILABLE

    def notify_no_more_splits(self) -> None:
        self.no_more = True

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        return [Split(p, self.client.position(p) if self.bug else self.next[p], sp.end)
                for p, sp in sorted(self.splits.items())]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        pass


class OwnerEnumerator:
    """A user's enumerator, Kafka-style: each split belongs to reader `split % p` and is
    assigned when that reader registers; no more splits after that."""

    def __init__(self, ctx: Any, restored: list[Split] | None) -> None:
        self.ctx, self.restored = ctx, restored

    def start(self) -> None:
        if self.restored is None:
            ends = self.ctx.stopping_offsets()
            self.pending = [Split(p, 0, ends[p]) for p in self.ctx.client.partitions()]
        else:
            self.pending = list(self.restored)

    def add_reader(self, subtask: int) -> None:
        mine = [sp for sp in self.pending if sp.partition % self.ctx.parallelism == subtask]
        for sp in mine:
            self.pending.remove(sp)
            self.ctx.assign_split(sp, subtask)
        self.ctx.signal_no_more_splits(subtask)

    def handle_split_request(self, subtask: int) -> None:
        pass

    def add_splits_back(self, splits: list[Split], subtask: int) -> None:
        self.pending.extend(splits)

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        return list(self.pending)

    def close(self) -> None:
        pass


CRASHES = (Crash(7.0, "source[1]"), Crash(15.0, "reduce[0]"))


@pytest.mark.parametrize("enumerator", [None, OwnerEnumerator])
def test_a_user_source_with_its_own_or_the_default_enumerator_is_exactly_once(
        enumerator: Any) -> None:
    register_source("fetching", factory=FetchingReader, enumerator=enumerator)
    for faults in ((), CRASHES):
        s = pipeline(source="fetching", faults=faults)
        result = onceflow.run(s)
        assert result.status == "finished", result.error
        onceflow.check(result)
        assert result.restarts == (1 if faults else 0)


def test_a_reader_that_snapshots_its_fetch_position_loses_the_buffered_records() -> None:
    register_source("fetching-buggy", factory=lambda: FetchingReader(bug=True))
    with pytest.raises(Violation) as info:
        onceflow.check(onceflow.run(pipeline(source="fetching-buggy", faults=CRASHES)))
    assert info.value.finding.anomaly == "lost"


def test_the_default_enumerator_is_what_an_unset_enumerator_means() -> None:
    spec = register_source("plain", factory=FetchingReader)
    assert spec.enumerator is None
    assert isinstance(DefaultEnumerator(None, []), DefaultEnumerator)  # type: ignore[arg-type]


# -- bad input ----------------------------------------------------------------------------------

def _error_of(source: str) -> str:
    result = onceflow.run(pipeline(source=source))
    assert result.status == "error"
    with pytest.raises(OperatorError) as info:
        onceflow.check(result)
    return str(info.value)


def test_a_factory_returning_the_wrong_type_is_named_with_the_fix() -> None:
    register_source("not-a-reader", factory=lambda: 42)
    message = _error_of("not-a-reader")
    assert "source 'not-a-reader'" in message and "factory() returned int" in message
    assert "not a SourceReader" in message and "missing" in message


class RaisingSnapshot(FetchingReader):
    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        raise RuntimeError("state backend unavailable")


class WrongSnapshot(FetchingReader):
    def snapshot_state(self, checkpoint_id: int) -> Any:
        return {0: 5}


def test_a_reader_raising_in_snapshot_state_is_that_readers_error() -> None:
    register_source("raising", factory=RaisingSnapshot)
    message = _error_of("raising")
    assert "source 'raising' reader" in message and "state backend unavailable" in message


def test_a_reader_snapshotting_the_wrong_type_is_told_what_to_return() -> None:
    register_source("wrong-state", factory=WrongSnapshot)
    message = _error_of("wrong-state")
    assert "snapshot_state returned dict" in message and "list of" in message


def test_an_enumerator_breaking_its_protocol_is_the_enumerators_error() -> None:
    class Broken(OwnerEnumerator):
        def add_reader(self, subtask: int) -> None:
            self.ctx.assign_split(Split(0, 0, 1), subtask + 7)

    register_source("broken-enum", factory=FetchingReader, enumerator=Broken)
    message = _error_of("broken-enum")
    assert "enumerator" in message and "not registered" in message

    register_source("no-enum", factory=FetchingReader, enumerator=lambda ctx, restored: "x")
    assert "not a SplitEnumerator" in _error_of("no-enum")


def test_an_unknown_source_on_the_command_line_is_exit_2_naming_the_plugin_flag(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text(pipeline().to_json().replace('{"checkpoints"', '{"source":"kafka-x",'
                                                 '"checkpoints"', 1))
    from test_cli import ONCEFLOW  # noqa: PLC0415

    proc = subprocess.run([*ONCEFLOW, "replay", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "unknown source 'kafka-x'" in proc.stderr and "--plugin" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_snapshots_cut_the_log_where_readers_and_enumerator_say() -> None:
    result = onceflow.run(pipeline(interval=3.0))
    s = result.scenario
    for snap in result.snapshots:
        cut = cut_offsets(s, snap)
        for p, sp in snap.state["source"].items():
            assert cut[p] == sp.offset
        for sp in snap.coordinator_state["source"]:
            assert cut[sp.partition] == sp.offset


# -- split state back to its own subtask (Flink's list-state rule) -----------------------------

def test_split_state_goes_back_to_the_subtask_that_held_it_at_unchanged_parallelism() -> None:
    from onceflow.model.snapshot import assemble_state, state_for_subtask  # noqa: PLC0415

    a, b, c = Split(1, 5, 9), Split(0, 2, 9), Split(2, 0, 9)
    merged = assemble_state("splits", [{1: a}, {0: b, 2: c}], 128)
    assert dict(merged) == {1: a, 0: b, 2: c}  # still one dict partition -> split
    assert [state_for_subtask("splits", merged, s, 2, 128) for s in range(2)] == \
        [{1: a}, {0: b, 2: c}]  # not partition % 2
    # rescaled: the splits in old subtask order, cut into consecutive runs (SPLIT_DISTRIBUTE)
    assert [state_for_subtask("splits", merged, s, 3, 128) for s in range(3)] == \
        [{1: a}, {0: b}, {2: c}]
    assert [state_for_subtask("splits", merged, s, 1, 128) for s in range(1)] == \
        [{1: a, 0: b, 2: c}]
    assert merged.without(0).owners == {1: 0, 2: 1}


def test_a_restore_at_unchanged_parallelism_gives_each_reader_its_own_splits() -> None:
    # readers ask for splits one at a time: which reader holds which split follows timing,
    # not partition % parallelism
    s = pipeline(p=2, workload=Workload(records=400, keys=8, splits=5), interval=3.0)
    result = onceflow.run(s)
    onceflow.check(result)
    moved = []
    for snap in result.snapshots:
        state = snap.state["source"]
        if any(owner != p % 2 and state[p].offset < state[p].end
               for p, owner in state.owners.items()):
            moved.append(snap)
    assert moved, "no snapshot where a reader holds an unread split other than partition % 2"
    snap = moved[0]
    restored = onceflow.restore(result, snap)
    owners = snap.state["source"].owners
    first_reader: dict[int, str] = {}
    for _t, kind, lane, detail in restored.trace.events:
        if kind == "read":
            for r in detail[0]:
                first_reader.setdefault(r.split, lane)
    unfinished = [p for p, sp in snap.state["source"].items() if sp.offset < sp.end]
    assert unfinished
    for p in unfinished:
        assert first_reader[p] == f"source[{owners[p]}]", (p, first_reader, owners)
    onceflow.check(restored)


def _log_draws(**pins: Any) -> tuple[set[str], int, int]:
    modes: set[str] = set()
    growing = default = 0
    for seed in range(160):
        s = scenario_from_seed(seed, max_faults=0, savepoints=False, **pins)
        modes.add(s.start_position.mode)
        growing += s.workload.produce_interval > 0
        default += (s.start_position == StartPosition() and s.workload.produce_interval == 0
                    and s.workload.first_produce == 0)
    return modes, growing, default


def test_the_generator_draws_growing_logs_and_start_positions() -> None:
    """A source meets a log produced while the job runs and every start position: in
    about half the scenarios of a pinned source under test, in one of eight otherwise."""
    modes, growing, default = _log_draws(source="log")
    assert modes == {"earliest", "latest", "timestamp"}
    assert growing >= 30 and 50 <= default <= 110
    modes, growing, default = _log_draws()
    assert modes == {"earliest", "latest", "timestamp"}
    assert growing >= 5 and default >= 120
