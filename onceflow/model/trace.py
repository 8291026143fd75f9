"""The trace: every event of a run, with its simulated time, and a stable digest."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from onceflow.model.records import Record

__all__ = ["Trace"]


def _canonical(value: Any) -> str:
    if isinstance(value, Record):
        return value.id
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
    `detail` is a tuple of plain values (record buffers appear as record ids in
    the digest).  No SimPy object ever enters a trace.
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
            for time, kind, where, detail in self.events:
                h.update(f"{time!r}|{kind}|{where}|{_canonical(detail)}\n".encode())
            self._digest = h.hexdigest()
        return self._digest
