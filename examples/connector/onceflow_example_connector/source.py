"""An example source: a reader of the log with a fetch buffer, and its planted bug.

Like the readers of Kafka connectors, it fetches more records than it emits in
one call and emits the rest from its buffer.  With `bug=True` it snapshots the
consumer's position (where the next fetch starts) instead of the offset after
the last record it emitted: after a restore the records that sat in the
buffer at the snapshot are never read again (lost).  Written through the
public source protocol only (`onceflow.model.SourceReader`).
"""

from __future__ import annotations

from typing import Any

from onceflow.model import END_OF_INPUT, MORE_AVAILABLE, NOTHING_AVAILABLE, Record, Split

__all__ = ["BufferedLogReader"]


class BufferedLogReader:
    """Reads the splits it is given, fetching `fetch` times the emitted batch at once."""

    def __init__(self, *, bug: bool = False, fetch: int = 3) -> None:
        self.bug = bug
        self.fetch = fetch

    def open(self, ctx: Any) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.splits: dict[int, Split] = {}
        self.emitted: dict[int, int] = {}  # per split: the offset after the last emitted
        self.buffer: list[Record] = []
        self.no_more = False
        self.asked = False

    def add_splits(self, splits: list[Split]) -> None:
        for split in splits:
            self.splits[split.partition] = split
            self.emitted[split.partition] = split.offset
        self.client.assign(sorted(self.splits))
        for split in splits:
            self.client.seek(split.partition, split.offset)
        self.asked = False

    def start(self) -> None:
        self._ask()

    def _ask(self) -> None:
        if not self.splits and not self.no_more and not self.asked:
            self.asked = True
            self.ctx.send_split_request()

    def poll_next(self, out: list[Record], limit: int) -> str:
        if not self.buffer:
            done = [p for p, s in self.splits.items() if self.emitted[p] >= s.end]
            for p in done:
                del self.splits[p], self.emitted[p]
            if done:
                self.client.assign(sorted(self.splits))
            if not self.splits:
                if self.no_more:
                    return END_OF_INPUT
                self._ask()
                return NOTHING_AVAILABLE
            self.buffer = [r for r in self.client.poll(self.fetch * limit)
                           if r.offset < self.splits[r.split].end]
            if not self.buffer:
                return NOTHING_AVAILABLE
        batch, self.buffer = self.buffer[:limit], self.buffer[limit:]
        for r in batch:
            self.emitted[r.split] = r.offset + 1
        out.extend(batch)
        return MORE_AVAILABLE

    def notify_no_more_splits(self) -> None:
        self.no_more = True

    def snapshot_state(self, checkpoint_id: int) -> list[Split]:
        if self.bug:  # the planted bug: where the next fetch starts, not what was emitted
            return [Split(p, self.client.position(p), s.end) for p, s in sorted(self.splits.items())]
        return [Split(p, self.emitted[p], s.end) for p, s in sorted(self.splits.items())]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def close(self) -> None:
        self.buffer = []
