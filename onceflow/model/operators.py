"""The operator protocol (shaped like Flink's) and the built-in operators.

An operator processes whole buffers: `process(records, out)` appends its
output to `out`.  Its state is what `snapshot_state` returns; what it gets
back in `open` depends on `state_kind`:

- ``None``: stateless; `open` gets None.
- ``"keyed"``: a dict key -> value; the runtime splits it into key groups and
  hands each subtask the keys of the key groups it owns after a restore.
- ``"list"``: a list of items (Flink's operator list state); on restore each
  subtask gets its own list back at unchanged parallelism; on a rescale the
  lists of all old subtasks are concatenated and cut into consecutive runs
  (the first subtasks get one more), as Flink's round-robin repartitioner.
  Every subtask also gets the union of all lists (`ctx.restored_union`); an
  operator that reads it declares ``union_state = True`` (Flink's union list
  state): then no checkpoint completes while it is partly finished (FLINK-21080),
  so all its subtasks finish on one final checkpoint.

The same protocol serves the built-in operators, the sinks, and any operator
a user plugs in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from onceflow.model.records import Record

if TYPE_CHECKING:
    from onceflow.model.task import OperatorContext

__all__ = [
    "FilterOperator",
    "FlatMapOperator",
    "MapOperator",
    "Operator",
    "ReduceOperator",
    "TallyOperator",
    "WindowOperator",
]


@runtime_checkable
class Operator(Protocol):
    state_kind: ClassVar[str | None]

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        """Initialise state, from `restored` (None on a fresh start)."""

    def process(self, records: list[Record], out: list[Record]) -> None:
        """Process one buffer of input records, appending output records to `out`."""

    def end_input(self, out: list[Record]) -> None:
        """All input has been seen: emit what is still held (windows fire)."""

    def snapshot_state(self, checkpoint_id: int) -> Any:
        """The state to store in snapshot `checkpoint_id` (the synchronous part)."""

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Snapshot `checkpoint_id` completed; may stand for every earlier one too."""

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        """Snapshot `checkpoint_id` was aborted; its data is *not* to be discarded."""

    # An operator may also define `close()`, called once when its task finished for good.


class _Stateless:
    state_kind: ClassVar[str | None] = None

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class MapOperator(_Stateless):
    """value -> value + addend."""

    def __init__(self, addend: int) -> None:
        self.addend = addend

    def process(self, records: list[Record], out: list[Record]) -> None:
        add = self.addend
        new = tuple.__new__
        out.extend([new(Record, (r[0], r[1], r[2] + add, r[3], r[4])) for r in records])


class FilterOperator(_Stateless):
    """Keeps records whose value is a multiple of `modulus`."""

    def __init__(self, modulus: int) -> None:
        self.modulus = modulus

    def process(self, records: list[Record], out: list[Record]) -> None:
        m = self.modulus
        out.extend([r for r in records if r.value % m == 0])


class FlatMapOperator(_Stateless):
    """Each record becomes `fanout` records `<id>.<i>` with value + i."""

    def __init__(self, fanout: int) -> None:
        self.fanout = fanout

    def process(self, records: list[Record], out: list[Record]) -> None:
        for r in records:
            for i in range(self.fanout):
                out.append(Record(f"{r.id}.{i}", r.key, r.value + i, r.split, r.offset))


class TallyOperator:
    """Passes records on and counts them per subtask in union list state, as Flink's
    legacy sources keep their offsets: on restore each subtask takes its own entries
    from the union of all subtasks' lists (so it declares `union_state`)."""

    state_kind: ClassVar[str | None] = "list"
    union_state: ClassVar[bool] = True

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.subtask = ctx.subtask
        self.seen = sum(n for s, n in ctx.restored_union or () if s == ctx.subtask)

    def process(self, records: list[Record], out: list[Record]) -> None:
        self.seen += len(records)
        out.extend(records)

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return [(self.subtask, self.seen)]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class ReduceOperator:
    """A running sum per key; emits the new sum under the input record's id."""

    state_kind: ClassVar[str | None] = "keyed"

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx
        self.sums: dict[int, int] = dict(restored) if restored else {}

    def process(self, records: list[Record], out: list[Record]) -> None:
        sums = self.sums
        append = out.append
        new = tuple.__new__
        for r in records:
            key = r[1]
            total = sums.get(key, 0) + r[2]
            sums[key] = total
            append(new(Record, (r[0], key, total, r[3], r[4])))

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return dict(self.sums)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class WindowOperator:
    """A tumbling count window per key: every `size` records emit their sum.

    The window's output id is `w<key>.<n>` (its n-th window), so it is stable
    under replay.  At end of input the partial windows fire, as event-time
    windows do when the final watermark passes.
    """

    state_kind: ClassVar[str | None] = "keyed"

    def __init__(self, size: int) -> None:
        self.size = size

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx
        # key -> (records in the open window, their sum, windows fired, last record)
        self.windows: dict[int, tuple[int, int, int, Record | None]] = (
            dict(restored) if restored else {})

    def process(self, records: list[Record], out: list[Record]) -> None:
        windows = self.windows
        size = self.size
        for r in records:
            count, total, fired, _ = windows.get(r.key, (0, 0, 0, None))
            count += 1
            total += r.value
            if count == size:
                out.append(Record(f"w{r.key}.{fired}", r.key, total, r.split, r.offset))
                windows[r.key] = (0, 0, fired + 1, None)
            else:
                windows[r.key] = (count, total, fired, r)

    def end_input(self, out: list[Record]) -> None:
        for key in sorted(self.windows):
            count, total, fired, last = self.windows[key]
            if count and last is not None:
                out.append(Record(f"w{key}.{fired}", key, total, last.split, last.offset))
                self.windows[key] = (0, 0, fired + 1, None)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return dict(self.windows)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass
