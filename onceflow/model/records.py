"""What flows through channels: records, barriers and the end-of-input marker."""

from __future__ import annotations

import random
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

from attrs import frozen

from onceflow.scenario import Workload

__all__ = ["Barrier", "CancelMarker", "EndOfInput", "EndOfPartition", "Record", "END_OF_INPUT",
           "END_OF_PARTITION", "split_logs"]


class Record(NamedTuple):
    """One record: a unique id, its key and value, and the log position it came from.

    A tuple rather than an attrs class: records are the hot path.  It is frozen
    and its repr is its reproduction all the same.
    """

    id: str
    key: int
    value: int
    split: int
    offset: int


@frozen
class Barrier:
    """Checkpoint barrier `id`; `kind` is "checkpoint" or "savepoint"; `timestamp` is
    when the coordinator triggered it (an aligned-checkpoint timeout counts from it)."""

    id: int
    kind: str = "checkpoint"
    timestamp: float = 0.0


@frozen
class CancelMarker:
    """Snapshot `id` was given up upstream (Flink's `CancelCheckpointMarker`): a task
    aligning on it stops waiting, and passes the marker on."""

    id: int


@frozen
class EndOfInput:
    """Sent on every channel once a sender has no more records."""


END_OF_INPUT = EndOfInput()


@frozen
class EndOfPartition:
    """Sent on every channel when its sender finished (after its final checkpoint and
    once every receiver processed its end of input): no barrier comes on this channel
    any more, so alignment stops waiting for it (Flink's EndOfPartitionEvent, FLIP-147)."""


END_OF_PARTITION = EndOfPartition()


@lru_cache(maxsize=32)
def split_logs(workload: Workload) -> list[list[Record]]:
    """The bounded, replayable partitioned log the sources read: one list per split.

    Key k lives in split k mod splits (as with keyed Kafka partitions), so the
    records of one key keep their order within one split.  The lists are
    shared (cached per workload): never modify them.
    """
    rng = random.Random(workload.seed)
    keys = range(workload.keys)
    weights = list(accumulate(1.0 / (k + 1) ** workload.skew for k in keys))
    drawn = rng.choices(keys, cum_weights=weights, k=workload.records)
    logs: list[list[Record]] = [[] for _ in range(workload.splits)]
    for i, key in enumerate(drawn):
        log = logs[key % workload.splits]
        log.append(Record(f"r{i}", key, rng.randint(1, 100), key % workload.splits, len(log)))
    return logs
