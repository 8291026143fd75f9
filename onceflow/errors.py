"""The exceptions onceflow raises: one root, specific builtin subclasses."""

from __future__ import annotations

__all__ = [
    "OnceflowError",
    "OperatorError",
    "PluginError",
    "ProtocolError",
    "ScenarioError",
    "RegistrationError",
    "RestoreError",
    "TokenError",
    "UnknownComponentError",
]


class OnceflowError(Exception):
    """Root of every error onceflow raises on purpose."""


class ScenarioError(OnceflowError, ValueError):
    """A scenario (or a part of one) is invalid; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid scenario: {field}: {reason}")


class UnknownComponentError(ScenarioError):
    """A scenario names a source, operator or sink that is not registered in this process
    (load the plugin that registers it)."""


class RestoreError(OnceflowError, ValueError):
    """A snapshot cannot be restored into the requested job."""


class TokenError(OnceflowError, ValueError):
    """A replay token is malformed, of another version, or too large."""


class OperatorError(OnceflowError, RuntimeError):
    """A user operator or sink raised: a bug in that code, not an exactly-once violation.

    `component` names it ("operator 'op' (kind)"); `traceback` holds the frames of
    the failure, folded to one short line each ("file:line in function: code").
    """

    def __init__(self, message: str, *, component: str = "",
                 traceback: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.component = component
        self.traceback = traceback


class ProtocolError(OnceflowError, TypeError):
    """User code broke its protocol: it emitted something other than a Record, or a
    snapshot of another kind than its `state_kind` declares."""


class RegistrationError(OnceflowError, ValueError):
    """A component is unknown, or its registration is malformed or contradicts itself;
    the message states the fix."""


class PluginError(OnceflowError, ImportError):
    """A plugin module (or an installed plugin) failed to load; the message names it."""
