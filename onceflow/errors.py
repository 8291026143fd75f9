"""The exceptions onceflow raises: one root, specific builtin subclasses."""

from __future__ import annotations

from typing import Any

__all__ = [
    "OnceflowError",
    "OperatorError",
    "PluginError",
    "ProducerFencedError",
    "ProducerStateError",
    "ProtocolError",
    "ScenarioError",
    "RegistrationError",
    "RestoreError",
    "TokenError",
    "TransactionLostError",
    "UnknownComponentError",
]


def _one_line(text: str, limit: int) -> str:
    """`text` on one bounded line: control characters escaped (hostile input may hold
    newlines that would fake a line of their own), long text cut with '...'."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                  for c in text[:limit * 4])
    return out if len(out) <= limit else out[:limit - 3] + "..."


class OnceflowError(Exception):
    """Root of every error onceflow raises on purpose."""


class ScenarioError(OnceflowError, ValueError):
    """A scenario (or a part of one) is invalid; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = _one_line(str(field), 120)
        self.reason = _one_line(str(reason), 600)
        super().__init__(f"invalid scenario: {self.field}: {self.reason}")


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
        #: the Scenario that made it crash, when a search found it (fuzz): the report
        #: prints the command that replays it
        self.scenario: Any = None


class ProtocolError(OnceflowError, TypeError):
    """User code broke its protocol: it emitted something other than a Record, or a
    snapshot of another kind than its `state_kind` declares."""


class RegistrationError(OnceflowError, ValueError):
    """A component is unknown, or its registration is malformed or contradicts itself;
    the message states the fix."""


class PluginError(OnceflowError, ImportError):
    """A plugin module (or an installed plugin) failed to load; the message names it."""


class TransactionLostError(OnceflowError, RuntimeError):
    """The external system no longer has transaction `txn` (aborted by it: a fenced
    producer, a coordinator failover; or expired after its timeout): a write, flush or
    pre-commit into it fails, as Kafka's producer raises on its next send.  A sink must
    let it fail the task (the job fails over and replays from the last checkpoint);
    swallowing it loses what was written."""

    def __init__(self, txn: str, state: str, now: float, timeout: float | None = None) -> None:
        self.txn = txn
        self.state = state
        self.now = now
        if state == "expired":
            why = (f"transaction {txn} expired before t={now:g}: it stayed open longer than "
                   f"the store's transaction timeout"
                   + (f" ({timeout:g} ms)" if timeout is not None else "")
                   + ", so the external system aborted it (Kafka fences the producer); raise "
                   "the transaction timeout above a checkpoint cycle plus a restart")
        else:
            why = (f"transaction {txn} is {state} at t={now:g}: the external system dropped "
                   "it, so nothing written into it can commit; let this error fail the task "
                   "(the job fails over and replays the records)")
        super().__init__(why)


class ProducerFencedError(TransactionLostError):
    """A newer producer of the same transactional id fenced this one (Kafka's
    ProducerFencedException): `init_producer` of the id bumped its epoch past
    `epoch`.  Every send, flush or commit of the older producer fails; the
    external system aborted the transaction it had open, unless it was committed
    before.  The error does not say which (nor does Kafka)."""

    def __init__(self, txn: str, transactional_id: str, epoch: int, current: int,
                 now: float) -> None:
        self.transactional_id = transactional_id
        self.epoch = epoch
        self.current = current
        OnceflowError.__init__(
            self,
            f"transaction {txn} of producer {transactional_id!r} (epoch {epoch}) is fenced "
            f"at t={now:g}: init_producer of the same transactional id bumped its epoch to "
            f"{current}, which aborted the transaction unless it had committed before; a "
            "writer must let this fail the task, and must never initialize the id of a "
            "transaction still waiting for its commit again (name ids per checkpoint, as "
            "Flink's KafkaSink does: prefix-subtask-checkpointId)")
        self.txn = txn
        self.state = "fenced"
        self.now = now


class ProducerStateError(OnceflowError, RuntimeError):
    """A sink used a transactional producer out of order (Kafka's client raises
    IllegalStateException): a transaction begun before `init_producer`, or a second
    one while the producer's last is neither committed nor aborted."""
