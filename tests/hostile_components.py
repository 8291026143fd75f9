"""User components that fail, one per hook (a plugin module for the tests of issue 14).

`register()` registers them; `unregister()` removes them again.  As a plugin
(`--plugin hostile_components`) it registers them on import.
"""

from __future__ import annotations

import random
from typing import Any

from onceflow.model.sinks import AppendSink
from onceflow.registry import OPERATORS, SINKS, register_operator, register_sink

NAMES = ["init", "open", "process", "none", "str", "end_input", "snapshot", "list",
         "wrongkind", "notify"]


class Base:
    state_kind: Any = "keyed"
    fail = ""

    def __init__(self, param: int = 0) -> None:
        if self.fail == "init":
            raise RuntimeError("init boom")

    def open(self, ctx: Any, restored: Any) -> None:
        if self.fail == "open":
            raise RuntimeError("open boom")
        self.counts = dict(restored or {})

    def process(self, records: list[Any], out: list[Any]) -> None:
        if self.fail == "process":
            raise RuntimeError("process boom\nTraceback (most recent call last):")
        if self.fail == "none":
            out.append(None)
            return
        if self.fail == "str":
            out.append("hello")
            return
        for r in records:
            self.counts[r.key] = self.counts.get(r.key, 0) + 1
            out.append(r._replace(value=self.counts[r.key]))

    def end_input(self, out: list[Any]) -> None:
        if self.fail == "end_input":
            raise RuntimeError("end boom")

    def snapshot_state(self, checkpoint_id: int) -> Any:
        if self.fail == "snapshot":
            raise RuntimeError("snap boom")
        if self.fail == "list":
            return [1, 2, 3]
        if self.fail == "wrongkind":
            return 42
        return dict(self.counts)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if self.fail == "notify":
            raise RuntimeError("notify boom")

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


def fold(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    out = []
    for r in records:
        state[r.key] = state.get(r.key, 0) + 1
        out.append(r._replace(value=state[r.key]))
    return out


def bad_fold(param: int, records: list[Any], state: dict[Any, Any]) -> list[Any]:
    raise ZeroDivisionError("fold boom")


class ListState(Base):
    """A keyed operator keeping operator (list) state, as a buffering operator may."""

    state_kind = "list"

    def open(self, ctx: Any, restored: Any) -> None:
        self.seen = list(restored or [])

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.seen.extend(r.id for r in records)
        out.extend(records)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return list(self.seen)


class Coin(Base):
    """Nondeterministic: adds a coin flip from the global RNG to every value."""

    state_kind = None

    def process(self, records: list[Any], out: list[Any]) -> None:
        out.extend(r._replace(value=r.value + random.randrange(2)) for r in records)

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None


class Flaky(AppendSink):
    """Nondeterministic: drops 2% of the records at random."""

    def process(self, records: list[Any], out: list[Any]) -> None:
        self.ctx.store.append(self.ctx.now, [r for r in records if random.random() > 0.02])


def register() -> None:
    for name in NAMES:
        cls = type(f"Bad_{name}", (Base,), {"fail": name})
        register_operator(f"bad-{name.replace('_', '-')}", factory=cls, fold=fold, keyed=True)
    register_operator("bad-fold", factory=Base, fold=bad_fold, keyed=True)
    register_operator("fold-none", factory=Base, fold=lambda p, rs, st: [None], keyed=True)
    register_operator("list-state", factory=ListState, fold=lambda p, rs, st: list(rs),
                      keyed=True)
    register_operator("coin", factory=Coin, fold=lambda p, rs, st: list(rs))
    register_sink("flaky", factory=Flaky, exactly_once=False)


def unregister() -> None:
    for name in list(OPERATORS):
        if name.startswith("bad-") or name in ("coin", "fold-none", "list-state"):
            del OPERATORS[name]
    SINKS.pop("flaky", None)


register()
