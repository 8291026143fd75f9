"""`TimelineSpec`: which timeline of a run a finding is about, as a frozen value.

A run's original timeline is the empty spec.  Every other timeline is reached
by restores, one `RestoreStep` each: a completed snapshot of the previous
timeline (by id and kind), restored into the store as it stood when the
snapshot completed (`fork`) or as it stood later (`rollback`, at `at`), at a
parallelism, with the savepoints requested on the restored timeline.  A step
that is a link of the scenario's rescale chain says so (`chain`): the
properties judge chain links with more properties than plain restores.

Values only: nothing here imports the model.  A replay token carries the spec
beside the scenario (`onceflow.token`), so `onceflow replay` restores exactly
the timeline the finding was on and judges it as `check()` did.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from attrs import field, frozen

from onceflow.errors import ScenarioError
from onceflow.scenario import (MAX_PARALLELISM_LIMIT, MAX_RESCALES, MAX_SAVEPOINTS,
                               SavepointRequest, Topology, _check_choice, _check_int,
                               _fail, _from_data, _opt_time, _to_data)

__all__ = ["RESTORE_KINDS", "RestoreStep", "TimelineSpec"]

RESTORE_KINDS = ("fork", "rollback")
SNAPSHOT_KINDS = ("checkpoint", "savepoint")
#: restores from the original run to a judged timeline: a rescale chain's links and one
MAX_STEPS = MAX_RESCALES + 1


@frozen
class RestoreStep:
    """One restore on the way to a timeline: snapshot `snapshot` (a `snapshot_kind`) of
    the previous timeline, restored `into` the store (`fork` or `rollback` at `at`; None:
    at the end of the previous timeline), every vertex at `parallelism` (None: as it
    was) or into the upgraded graph `topology`, with `savepoints` requested on the
    restored timeline; `chain`: a link of the scenario's rescale chain."""

    snapshot: int
    snapshot_kind: str = "checkpoint"
    into: str = "fork"
    parallelism: int | None = None
    at: float | None = field(default=None, converter=_opt_time)
    savepoints: tuple[SavepointRequest, ...] = field(default=(), converter=tuple)
    topology: Topology | None = None
    chain: bool = False

    _nested: ClassVar[dict[str, Any]] = {"savepoints": (SavepointRequest,),
                                         "topology": Topology}

    def __attrs_post_init__(self) -> None:
        _check_int("snapshot", self.snapshot, 0, 2**63 - 1)
        _check_choice("snapshot_kind", self.snapshot_kind, SNAPSHOT_KINDS)
        _check_choice("into", self.into, RESTORE_KINDS)
        if self.parallelism is not None:
            _check_int("parallelism", self.parallelism, 1, MAX_PARALLELISM_LIMIT)
        if self.at is not None:
            if self.into != "rollback":
                _fail("at", "only a rollback restores at a later moment; leave at out "
                            "or set into to rollback")
            # a moment of a run, which may end past a scenario's own time bounds
            if (not isinstance(self.at, float) or not math.isfinite(self.at)
                    or self.at < 0):
                _fail("at", f"must be a finite moment of the run (ms, at least 0), "
                            f"got {self.at!r:.40}")
        if len(self.savepoints) > MAX_SAVEPOINTS:
            _fail("savepoints", f"{len(self.savepoints)} entries; at most {MAX_SAVEPOINTS}")
        for i, sp in enumerate(self.savepoints):
            if not isinstance(sp, SavepointRequest):
                _fail(f"savepoints[{i}]", "must be a SavepointRequest")
        if self.topology is not None and not isinstance(self.topology, Topology):
            _fail("topology", "must be a Topology")
        if not isinstance(self.chain, bool):
            _fail("chain", "must be true or false")

    @property
    def label(self) -> str:
        """`checkpoint 6 at parallelism 8, rolled back`: what this step restores."""
        text = f"{self.snapshot_kind} {self.snapshot}"
        if self.parallelism is not None:
            text += f" at parallelism {self.parallelism}"
        if self.topology is not None:
            text += " into an upgraded job graph"
        if self.chain:
            text += " (rescale-chain link)"
        if self.into == "rollback":
            text += " rolled back" + (f" at t={self.at:g}" if self.at is not None else
                                      " at the end of the run")
        return text


@frozen
class TimelineSpec:
    """The restores from a run's original timeline to one of its timelines (none: the
    original run itself)."""

    steps: tuple[RestoreStep, ...] = field(default=(), converter=tuple)

    _nested: ClassVar[dict[str, Any]] = {"steps": (RestoreStep,)}

    def __attrs_post_init__(self) -> None:
        if len(self.steps) > MAX_STEPS:
            _fail("steps", f"{len(self.steps)} restores; at most {MAX_STEPS}")
        for i, step in enumerate(self.steps):
            if not isinstance(step, RestoreStep):
                _fail(f"steps[{i}]", "must be a RestoreStep")
            if step.into == "rollback" and i != len(self.steps) - 1:
                _fail(f"steps[{i}].into", "a rollback ends a timeline: the properties "
                                          "restore no snapshot of a rolled-back timeline")

    @property
    def original(self) -> bool:
        """Is this the run's original timeline (no restore)?"""
        return not self.steps

    @property
    def label(self) -> str:
        if not self.steps:
            return "the original run"
        return "restore " + ", then ".join(s.label for s in self.steps)

    def to_data(self) -> dict[str, Any]:
        data = _to_data(self)
        defaults = {"snapshot_kind": "checkpoint", "into": "fork", "parallelism": None,
                    "at": None, "savepoints": [], "topology": None, "chain": False}
        for step in data["steps"]:
            for name, default in defaults.items():
                if name in step and step[name] == default:
                    del step[name]
        return data

    @classmethod
    def from_data(cls, data: Any) -> "TimelineSpec":
        try:
            return _from_data(cls, data, "timeline")
        except ScenarioError:
            raise
        except (TypeError, ValueError) as exc:
            raise ScenarioError("timeline", str(exc)) from None
