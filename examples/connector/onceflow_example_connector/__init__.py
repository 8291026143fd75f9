"""An example connector tested with onceflow.

Importing it (`onceflow --plugin onceflow_example_connector ...`, or the
entry point `onceflow.plugins` once installed) registers:

- operator `example_counter` (keyed) and `example_counter_buggy` (its planted bug on);
- sink `example_ledger` (two-phase) and `example_ledger_buggy` (its planted bug on);
- source `example_source` (a buffered log reader) and `example_source_buggy` (its
  planted bug on: it snapshots the fetch position, not the last emitted offset).

The bug flag is part of the name, so a replay token says which one ran.
"""

from onceflow.registry import register_operator, register_sink, register_source

from onceflow_example_connector.counter import KeyedCounter, counter_fold
from onceflow_example_connector.ledger import LedgerCommitter, LedgerSink, LedgerWriter
from onceflow_example_connector.source import BufferedLogReader

__all__ = ["BufferedLogReader", "KeyedCounter", "LedgerCommitter", "LedgerSink", "LedgerWriter",
           "counter_fold", "register"]


def register() -> None:
    """Register the example's components (done on import)."""
    register_operator("example_counter", factory=lambda param: KeyedCounter(),
                      fold=counter_fold, keyed=True)
    register_operator("example_counter_buggy", factory=lambda param: KeyedCounter(bug=True),
                      fold=counter_fold, keyed=True)
    register_sink("example_ledger", factory=lambda: LedgerSink(), kind="two_phase")
    register_sink("example_ledger_buggy", factory=lambda: LedgerSink(bug=True), kind="two_phase")
    register_source("example_source", factory=lambda: BufferedLogReader())
    register_source("example_source_buggy", factory=lambda: BufferedLogReader(bug=True))


register()
