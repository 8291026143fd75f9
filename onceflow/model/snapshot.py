"""Snapshots: what a completed checkpoint or savepoint holds, and how it is restored.

Checkpoints and savepoints are taken by one mechanism and differ only in
`kind`.  State is kept per operator uid in a form that can be redistributed:
keyed state by key group, split offsets by split, list state as one list,
so a savepoint restores into another parallelism.  Channel state (unaligned
checkpoints) is kept per channel and restores only at the same parallelism.
"""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from onceflow.model.keygroups import key_group, key_group_range

__all__ = ["CHECKPOINT", "SAVEPOINT", "Snapshot", "assemble_state", "state_for_subtask"]

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

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def has_channel_state(self) -> bool:
        return any(self.channel_state.values())

    @property
    def in_flight_records(self) -> int:
        return sum(len(item) for items in self.channel_state.values()
                   for item in items if item.__class__ is list)


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
        offsets: dict[int, int] = {}
        for part in parts:
            offsets.update(part)
        return offsets
    if kind == "list":
        return [item for part in parts for item in part]
    raise ValueError(f"unknown state kind {kind!r}")


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
        return {s: off for s, off in merged.items() if s % parallelism == subtask}
    if kind == "list":
        n = len(merged)
        start = subtask * n // parallelism
        end = (subtask + 1) * n // parallelism
        return list(merged[start:end])
    raise ValueError(f"unknown state kind {kind!r}")
