"""onceflow: know, not hope, that a stream processor's output is exactly-once."""

from onceflow.errors import OnceflowError, RestoreError, ScenarioError, TokenError
from onceflow.model import Record, RunResult, Snapshot, restore, run
from onceflow.properties import Violation, check
from onceflow.timelines import RestoreStep, TimelineSpec
from onceflow.token import decode as decode_token
from onceflow.token import decode_timeline
from onceflow.token import encode as encode_token
from onceflow.scenario import (CheckpointConfig, RescaleStep, RestartStrategy, SavepointRequest,
                               Scenario,
                               Timing, Topology, Vertex, Workload)

__version__ = "0.1.0"

__all__ = [
    "CheckpointConfig", "OnceflowError", "Record", "RescaleStep", "RestartStrategy", "RestoreError",
    "RestoreStep", "RunResult", "SavepointRequest", "Scenario", "ScenarioError", "Snapshot",
    "TimelineSpec", "Timing", "TokenError", "Topology", "Vertex", "Violation", "Workload",
    "check", "decode_timeline", "decode_token", "encode_token", "restore", "run",
    "scenario_test",
]


def __getattr__(name: str) -> object:
    # the pytest plugin imports pytest: load it only when asked for
    if name == "scenario_test":
        from onceflow.pytest_plugin import scenario_test

        return scenario_test
    raise AttributeError(f"module 'onceflow' has no attribute {name!r}")
