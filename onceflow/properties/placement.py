"""Partitioning: every record is processed by the subtask its edge routes it to.

Flink's rescaling tests check key-group placement after a restore; this is the
same check over the whole trace.  The expected subtask is computed here from
the job graph alone, with its own copy of Flink's key-group formula
(`MathUtils.murmurHash(key.hashCode()) % maxParallelism`, times parallelism over
max parallelism), never by asking the model:

- a hash edge routes a key to ``kg * p // maxP``;
- a forward edge keeps the subtask index of the record's upstream subtask,
  which for the source is the subtask that read the record (the latest read of
  it in the trace: the split enumerator decides which reader holds a split);
- rebalance and broadcast edges leave the subtask open.

A record processed elsewhere (for example in-flight data of a forward channel
replayed into the neighbouring subtask after a restore, FLINK-21945) is
``misrouted``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import evolve

from onceflow.properties.violation import issue

if TYPE_CHECKING:
    from onceflow.model.simulation import RunResult
    from onceflow.scenario import Topology

__all__ = ["expected_subtask", "partitioning"]


def _java_hash(key: Any) -> int:
    """Java's hashCode of the key (Integer, Long beyond 32 bits, String, Boolean)."""
    if isinstance(key, bool):
        return 1231 if key else 1237
    if isinstance(key, int):
        if -(1 << 31) <= key < (1 << 31):
            return key
        return _signed((key ^ ((key & ((1 << 64) - 1)) >> 32)) & 0xFFFFFFFF)
    if isinstance(key, str):
        h = 0
        raw = key.encode("utf-16-le", "surrogatepass")
        for i in range(0, len(raw), 2):
            h = (h * 31 + raw[i] + 256 * raw[i + 1]) % (1 << 32)
        return _signed(h)
    if isinstance(key, tuple):
        h = 0
        for item in key:
            h = (h * 31 + (0 if item is None else _java_hash(item))) % (1 << 32)
        return _signed(h)
    if key is None:
        return 0
    raise TypeError(f"the partitioning property cannot hash a key of type {type(key).__name__}")


def _signed(u: int) -> int:
    return u - (1 << 32) if u >= (1 << 31) else u


def _flink_murmur(code: int) -> int:
    """MathUtils.murmurHash: one murmur3 round over a 4-byte input, then abs()."""
    mask = (1 << 32) - 1
    k = (code * 0xCC9E2D51) & mask
    k = ((k << 15) | (k >> 17)) & mask
    k = (k * 0x1B873593) & mask
    h = ((k << 13) | (k >> 19)) & mask
    h = (h * 5 + 0xE6546B64) & mask
    h ^= 4
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h ^= h >> shift
        h = (h * factor) & mask
    h = _signed(h ^ (h >> 16))
    return 0 if h == -(1 << 31) else abs(h)


def _key_subtask(key: Any, parallelism: int, max_parallelism: int) -> int:
    return (_flink_murmur(_java_hash(key)) % max_parallelism) * parallelism // max_parallelism


def expected_subtask(topology: "Topology", vertex_index: int, key: int, split: int,
                     reader: int | None = None) -> int | None:
    """The subtask of vertex `vertex_index` that must process a record (None: any);
    `reader` is the source subtask that read it (None: unknown)."""
    vertices = topology.vertices
    i = vertex_index
    while i > 0 and vertices[i].edge == "forward":
        i -= 1
    vertex = vertices[i]
    if i == 0:
        return reader
    if vertex.edge == "hash":
        return _key_subtask(key, vertex.parallelism, topology.max_parallelism)
    return None


def partitioning(result: "RunResult") -> None:
    """No record is processed by a subtask its edges do not route it to."""
    from onceflow.properties.checks import _finding, held_records, list_state_moved  # noqa: PLC0415

    topology = result.scenario.topology
    index = {v.uid: i for i, v in enumerate(topology.vertices)}
    read_by: dict[str, int] = {}
    # records an operator held in list state that a rescale redistributed are emitted
    # by whichever subtask restored them (as in Flink): their path is not the edges'
    moved = (held_records(topology, result.restored_from)
             if result.restored_from is not None and list_state_moved(result) else frozenset())
    for time, kind, where, detail in result.trace:
        if kind == "read":
            subtask = int(where.partition("[")[2].rstrip("]"))
            for record in _records(detail):
                read_by[record.id] = subtask
            continue
        if kind != "process":
            continue
        uid, _, rest = where.partition("[")
        i = index.get(uid)
        if not i:
            continue
        subtask = int(rest.rstrip("]"))
        for record in _records(detail):
            if record.id in moved:
                continue
            want = expected_subtask(topology, i, record.key, record.split,
                                    read_by.get(record.id.partition(".")[0]))
            if want is not None and want != subtask:
                vertex = topology.vertices[i]
                committed = sum(1 for r in result.store.read_committed(result.end_time)
                                if r.id == record.id)
                found = issue(record, 1, committed, result)
                found = evolve(found, events=(
                    f"processed by {where} at t={time:g}, but its {vertex.edge} edge "
                    f"routes it to {uid}[{want}]",) + found.events)
                raise _finding(result, "partitioning", "misrouted",
                               f"{record.id} (key {record.key}, split "
                               f"{record.split}) reached {where}, expected {uid}[{want}]",
                               records=(found,))


def _records(detail: tuple[Any, ...]) -> list[Any]:
    batch = detail[0] if detail else ()
    return [r for r in batch if hasattr(r, "split")]
