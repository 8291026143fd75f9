"""Sources shaped like Flink's FLIP-27 sources: splits, readers and split enumerators.

A source is a pair registered with `onceflow.registry.register_source`: a
`SourceReader` per source subtask and one `SplitEnumerator` on the coordinator
side.  The enumerator hands splits (log partitions, with a starting and a
stopping offset) to readers; a reader reads them through its `LogClient` and
snapshots its splits' current offsets; the enumerator snapshots the splits it
has not assigned yet, before the barriers are injected.

Lifecycle of a reader in one attempt: `open(ctx)`, `add_splits(restored)` (its
share of the snapshot, if any), registration with the enumerator, `start()`,
then `poll_next` in a loop, interleaved with `add_splits`,
`notify_no_more_splits`, `snapshot_state` and the checkpoint notifications,
and `close()` on every termination (end of the job, failover).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from attrs import frozen

from onceflow.model.records import Record

if TYPE_CHECKING:
    from onceflow.model.log import LogClient
    from onceflow.scenario import StartPosition

__all__ = [
    "END_OF_INPUT",
    "MORE_AVAILABLE",
    "NOTHING_AVAILABLE",
    "DefaultEnumerator",
    "EnumeratorContext",
    "LogReader",
    "ReaderContext",
    "SourceReader",
    "Split",
    "SplitEnumerator",
    "initial_splits",
]

#: What `SourceReader.poll_next` returns (Flink's `InputStatus`).
MORE_AVAILABLE = "more_available"
NOTHING_AVAILABLE = "nothing_available"
END_OF_INPUT = "end_of_input"
INPUT_STATUSES = (MORE_AVAILABLE, NOTHING_AVAILABLE, END_OF_INPUT)


@frozen
class Split:
    """One partition of the log to read from `offset` (the next record) up to `end`
    (exclusive: the bounded input's stopping offset)."""

    partition: int
    offset: int
    end: int

    @property
    def finished(self) -> bool:
        return self.offset >= self.end


class ReaderContext(Protocol):
    """What a reader may use (Flink's `SourceReaderContext`)."""

    subtask: int
    parallelism: int
    client: "LogClient"

    @property
    def now(self) -> float: ...

    def send_split_request(self) -> None:
        """Ask the enumerator for a split (answered by `add_splits` or
        `notify_no_more_splits`)."""


@runtime_checkable
class SourceReader(Protocol):
    """A source subtask's reader, shaped like Flink's `SourceReader`."""

    def open(self, ctx: ReaderContext) -> None:
        """Called first, with the reader's context (Flink: `createReader(context)`)."""

    def add_splits(self, splits: list[Split]) -> None:
        """Take these splits (restored from a snapshot, or assigned by the enumerator)."""

    def start(self) -> None:
        """Called once the restored splits are added and the reader is registered."""

    def poll_next(self, out: list[Record], limit: int) -> str:
        """Append up to `limit` records to `out`; return MORE_AVAILABLE,
        NOTHING_AVAILABLE (nothing to emit now) or END_OF_INPUT (never again)."""

    def notify_no_more_splits(self) -> None:
        """The enumerator will assign this reader no more splits."""

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        """The reader's unfinished splits, each at the offset of its next record to emit."""

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Snapshot `checkpoint_id` completed."""

    def close(self) -> None:
        """The attempt ends (finished, failed over or cancelled)."""


class EnumeratorContext(Protocol):
    """What an enumerator may use (Flink's `SplitEnumeratorContext`)."""

    parallelism: int
    client: "LogClient"
    start_position: "StartPosition"

    def registered_readers(self) -> list[int]: ...

    def assign_split(self, split: Split, subtask: int) -> None: ...

    def signal_no_more_splits(self, subtask: int) -> None: ...

    def stopping_offsets(self) -> dict[int, int]:
        """Where each partition's bounded input ends (every record ever produced)."""


@runtime_checkable
class SplitEnumerator(Protocol):
    """The coordinator-side half of a source, shaped like Flink's `SplitEnumerator`."""

    def start(self) -> None:
        """Called once, after creation or restore (discover splits here)."""

    def add_reader(self, subtask: int) -> None:
        """Reader `subtask` registered (at every attempt's start)."""

    def handle_split_request(self, subtask: int) -> None:
        """Reader `subtask` asked for a split."""

    def add_splits_back(self, splits: list[Split], subtask: int) -> None:
        """Splits assigned to `subtask` after the checkpoint a failover restores: they are
        the enumerator's again (Flink's `addSplitsBack`)."""

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        """The splits it holds and has not assigned, taken before the barriers go out."""

    def close(self) -> None:
        """The job ended, or the enumerator is replaced by a restored one."""


#: (class, protocol) pairs whose class itself has every member of the protocol
_CONFORMING: set[tuple[type, type]] = set()


def conforms(obj: Any, protocol: type) -> bool:
    """`isinstance(obj, protocol)` for a runtime-checkable protocol, remembered per class
    when the class itself has every member (a protocol check costs more than building a
    reader, and a restored timeline builds one per subtask)."""
    key = (type(obj), protocol)
    if key in _CONFORMING:
        return True
    if not isinstance(obj, protocol):
        return False
    if isinstance(type(obj), protocol):  # the class has the members: so has every instance
        _CONFORMING.add(key)
    return True


def initial_splits(client: "LogClient", start: "StartPosition",
                   ends: dict[int, int]) -> list[Split]:
    """Every partition as a split from the declared start position to `ends`, the
    stopping offsets (resolved now, through the client: call it at the job's start)."""
    partitions = client.partitions()
    if start.mode == "earliest":
        starts = client.beginning_offsets(partitions)
    elif start.mode == "latest":
        starts = client.end_offsets(partitions)
    else:
        found = client.offsets_for_times({p: start.timestamp for p in partitions})
        starts = {p: ends[p] if o is None else o for p, o in found.items()}
    return [Split(p, min(starts[p], ends[p]), ends[p]) for p in partitions]


class DefaultEnumerator:
    """Hands out the unassigned splits one at a time, lowest partition first, to the
    reader that asks (as Flink's FileSource with its simple split assigner); a reader
    that asks when none is left is told that no more splits will come."""

    def __init__(self, ctx: EnumeratorContext, restored: list[Split] | None) -> None:
        self.ctx = ctx
        self.restored = restored

    def start(self) -> None:
        if self.restored is None:
            ctx = self.ctx
            self.pending = [s for s in initial_splits(ctx.client, ctx.start_position,
                                                      ctx.stopping_offsets())
                            if not s.finished]
        else:
            self.pending = list(self.restored)
        self.pending.sort(key=_partition)

    def add_reader(self, subtask: int) -> None:
        pass  # readers ask for splits

    def handle_split_request(self, subtask: int) -> None:
        if subtask not in self.ctx.registered_readers():
            return
        if self.pending:
            self.ctx.assign_split(self.pending.pop(0), subtask)
        else:
            self.ctx.signal_no_more_splits(subtask)

    def add_splits_back(self, splits: list[Split], subtask: int) -> None:
        self.pending.extend(splits)
        self.pending.sort(key=_partition)

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        return list(self.pending)

    def close(self) -> None:
        pass


def _partition(split: Split) -> int:
    return split.partition


class LogReader:
    """The built-in reader: a FileSource-style reader of log partitions.

    It asks for a split when it has none, reads its splits through the log
    client up to their stopping offsets, drops a split when it is finished and
    asks for the next; it ends when the enumerator has no more splits for it.
    """

    def open(self, ctx: ReaderContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.splits: dict[int, Split] = {}
        self.no_more = False
        self.asked = False

    def add_splits(self, splits: list[Split]) -> None:
        client = self.client
        for split in splits:
            self.splits[split.partition] = split
        client.assign(sorted(self.splits))
        for split in splits:
            client.seek(split.partition, split.offset)
        self.asked = False

    def start(self) -> None:
        self._ask()

    def _ask(self) -> None:
        if not self.splits and not self.no_more and not self.asked:
            self.asked = True
            self.ctx.send_split_request()

    def poll_next(self, out: list[Record], limit: int) -> str:
        splits = self.splits
        client = self.client
        if splits:
            done = [p for p, s in splits.items() if client.position(p) >= s.end]
            if done:
                for p in done:
                    del splits[p]
                client.assign(sorted(splits))
        if not splits:
            if self.no_more:
                return END_OF_INPUT
            self._ask()
            return NOTHING_AVAILABLE
        buf = client.poll(limit)
        if not buf:
            return NOTHING_AVAILABLE
        p = buf[0].split
        end = splits[p].end
        if buf[-1].offset >= end:
            buf = [r for r in buf if r.offset < end]
            client.seek(p, end)
        out.extend(buf)
        return MORE_AVAILABLE

    def notify_no_more_splits(self) -> None:
        self.no_more = True

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        client = self.client
        return [Split(p, client.position(p), s.end) for p, s in sorted(self.splits.items())]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        pass
