"""Rescaling unaligned channel state: which new channel replays which in-flight data.

As Flink 2.x does it (FLINK-19801, `InflightDataRescalingDescriptor` and the
`SubtaskStateMapper` of each partitioner), for every channel `S[u] -> R[d]` of
the old job whose in-flight buffers a snapshot holds (input side `in:` and
output side `out:`):

- the old sender `u` maps to new sender `u % p'` (the upstream mapper of every
  exchange is ARBITRARY, which is round-robin: new subtask `n` reads old
  subtasks `n, n + p', ...`);
- on a hash edge the old receiver `d` maps to every new receiver whose key-group
  range overlaps `d`'s (RANGE, ambiguous) and each receiver keeps only the
  records whose key group it owns (the record filter of the virtual channels):
  so every record lands on `subtask_for_key(key, p', maxP)`;
- on a rebalance edge `d` maps to `d % p'` (ROUND_ROBIN, unique, no filter);
- forward and broadcast edges never hold channel state (their barriers align;
  Flink's mapper for them is UNSUPPORTED).  Only mutants put some there; rescaling
  it fails the restore, as in Flink ("Cannot rescale the given pointwise
  partitioner", FLINK-38267's message), which `Job.deploy` turns into a failed job.

A new channel replays all input-side state before all output-side state, each
in old channel order.  At unchanged parallelism every channel gets exactly its
own buffers back.  Only data buffers are replayed, never an end-of-input marker
in flight (Flink's `ChannelStatePersister` persists `buffer.isBuffer()` only):
a snapshot records the marker for the oracle, but the restored sender sends its
own again when its restored input ends, and it may now hold input the old one
did not (a split the old sender never had), so replaying the old marker would
end the channel before that input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onceflow.errors import RestoreError
from onceflow.model.keygroups import subtask_for_key

if TYPE_CHECKING:
    from onceflow.model.snapshot import Snapshot
    from onceflow.scenario import Topology

__all__ = ["UnsupportedRescale", "redistribute_channel_state", "split_channel_name"]


class UnsupportedRescale(RestoreError):
    """In-flight data of a pointwise (forward, broadcast) edge cannot be rescaled."""


def split_channel_name(name: str) -> tuple[str, int, str, int]:
    """`"map[1]->reduce[0]"` -> ("map", 1, "reduce", 0)."""
    sender, receiver = name.split("->", 1)
    suid, _, s = sender.rpartition("[")
    ruid, _, r = receiver.rpartition("[")
    return suid, int(s.rstrip("]")), ruid, int(r.rstrip("]"))


def redistribute_channel_state(snapshot: "Snapshot", topology: "Topology", *,
                               skip_stateless: frozenset[str] = frozenset(),
                               drop_downscaled_output: bool = False,
                               unfiltered: bool = False) -> dict[str, list[Any]]:
    """New channel name -> the in-flight items it replays first, for a job with
    `topology` restoring `snapshot` (see the module docstring).

    The keywords are mutants, each on rescaled edges only: `skip_stateless` (uids of
    stateless operators) leaves their input- and output-side state unassigned
    (FLINK-31963), `drop_downscaled_output` hands the output-side state of senders a
    downscale removes to nobody (FLINK-38544's symptom), `unfiltered` gives a hash
    edge's buffers to every receiver whose key-group range overlaps, without the
    record filter of the virtual channels (FLINK-19801, FLINK-35351).
    """
    vertices = topology.vertices
    index = {v.uid: i for i, v in enumerate(vertices)}
    maxp = topology.max_parallelism
    old_p = snapshot.parallelism
    ins: dict[str, list[Any]] = {}
    outs: dict[str, list[Any]] = {}
    for key in sorted(snapshot.channel_state, key=_channel_order):
        items = snapshot.channel_state[key]
        if not items:
            continue
        side, name = key.split(":", 1)
        suid, u, ruid, d = split_channel_name(name)
        i = index.get(ruid)
        if i is None or i == 0 or vertices[i - 1].uid != suid:
            raise RestoreError(
                f"{snapshot.label} holds in-flight data on the edge {suid} -> {ruid}, which "
                "the job no longer has; restore it into a job with that edge, or take a "
                "savepoint (savepoints are aligned: they hold no in-flight data)")
        receiver, sender = vertices[i], vertices[i - 1]
        target = ins if side == "in" else outs
        if old_p.get(ruid) == receiver.parallelism and old_p.get(suid) == sender.parallelism:
            target.setdefault(name, []).extend(items)
            continue
        if (side == "in" and ruid in skip_stateless) or (side == "out" and suid in skip_stateless):
            continue
        if drop_downscaled_output and side == "out" and u >= sender.parallelism:
            continue
        nu = u % sender.parallelism
        buffers = [item for item in items if item.__class__ is list]
        edge = receiver.edge
        if edge == "hash":
            for buf in buffers:
                if unfiltered:
                    for n in _range_overlap(d, old_p[ruid], receiver.parallelism, maxp):
                        target.setdefault(f"{suid}[{nu}]->{ruid}[{n}]", []).append(list(buf))
                    continue
                parts: dict[int, list[Any]] = {}
                for r in buf:
                    parts.setdefault(subtask_for_key(r.key, receiver.parallelism, maxp),
                                     []).append(r)
                for n in sorted(parts):
                    target.setdefault(f"{suid}[{nu}]->{ruid}[{n}]", []).append(parts[n])
        elif edge == "rebalance":
            target.setdefault(f"{suid}[{nu}]->{ruid}[{d % receiver.parallelism}]",
                              []).extend(buffers)
        elif buffers:
            raise UnsupportedRescale(
                f"{snapshot.label} holds in-flight data of the {edge} edge {suid} -> {ruid}: "
                "Cannot rescale the given pointwise partitioner (Flink keeps no channel state "
                "on pointwise edges)")
    restored: dict[str, list[Any]] = {}
    for name in sorted(set(ins) | set(outs), key=_channel_order):
        buffers = [item for item in ins.get(name, []) + outs.get(name, [])
                   if item.__class__ is list]
        if buffers:
            restored[name] = buffers
    return restored


def _range_overlap(old: int, old_p: int, new_p: int, maxp: int) -> list[int]:
    """New subtasks whose key-group range overlaps old subtask `old`'s (RANGE)."""
    lo = (old * maxp + old_p - 1) // old_p
    hi = ((old + 1) * maxp + old_p - 1) // old_p - 1
    if hi < lo:
        return []
    return list(range(lo * new_p // maxp, hi * new_p // maxp + 1))


def _channel_order(key: str) -> tuple[Any, ...]:
    name = key.split(":", 1)[-1]
    try:
        suid, u, ruid, d = split_channel_name(name)
    except ValueError:
        return (key,)
    return (ruid, suid, u, d, key)
