"""A keyed operator: the running count of records per key.

`KeyedCounter(bug=True)` plants a classic state bug: `snapshot_state` hands the
runtime its live dict instead of a copy, so records processed after the
snapshot leak into the stored state.  A restore then counts them twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from onceflow import Record

__all__ = ["KeyedCounter", "counter_fold"]


class KeyedCounter:
    """Emits each record with value = how many records of its key were seen so far."""

    state_kind: ClassVar[str | None] = "keyed"

    def __init__(self, bug: bool = False) -> None:
        self.bug = bug

    def open(self, ctx: Any, restored: Any) -> None:
        self.counts: dict[int, int] = dict(restored or {})

    def process(self, records: list[Record], out: list[Record]) -> None:
        counts = self.counts
        for r in records:
            counts[r.key] = counts.get(r.key, 0) + 1
            out.append(r._replace(value=counts[r.key]))

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        if self.bug:
            return self.counts  # the planted bug: the live dict, mutated after the snapshot
        return dict(self.counts)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


def counter_fold(param: int, records: list[Record], state: dict[Any, Any]) -> list[Record]:
    """The oracle: the same count, as a plain fold over one key's records in order."""
    out = []
    for r in records:
        state[r.key] = state.get(r.key, 0) + 1
        out.append(r._replace(value=state[r.key]))
    return out
