"""The deterministic discrete-event model of a Flink-style dataflow, on SimPy."""

from onceflow.model.operators import (FilterOperator, FlatMapOperator, MapOperator, Operator,
                                      ReduceOperator, WindowOperator)
from onceflow.model.records import Barrier, Record, split_logs
from onceflow.model.simulation import RunResult, follow, restore, run, timeline_of
from onceflow.model.sinks import (AppendSink, Committer, GlobalCommitter, IdempotentSink,
                                  SinkWriter, TwoPhaseCommitSink, TwoPhaseGlobalCommitSink)
from onceflow.model.snapshot import Snapshot
from onceflow.model.log import LogClient
from onceflow.model.sources import (END_OF_INPUT, MORE_AVAILABLE, NOTHING_AVAILABLE,
                                    DefaultEnumerator, LogReader, SourceReader, Split,
                                    SplitEnumerator)
from onceflow.model.task import OperatorContext, TaskCrash
from onceflow.model.trace import Trace
from onceflow.stores import Entry, Store

__all__ = [
    "END_OF_INPUT", "MORE_AVAILABLE", "NOTHING_AVAILABLE",
    "AppendSink", "Barrier", "Committer", "DefaultEnumerator", "Entry", "FilterOperator",
    "FlatMapOperator", "GlobalCommitter", "IdempotentSink", "LogClient", "LogReader", "MapOperator", "Operator",
    "OperatorContext", "Record", "ReduceOperator", "RunResult", "SinkWriter", "Snapshot",
    "SourceReader", "Split", "SplitEnumerator", "Store", "TaskCrash",
    "Trace", "TwoPhaseCommitSink", "TwoPhaseGlobalCommitSink", "WindowOperator",
    "follow", "restore", "run", "split_logs", "timeline_of",
]
