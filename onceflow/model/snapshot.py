"""Snapshots: what a completed checkpoint or savepoint holds, and how it is restored.

Checkpoints and savepoints are taken by one mechanism and differ only in
`kind`.  State is kept per operator uid in a form that can be redistributed:
keyed state by key group, source splits by partition (remembering which subtask
held each), list state as one list per old subtask (Flink's operator list state:
each subtask gets its own list back at unchanged parallelism; on a rescale the
items are split round-robin, as `RoundRobinOperatorStateRepartitioner` does).
A source reader's splits are operator list state in Flink (`SourceOperator`'s
"SourceReaderState"), so they follow the same rule.  Channel state (unaligned
checkpoints) is kept per channel.
"""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from onceflow.model.keygroups import key_group, key_group_range

__all__ = ["CHECKPOINT", "SAVEPOINT", "Snapshot", "SplitState", "assemble_state", "list_union",
           "split_list_state", "state_for_subtask"]

CHECKPOINT = "checkpoint"
SAVEPOINT = "savepoint"


@frozen(eq=False)
class Snapshot:
    """A completed snapshot of a run; restorable with `onceflow.restore`.

    `store_version` marks the external store as it stood when the snapshot
    completed, so a restore forks the store at that moment.
    """

    id: int
    kind: str
    triggered: float
    completed: float
    mode: str
    parallelism: dict[str, int] = field(repr=False)
    max_parallelism: int = field(repr=False)
    state: dict[str, Any] = field(repr=False)
    channel_state: dict[str, list[Any]] = field(repr=False)
    store_version: int = field(repr=False)
    run: str = field(repr=False)
    stop: bool = False
    timeline: int = 0
    input_ended: bool = False  # every source had sent end-of-input before its barrier
    #: operator coordinators' state per source uid: the splits its enumerator held
    coordinator_state: dict[str, Any] = field(factory=dict, repr=False)
    #: the subtasks (`uid[i]`) that had finished before the snapshot (FLIP-147): they hold
    #: no state (Flink's FinishedOperatorSubtaskState)
    finished: frozenset[str] = field(factory=frozenset, repr=False)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"

    def fully_finished(self, uid: str) -> bool:
        """Had every subtask of operator `uid` finished (Flink's FullyFinishedOperatorState)?
        Its tasks then finish at once on restore, at any parallelism, without running."""
        n = self.parallelism.get(uid, 0)
        return n > 0 and all(f"{uid}[{s}]" in self.finished for s in range(n))

    @property
    def has_channel_state(self) -> bool:
        return any(self.channel_state.values())

    @property
    def in_flight_records(self) -> int:
        return sum(len(item) for items in self.channel_state.values()
                   for item in items if item.__class__ is list)


class SplitState(dict):  # type: ignore[type-arg]
    """A source operator's split state: partition -> split over all its subtasks, plus
    `owners` (partition -> the subtask whose state held it) and `parallelism` (how
    many subtasks the state was taken from), so that a restore at unchanged
    parallelism gives each subtask its own splits back."""

    def __init__(self, splits: Any = (), owners: dict[Any, int] | None = None,
                 parallelism: int = 0) -> None:
        super().__init__(splits)
        self.owners: dict[Any, int] = dict(owners or {})
        self.parallelism = parallelism

    def __reduce__(self) -> Any:
        return (SplitState, (dict(self), self.owners, self.parallelism))

    def without(self, partition: Any) -> "SplitState":
        """This state with `partition`'s split dropped."""
        return SplitState({p: s for p, s in self.items() if p != partition},
                          {p: o for p, o in self.owners.items() if p != partition},
                          self.parallelism)

    def per_subtask(self) -> list[list[Any]]:
        """The partitions each old subtask held, in old subtask order (each in the order
        its reader listed them)."""
        out: list[list[Any]] = [[] for _ in range(self.parallelism)]
        for p in self:
            out[self.owners[p]].append(p)
        return out


def assemble_state(kind: str | None, parts: list[Any], max_parallelism: int) -> Any:
    """Merge the states of all subtasks of one operator (in subtask order)."""
    if kind is None:
        return None
    if kind == "keyed":
        groups: dict[int, dict[Any, Any]] = {}
        for part in parts:
            for key, value in part.items():
                groups.setdefault(key_group(key, max_parallelism), {})[key] = value
        return groups
    if kind == "splits":
        offsets = SplitState(parallelism=len(parts))
        for subtask, part in enumerate(parts):
            for p, split in part.items():
                offsets[p] = split
                offsets.owners[p] = subtask
        return offsets
    if kind == "list":
        return tuple(list(part or ()) for part in parts)
    raise ValueError(f"unknown state kind {kind!r}")


def list_union(merged: Any) -> list[Any]:
    """Every item of a list state, in old subtask order (Flink's union list state)."""
    if merged is None:
        return []
    return [item for part in merged for item in part]


def split_list_state(merged: Any, subtask: int, parallelism: int) -> list[Any]:
    """The items of list state `merged` (one list per old subtask) that subtask
    `subtask` of `parallelism` restores.

    At unchanged parallelism each subtask gets its own list back.  On a rescale
    the items, in old subtask order, are cut into consecutive runs: every new
    subtask gets len // parallelism items and the first len % parallelism one
    more (Flink's `RoundRobinOperatorStateRepartitioner`, SPLIT_DISTRIBUTE).
    """
    if len(merged) == parallelism:
        return list(merged[subtask])
    items = list_union(merged)
    base, extra = divmod(len(items), parallelism)
    start = subtask * base + min(subtask, extra)
    return items[start:start + base + (1 if subtask < extra else 0)]


def state_for_subtask(kind: str | None, merged: Any, subtask: int, parallelism: int,
                      max_parallelism: int) -> Any:
    """The share of merged state that subtask `subtask` of `parallelism` restores."""
    if kind is None or merged is None:
        return None
    if kind == "keyed":
        out: dict[Any, Any] = {}
        for kg in key_group_range(subtask, parallelism, max_parallelism):
            group = merged.get(kg)
            if group:
                out.update(group)
        return out
    if kind == "splits":
        if not isinstance(merged, SplitState):  # a plain dict: nothing says who held what
            return {s: off for s, off in merged.items() if s % parallelism == subtask}
        # Flink's list-state rule: own splits back at unchanged parallelism, else the
        # splits in old subtask order cut into consecutive runs (SPLIT_DISTRIBUTE)
        mine = split_list_state(merged.per_subtask(), subtask, parallelism)
        return {p: merged[p] for p in mine}
    if kind == "list":
        return split_list_state(merged, subtask, parallelism)
    raise ValueError(f"unknown state kind {kind!r}")
