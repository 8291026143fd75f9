"""The trace: every event of a run, with its simulated time, and a stable digest."""

from __future__ import annotations

import hashlib
from operator import itemgetter
from typing import Any, Iterator

from onceflow.model.records import Record

__all__ = ["Trace", "store_digest"]


_ID = itemgetter(0)
_VALUE = itemgetter(2)


def _records(buf: list[Record]) -> str:
    # The ids exactly, the values as a checksum (their sum): a user operator that
    # emits other values on a second run of the same scenario (a global counter,
    # `random`) changes the digest, for less than twice the cost of the ids alone
    # (writing every value out would triple it).
    try:
        values = repr(sum(map(_VALUE, buf)))
    except TypeError:  # a user operator's values need not be numbers
        values = repr(list(map(_VALUE, buf)))
    return "[" + ",".join(map(_ID, buf)) + "]=" + values


def _canonical(value: Any) -> str:
    if isinstance(value, Record):
        return f"{value.id}={value.value!r}"
    if value.__class__ is list and value and value[0].__class__ is Record:
        return _records(value)  # the hot case: a buffer of records (never mixed)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"trace details must be plain values, got {type(value).__name__}")


class Trace:
    """An append-only list of `(time, kind, where, detail)` events.

    `where` names a subtask (`"map[1]"`), `"coordinator"`, `"store"` or `"job"`;
    `detail` is a tuple of plain values (record buffers appear in the digest as
    their ids and the sum of their values, so it covers the values that flow).
    No SimPy object ever enters a trace.
    """

    __slots__ = ("events", "_digest")

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, tuple[Any, ...]]] = []
        self._digest: str | None = None

    def add(self, time: float, kind: str, where: str, *detail: Any) -> None:
        self.events.append((time, kind, where, detail))

    def __iter__(self) -> Iterator[tuple[float, str, str, tuple[Any, ...]]]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def of_kind(self, *kinds: str) -> list[tuple[float, str, str, tuple[Any, ...]]]:
        return [e for e in self.events if e[1] in kinds]

    def digest(self) -> str:
        """A hex digest that depends only on the events, not on the process that made them."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            for time, kind, where, detail in self.events:  # _line, inlined
                h.update(f"{time!r}|{kind}|{where}|{_canonical(detail)}\n".encode())
            self._digest = h.hexdigest()
        return self._digest

    def first_difference(self, other: "Trace") -> int | None:
        """The index of the first event that differs (as the digest sees it) from
        `other`'s; None when both traces digest alike."""
        for i, (a, b) in enumerate(zip(self.events, other.events)):
            if a is not b and _line(a) != _line(b):
                return i
        if len(self.events) != len(other.events):
            return min(len(self.events), len(other.events))
        return None


def store_digest(ops: list[tuple[Any, ...]]) -> str:
    """A digest of a store's operation log: every write, commit and abort a run's sinks
    made, with record buffers as their ids and value checksums (as in the trace)."""
    h = hashlib.blake2b(digest_size=16)
    for op in ops:
        try:
            line = _canonical(op)
        except TypeError:  # a value only a user sink knows: its type, never its repr (id())
            line = "[" + ",".join(_safe(v) for v in op) + "]"
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def _safe(value: Any) -> str:
    try:
        return _canonical(value)
    except TypeError:
        return f"<{type(value).__name__}>"


def _line(event: tuple[float, str, str, tuple[Any, ...]]) -> bytes:
    time, kind, where, detail = event
    return f"{time!r}|{kind}|{where}|{_canonical(detail)}\n".encode()
