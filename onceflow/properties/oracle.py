"""The oracle: the expected output, computed from the input and the operator functions.

It never runs the simulation: a plain sequential fold per key over the
split logs.  It shares nothing with the model but the input generator and the
definition of what each built-in operator does.
"""

from __future__ import annotations

from typing import Any

from onceflow.errors import OperatorError, ProtocolError
from onceflow.model.records import Record, split_logs
from onceflow.model.usercode import check_output, fold_traceback, innermost, short, text
from onceflow.registry import OPERATORS
from onceflow.scenario import Scenario, Topology

__all__ = ["canonical", "cut_offsets", "expected_output", "expected_state", "order_fixed",
           "start_offsets"]


def _apply(kind: str, param: int, records: list[Record], state: dict[Any, Any]) -> list[Record]:
    """One vertex over the records of one key, in order: the operator's registered fold."""
    if kind in ("sink", "source"):
        return list(records)
    spec = OPERATORS[kind]
    if spec.builtin:
        return list(spec.fold(param, records, state))
    return _user_fold(kind, param, records, state)


def _user_fold(kind: str, param: int, records: list[Record],
               state: dict[Any, Any]) -> list[Record]:
    """A registered operator's fold; what it raises or returns instead of records is an
    error of that operator's oracle, not a verdict on the run."""
    try:
        out = list(OPERATORS[kind].fold(param, records, state))
        check_output(out, "fold")
    except Exception as exc:
        what = (str(exc) if isinstance(exc, ProtocolError)
                else f"raised {type(exc).__name__}: {text(str(exc), 160)}")
        frames = fold_traceback(exc)
        raise OperatorError(
            f"the fold (oracle) of operator kind {short(kind)} {what}{innermost(frames)}; fix "
            "the fold: it computes the expected output", component=f"fold of {short(kind)}",
            traceback=frames) from None
    return out




def start_offsets(scenario: Scenario) -> dict[int, int]:
    """Where each split's input starts, from the start position the scenario declares
    and the log alone (never from what a reader or enumerator claims).

    A record is in the log at time t when it was produced at or before t; the job
    starts at t=0.  "latest" starts after every record produced by then,
    "timestamp" at the first record produced at or after the timestamp.
    """
    w = scenario.workload
    start = scenario.start_position
    out: dict[int, int] = {}
    for split, log in enumerate(split_logs(w)):
        stamps = [w.first_produce + int(r.id[1:]) * w.produce_interval for r in log]
        if start.mode == "earliest":
            out[split] = 0
        elif start.mode == "latest":
            out[split] = sum(1 for t in stamps if t <= 0.0)
        else:
            out[split] = next((i for i, t in enumerate(stamps) if t >= start.timestamp),
                              len(log))
    return out


def cut_offsets(scenario: Scenario, snapshot: Any) -> dict[int, int]:
    """How far a snapshot has read each split: a reader's split offset, else the
    offset of a split its enumerator still held, else the split's end (finished)."""
    source = scenario.topology.vertices[0].uid
    out = {split: len(log) for split, log in enumerate(split_logs(scenario.workload))}
    for split in snapshot.coordinator_state.get(source) or ():
        out[split.partition] = split.offset
    for partition, split in (snapshot.state.get(source) or {}).items():
        out[partition] = split.offset
    return out


def _inputs(scenario: Scenario, offsets: dict[int, int] | None) -> dict[int, list[Record]]:
    per_key: dict[int, list[Record]] = {}
    starts = start_offsets(scenario)
    for split, log in enumerate(split_logs(scenario.workload)):
        end = len(log) if offsets is None else offsets.get(split, len(log))
        for r in log[starts[split]:end]:
            per_key.setdefault(r.key, []).append(r)
    return per_key


def _fold(scenario: Scenario, key: int, records: list[Record], end_of_input: bool,
          states: dict[str, dict[int, Any]] | None = None) -> list[Record]:
    """One key's records through every vertex, in order; keyed state into `states`."""
    for v in scenario.topology.vertices[1:]:
        state: dict[Any, Any] = {}
        if v.edge == "broadcast":
            records = [r for r in records for _ in range(v.parallelism)]
        records = _apply(v.kind, v.param, records, state)
        flush = OPERATORS[v.kind].flush if v.kind in OPERATORS else None
        if flush is not None and end_of_input:
            records = records + list(flush(v.param, key, state))
        if states is not None and v.keyed and key in state:
            states[v.uid][key] = state[key]
    return records


def expected_output(scenario: Scenario, offsets: dict[int, int] | None = None,
                    *, end_of_input: bool = True) -> dict[int, list[Record]]:
    """Per key, the records a fault-free exactly-once run commits, in order.

    The input of each split starts where the scenario's start position says;
    `offsets` ends it early (a stop-with-savepoint);
    `end_of_input=False` leaves the open windows unfired (a stop without drain).
    """
    cache_key = None
    if offsets is None:  # the whole input: the same for every timeline of a run (cached)
        cache_key = (scenario, end_of_input,
                     tuple(OPERATORS.get(v.kind) for v in scenario.topology.vertices))
        hit = _OUTPUTS.get(cache_key)
        if hit is not None:
            return hit
    result: dict[int, list[Record]] = {}
    for key, records in sorted(_inputs(scenario, offsets).items()):
        out = _fold(scenario, key, records, end_of_input)
        if out:
            result[key] = out
    if cache_key is not None:
        if len(_OUTPUTS) >= 4:
            _OUTPUTS.clear()
        _OUTPUTS[cache_key] = result
    return result


#: expected_output of the whole input for the last few scenarios (read-only results)
_OUTPUTS: dict[Any, dict[int, list[Record]]] = {}


def expected_state(scenario: Scenario, offsets: dict[int, int], *,
                   end_of_input: bool = False,
                   in_flight: frozenset[str] = frozenset()) -> dict[str, dict[int, Any]]:
    """Keyed state of every keyed operator after exactly the input prefix `offsets`
    (and the end of input, when it was reached: windows fired).

    `in_flight` names input records (by id) that had not reached the operator
    yet: an unaligned snapshot keeps them as channel state instead.
    """
    states: dict[str, dict[int, Any]] = {v.uid: {} for v in scenario.topology.vertices if v.keyed}
    for key, records in sorted(_inputs(scenario, offsets).items()):
        if in_flight:
            records = [r for r in records if r.id not in in_flight]
        _fold(scenario, key, records, end_of_input, states)
    return states


def order_fixed(topology: Topology) -> bool:
    """Does the topology fix the order of each key's records at the sink?"""
    return all(v.edge in ("forward", "hash") for v in topology.vertices[1:])


def canonical(records: list[Record], topology: Topology, *,
              windows_closed: bool = True, ordered: bool | None = None) -> dict[int, Any]:
    """The comparable form of an output: exact where the topology fixes order.

    - Order fixed (only forward and hash edges): per key, the sequence of
      (id, value) in commit order.
    - Otherwise, per key: the sorted (id, value) pairs of records whose value
      does not depend on order, and for records produced downstream of a
      keyed operator fed out of order only the sorted ids plus the keyed
      aggregate its registration declares order-independent ("max": the largest
      value, a reduce's running sum; "sum", or nothing declared: the total of its
      outputs once every window fired, `windows_closed=False` for a job stopped
      before its end of input).

    `ordered=False` compares as if order were not fixed (an operator's list state moved
    between subtasks by a rescale, see `checks.list_state_moved`).
    """
    per_key: dict[int, list[Record]] = {}
    for r in records:
        per_key.setdefault(r.key, []).append(r)
    if order_fixed(topology) if ordered is None else ordered:
        return {k: [(r.id, r.value) for r in rs] for k, rs in per_key.items()}
    last_keyed = _order_dependent_keyed(topology)
    if last_keyed is None:
        return {k: sorted((r.id, r.value) for r in rs) for k, rs in per_key.items()}
    out: dict[int, Any] = {}
    for k, rs in per_key.items():
        ids = sorted(r.id for r in rs)
        values = [r.value for r in rs]
        if OPERATORS[last_keyed].aggregate == "max":
            aggregate: Any = max(values)
        else:
            # windows fed out of order: their sums add up to the key's total only once
            # every window fired (end of input); before, the open window's share varies
            aggregate = sum(values) if windows_closed else None
        out[k] = (ids, aggregate)
    return out


def _order_dependent_keyed(topology: Topology) -> str | None:
    """The kind of the last keyed operator whose input order is timing-dependent."""
    shuffled = False
    kind = None
    for v in topology.vertices[1:]:
        if v.edge in ("rebalance", "broadcast"):
            shuffled = True
        if v.keyed and shuffled:
            kind = v.kind
        elif kind is not None and _changes_ids(v.kind):
            raise ValueError(
                "canonical form: a filter or flat_map after a keyed operator fed out of order "
                "makes even the set of output ids timing-dependent; move it before the "
                "keyed operator or use hash edges")
    return kind



def _changes_ids(kind: str) -> bool:
    """Can this vertex drop or multiply its input records (so that which ids leave it
    depends on the values it sees)?  As its registration declares (`ids`); an operator
    that declares nothing may."""
    spec = OPERATORS.get(kind)
    return spec is not None and spec.changes_ids
