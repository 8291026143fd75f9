"""The errors of the Flink differential check (each reported in one line, exit 2)."""

from __future__ import annotations

from onceflow.errors import OnceflowError

__all__ = ["FlinkError", "FlinkUnavailable", "Untranslatable"]


class FlinkError(OnceflowError, RuntimeError):
    """Running the job on Flink went wrong (it hung, or the JVM failed to start it)."""


class FlinkUnavailable(OnceflowError, RuntimeError):
    """Java 17+ or the `apache-flink` wheel is missing; the message says how to get it."""


class Untranslatable(OnceflowError, ValueError):
    """A part of the scenario has no Flink equivalent; `part` names it."""

    def __init__(self, part: str, reason: str) -> None:
        self.part = part
        self.reason = reason
        super().__init__(f"cannot run this scenario on Flink: {part}: {reason}")
