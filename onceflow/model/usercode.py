"""Guards around user code: what it emits and snapshots is checked against its
protocol, and what it raises is folded into a short report.

Built-in components (classes defined inside the `onceflow` package) are trusted
and skip the checks: they are on the hot path.
"""

from __future__ import annotations

import os
import reprlib
import traceback
from typing import Any

from onceflow.errors import ProtocolError
from onceflow.model.records import Record

__all__ = ["accepts", "check_output", "check_state", "component", "fold_traceback", "is_user_code",
           "short", "text"]

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 40, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_FRAMES = 8


def short(value: Any, limit: int = 80) -> str:
    """A bounded, single-line repr of `value` (safe for one-line messages)."""
    try:
        text = _SHORT.repr(value)
    except Exception:  # a user object whose repr raises
        text = f"<{type(value).__name__}>"
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii", "replace")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def text(value: str, limit: int = 160) -> str:
    """`value` (a message or name) on one line: control characters escaped, bounded."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                  for c in str(value)[:limit * 4])
    return out if len(out) <= limit else out[:limit - 3] + "..."


def accepts(fn: Any, count: int) -> bool:
    """Can `fn` be called with `count` positional arguments?  (No signature: assume so.)"""
    import inspect  # noqa: PLC0415

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def is_user_code(obj: Any) -> bool:
    """Is `obj` an instance of a class defined outside onceflow?"""
    module = type(obj).__module__ or ""
    return module != "onceflow" and not module.startswith("onceflow.")


def component(vertex: Any, sink: str | None = None) -> str:
    """How a report names the component behind `vertex`."""
    if vertex.kind == "sink":
        return f"sink {short(vertex.uid)} ({text(str(sink), 60)})"
    if vertex.kind == "source":
        return f"source {short(vertex.uid)}"
    return f"operator {short(vertex.uid)} ({text(vertex.kind, 60)})"


_MISSING = object()


def check_operator(obj: Any) -> None:
    """What a user's factory built can run as an operator (or sink): it declares a
    `state_kind` the runtime knows and has `process`."""
    kind = getattr(obj, "state_kind", _MISSING)
    missing = ([] if kind is not _MISSING else ["state_kind"]) + [
        m for m in ("process",) if not callable(getattr(obj, m, None))]
    if missing:
        raise ProtocolError(
            f"was built as {short(obj, 40)} ({type(obj).__name__}), not an operator (missing "
            f"{', '.join(missing)}); make its factory return an object with the members of "
            "onceflow.model.operators.Operator")
    if kind not in (None, "keyed", "list", "splits"):
        raise ProtocolError(f"state_kind {short(kind)} is not one of None, 'keyed', 'list'; "
                            "declare one of them on the operator's class")


def check_output(out: list[Any], hook: str) -> None:
    """Every item a user operator emitted is a Record."""
    for item in out:
        if item.__class__ is not Record and not isinstance(item, Record):
            raise ProtocolError(f"{hook} emitted {short(item, 40)} ({type(item).__name__}), "
                                "not a onceflow.Record")


def check_state(kind: str | None, state: Any) -> None:
    """A user operator's snapshot has the form its `state_kind` declares."""
    if kind == "keyed":
        if not isinstance(state, dict):
            raise ProtocolError(
                f"snapshot_state returned {short(state)} of type {type(state).__name__}, but "
                "state_kind 'keyed' needs a dict key -> state")
        for key in state:
            if not isinstance(key, int) or isinstance(key, bool):
                raise ProtocolError(
                    f"snapshot_state returned a dict with key {short(key)} of type "
                    f"{type(key).__name__}; keyed state is keyed by the records' int keys")
    elif kind == "list":
        if not isinstance(state, (list, tuple)):
            raise ProtocolError(
                f"snapshot_state returned {short(state)} of type {type(state).__name__}, but "
                "state_kind 'list' needs a list")
    elif kind == "splits":
        if not isinstance(state, dict):
            raise ProtocolError(
                f"snapshot_state returned {short(state)} of type {type(state).__name__}, but "
                "state_kind 'splits' needs a dict split -> offset")
    elif kind is not None:
        raise ProtocolError(f"state_kind {short(kind)} is not one of None, 'keyed', 'list', "
                            "'splits'")


def fold_traceback(exc: BaseException) -> tuple[str, ...]:
    """The frames of `exc`, one short line each, innermost last: the user's own frames
    (outside onceflow), or the last few when there are none."""
    if isinstance(exc, ProtocolError):
        return ()  # raised by the guard, not in user code: the message says it all
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE)]
    chosen = (mine or list(frames))[-MAX_FRAMES:]
    return tuple(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}: "
                 f"{text((f.line or '').strip(), 100)}" for f in chosen)


def innermost(frames: tuple[str, ...]) -> str:
    """Where the failure happened, for a one-line message."""
    return f" ({frames[-1].split(': ', 1)[0]})" if frames else ""
