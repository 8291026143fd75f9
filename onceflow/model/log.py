"""The partitioned log the sources read, as a produced topic, and a Kafka-consumer-like client.

The log of a workload (`split_logs`) is appended to over simulated time: record
i (in generation order) gets the produce timestamp `first_produce + i *
produce_interval`, and a consumer sees only records produced at or before the
current simulated time.  Readers reach the log only through `LogClient`, shaped
like a Kafka consumer: `assign`, `seek`, `position`, `poll`, `beginning_offsets`,
`end_offsets` and `offsets_for_times`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import lru_cache
from typing import Callable, Iterable

from onceflow.model.records import Record, split_logs
from onceflow.scenario import Workload

__all__ = ["LogClient", "ProducedLog", "produced_log"]


class ProducedLog:
    """The records of every split and when each was produced (shared: never modify)."""

    __slots__ = ("logs", "timestamps", "instant")

    def __init__(self, workload: Workload) -> None:
        self.logs: list[list[Record]] = split_logs(workload)
        #: everything produced at one instant (the default): no per-record timestamps
        self.instant = workload.produce_interval == 0
        first, step = workload.first_produce, workload.produce_interval
        # record ids are "r<i>": i is the generation index, which fixes the produce time
        self.timestamps: list[list[float]] = [
            [first + int(r.id[1:]) * step for r in log] for log in self.logs]

    @property
    def partitions(self) -> int:
        return len(self.logs)

    def available(self, partition: int, now: float) -> int:
        """The end offset of `partition` at time `now` (records produced by then)."""
        if self.instant:
            return len(self.logs[partition]) if now >= self.timestamps_first(partition) else 0
        return bisect_right(self.timestamps[partition], now)

    def timestamps_first(self, partition: int) -> float:
        stamps = self.timestamps[partition]
        return stamps[0] if stamps else 0.0

    def next_arrival(self, partition: int, offset: int) -> float | None:
        """When the record at `offset` of `partition` is produced (None: there is none)."""
        stamps = self.timestamps[partition]
        return stamps[offset] if offset < len(stamps) else None


@lru_cache(maxsize=32)
def produced_log(workload: Workload) -> ProducedLog:
    return ProducedLog(workload)


class LogClient:
    """A consumer of the log, shaped like `KafkaConsumer` (manual assignment, no group).

    Positions are next offsets to read.  `poll` returns records produced by now
    from one assigned partition at a time, round-robin, advancing its position;
    each record carries its partition (`split`) and `offset`.
    """

    def __init__(self, log: ProducedLog, clock: Callable[[], float]) -> None:
        self._log = log
        self._clock = clock
        self._positions: dict[int, int] = {}
        self._order: list[int] = []
        self._turn = 0

    # -- metadata ---------------------------------------------------------------------

    def partitions(self) -> list[int]:
        """Every partition of the topic (Kafka's `partitions_for_topic`)."""
        return list(range(self._log.partitions))

    def beginning_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        return {p: 0 for p in self._check(partitions)}

    def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """The offset after the last record produced so far, per partition."""
        now = self._clock()
        return {p: self._log.available(p, now) for p in self._check(partitions)}

    def offsets_for_times(self, timestamps: dict[int, float]) -> dict[int, int | None]:
        """Per partition, the first offset produced at or after the timestamp (None: none)."""
        out: dict[int, int | None] = {}
        for p in self._check(timestamps):
            stamps = self._log.timestamps[p]
            i = bisect_left(stamps, timestamps[p])
            out[p] = i if i < len(stamps) else None
        return out

    # -- assignment and positions ----------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Read exactly these partitions (replaces the assignment; new ones start at 0)."""
        wanted = self._check(partitions)
        self._positions = {p: self._positions.get(p, 0) for p in wanted}
        self._order = sorted(self._positions)
        self._turn = 0

    def assignment(self) -> set[int]:
        return set(self._positions)

    def seek(self, partition: int, offset: int) -> None:
        if partition not in self._positions:
            raise ValueError(f"seek: partition {partition} is not assigned; assign it first")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(f"seek: offset must be an integer >= 0, got {offset!r}")
        self._positions[partition] = offset

    def position(self, partition: int) -> int:
        return self._positions[partition]

    def poll(self, max_records: int) -> list[Record]:
        """Up to `max_records` records produced by now, from the next assigned partition
        that has any; [] when none has."""
        order = self._order
        n = len(order)
        if not n:
            return []
        now = self._clock()
        log = self._log
        for _ in range(n):
            p = order[self._turn % n]
            self._turn += 1
            pos = self._positions[p]
            end = log.available(p, now)
            if pos < end:
                buf = log.logs[p][pos:min(end, pos + max_records)]
                self._positions[p] = pos + len(buf)
                return buf
        return []

    def next_arrival(self) -> float | None:
        """When the next record of any assigned partition is produced, if it is not yet
        (None: every assigned partition has all it will ever have, or data is ready)."""
        now = self._clock()
        soonest: float | None = None
        for p, pos in self._positions.items():
            t = self._log.next_arrival(p, pos)
            if t is not None and t > now and (soonest is None or t < soonest):
                soonest = t
        return soonest

    def _check(self, partitions: Iterable[int]) -> list[int]:
        out = list(partitions)
        for p in out:
            if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < self._log.partitions:
                raise ValueError(f"no partition {p!r}; the log has partitions 0.."
                                 f"{self._log.partitions - 1}")
        return out
