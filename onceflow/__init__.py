"""onceflow: know, not hope, that a stream processor's output is exactly-once."""

from onceflow.errors import OnceflowError, RestoreError, ScenarioError, TokenError
from onceflow.model import Record, RunResult, Snapshot, restore, run
from onceflow.properties import Violation, check
from onceflow.scenario import (CheckpointConfig, RestartStrategy, SavepointRequest, Scenario,
                               Timing, Topology, Vertex, Workload)

__version__ = "0.1.0"

__all__ = [
    "CheckpointConfig", "OnceflowError", "Record", "RestartStrategy", "RestoreError",
    "RunResult", "SavepointRequest", "Scenario", "ScenarioError", "Snapshot", "Timing",
    "TokenError", "Topology", "Vertex", "Violation", "Workload", "check", "restore", "run",
]
