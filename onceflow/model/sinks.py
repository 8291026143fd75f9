"""Sinks: how output reaches the external store.

- `append`: writes at once; replays after a failover duplicate (at-least-once).
- `idempotent`: upserts by record id; replays overwrite (exactly-once effects).
- `two_phase`: one transaction per checkpoint, as Flink 2.x's Sink V2 (a writer
  chained to a committer, `onceflow.components.sinkv2`): pre-commit before the
  barrier, committables with summaries to the committer, commit of every
  committable <= n on notify-complete(n), and on restore commit the restored
  committables (commit is idempotent) and abort the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

from onceflow.components.globalcommitter import (GlobalCommitter, PassThroughCommitter,
                                                 StoreGlobalCommitter)
from onceflow.components.sinkv2 import COMMIT_RETRIES, SinkV2
from onceflow.model.records import Record
from onceflow.stores.protocol import TransactionLostError

if TYPE_CHECKING:
    from onceflow.model.task import OperatorContext

__all__ = ["COMMIT_RETRIES", "AppendSink", "Committer", "GlobalCommitter", "IdempotentSink",
           "PassThroughCommitter", "SinkWriter", "StoreCommitter", "StoreGlobalCommitter",
           "StoreWriter", "TwoPhaseCommitSink", "TwoPhaseGlobalCommitSink", "make_sink"]


class _Sink:
    state_kind: ClassVar[str | None] = None

    def open(self, ctx: "OperatorContext", restored: Any) -> None:
        self.ctx = ctx

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return None

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


class AppendSink(_Sink):
    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.append(self.ctx.now, records)


class IdempotentSink(_Sink):
    def process(self, records: list[Record], out: list[Record]) -> None:
        self.ctx.store.upsert(self.ctx.now, records)


class SinkWriter(Protocol):
    """The writing half of a two-phase sink (Flink's `PrecommittingSinkWriter`)."""

    def begin(self, ctx: "OperatorContext") -> str:
        """Open a new transaction in the external system; return its id."""

    def write(self, ctx: "OperatorContext", txn: str, records: list[Record]) -> None:
        """Write records into open transaction `txn` (invisible to read-committed)."""

    def pre_commit(self, ctx: "OperatorContext", txn: str) -> None:
        """Flush `txn`: after this, committing it must succeed."""

    def abort(self, ctx: "OperatorContext", txn: str) -> None:
        """Drop transaction `txn` and what was written into it."""


class Committer(Protocol):
    """The committing half (Flink's `Committer`): commit must be idempotent, since
    a restored job commits again what may have committed before the crash."""

    def commit(self, ctx: "OperatorContext", txn: str, checkpoint_id: int) -> bool | None:
        """Commit `txn`, the transaction of checkpoint `checkpoint_id`: True when
        committed (now or before), False when the external system no longer has it
        (expired), None for a transient failure (retried).  (A committer whose
        `commit` takes only `ctx, txn` is called that way.)"""


class StoreWriter:
    """Writes into transactions of the simulated external store (one writer per subtask)."""

    def __init__(self) -> None:
        self.sequence = 0

    def begin(self, ctx: "OperatorContext") -> str:
        self.sequence += 1
        txn = f"{ctx.uid}.{ctx.subtask}.{ctx.attempt}.{self.sequence}"
        ctx.store.begin(ctx.now, txn, (ctx.uid, ctx.subtask))
        return txn

    def write(self, ctx: "OperatorContext", txn: str, records: list[Record]) -> None:
        if ctx.mutant("writer-swallows-lost-transaction"):
            try:
                ctx.store.write(ctx.now, txn, records)
            except TransactionLostError:
                pass  # FLINK-31305: the producer's error is logged, not thrown
            return
        ctx.store.write(ctx.now, txn, records)

    def pre_commit(self, ctx: "OperatorContext", txn: str) -> None:
        if ctx.mutant("writer-swallows-lost-transaction"):
            try:
                ctx.store.precommit(ctx.now, txn)
            except TransactionLostError:
                pass
            return
        ctx.store.precommit(ctx.now, txn)

    def abort(self, ctx: "OperatorContext", txn: str) -> None:
        ctx.store.abort(ctx.now, txn)


class StoreCommitter:
    """Commits transactions of the simulated external store (idempotently)."""

    def commit(self, ctx: "OperatorContext", txn: str, checkpoint_id: int = 0) -> bool | None:
        store = ctx.store
        if ctx.mutant("committer-not-idempotent"):
            known = store.txns.get(txn)
            if known is not None and known.state == "committed":
                # publishes the transaction's data a second time
                store.append(ctx.now, [e.record for e in store.entries(ctx.now, committed_only=False)
                                       if e.txn == txn])
                return True
        if ctx.mutant("committer-resends-in-doubt") and not ctx.task.opened:
            known = store.txns.get(txn)
            if known is not None and known.state == "precommitted":
                # apache/iceberg #2808, #16008: a restored committer that finds its
                # transaction not committed yet takes the interrupted commit for failed and
                # publishes the committable's records anew (a new, non-idempotent commit),
                # dropping the old transaction, whose commit the store may still complete
                records = [e.record for e in store.entries(ctx.now, committed_only=False)
                           if e.txn == txn]
                store.abort(ctx.now, txn)
                store.append(ctx.now, records)
                return True
        if ctx.mutant("committer-commits-async"):
            delay = getattr(store, "next_commit_delay", lambda: 0.0)()
            if delay:
                # the commit is sent and reported done; it lands `delay` later unless the
                # task has closed by then (closing the connection abandons it)
                store.take_delay()
                task, now = ctx.task, ctx.now
                raw = ctx.task.job.store

                def land() -> None:
                    if not task.closed:
                        raw.commit(now + delay, txn)
                task.job.later(delay, land)
                return True
        return store.commit(ctx.now, txn)


class TwoPhaseCommitSink(SinkV2):
    """The built-in two-phase sink: Sink V2 (`onceflow.components.sinkv2`), a writer
    operator chained to a committer operator, over the simulated external store.

    On snapshot n the writer pre-commits the open transaction and emits it as the
    committable of n (with its summary) to the committer, whose list state holds it;
    a new transaction begins.  On notify-complete(n) the committer commits every
    fully received committable <= n; on restore it commits the restored ones again
    (idempotent) and the writer aborts every other transaction this subtask left
    open.  Plug in another external system with your own `writer` and `committer`.
    """


class TwoPhaseGlobalCommitSink(SinkV2):
    """The built-in two-phase sink with a global committer: the writers pre-commit a
    transaction per checkpoint, the committers pass them on, and the global committer
    (`onceflow.components.globalcommitter`, parallelism 1) commits all transactions of
    a checkpoint once it received them from every committer subtask."""

    def __init__(self) -> None:
        super().__init__(committer=PassThroughCommitter(), global_committer=StoreGlobalCommitter())


#: what `_accepts` and `_takes_argument` found, per function (inspect.signature costs
#: more than building a sink; a restored timeline builds one per subtask)
_SIGNATURES: dict[Any, bool] = {}


def _signature_key(fn: Any, what: Any) -> Any:
    """A cache key for a signature question about `fn`: its function (a bound method's
    signature is the same for every instance of its class), or None (not cacheable)."""
    func = getattr(fn, "__func__", None)
    key = (func, True, what) if func is not None else (fn, False, what)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _cached(fn: Any, what: Any, ask: Callable[[Any], bool]) -> bool:
    key = _signature_key(fn, what)
    if key is None:
        return ask(fn)
    hit = _SIGNATURES.get(key)
    if hit is None:
        if len(_SIGNATURES) >= 512:
            _SIGNATURES.clear()
        hit = _SIGNATURES[key] = ask(fn)
    return hit


def _accepts(fn: Any, count: int) -> bool:
    """Can `fn` be called with `count` positional arguments?"""
    return _cached(fn, count, lambda f: _accepts_now(f, count))


def _accepts_now(fn: Any, count: int) -> bool:
    import inspect  # noqa: PLC0415

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): call it the documented way
        return True
    return True


def make_sink(kind: str, store: Any = None) -> Any:
    """A fresh sink of the registered name `kind` (built-ins are registered too); a
    factory that takes an argument gets the timeline's store (the sink also reaches it
    as `ctx.store` once opened)."""
    from onceflow.registry import sink_spec  # noqa: PLC0415

    factory = sink_spec(kind).factory
    return factory(store) if _takes_argument(factory) else factory()


def _takes_argument(factory: Any) -> bool:
    """Does `factory` take a positional argument (the store)?"""
    return _cached(factory, "argument", _takes_argument_now)


def _takes_argument_now(factory: Any) -> bool:
    import inspect  # noqa: PLC0415

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in params)
