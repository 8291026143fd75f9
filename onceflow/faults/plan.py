"""Fault values of a scenario, their JSON form and their validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onceflow.errors import ScenarioError

if TYPE_CHECKING:
    from onceflow.scenario import Scenario

__all__ = ["FAULT_KINDS", "fault_from_data", "validate_faults"]

#: kind name -> fault class; each class has a `kind_name` and validates itself.
FAULT_KINDS: dict[str, type] = {}


def fault_from_data(data: Any, path: str) -> Any:
    from onceflow.scenario import _from_data  # noqa: PLC0415

    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ScenarioError(path, "a fault is a JSON object with a string 'kind'")
    cls = FAULT_KINDS.get(data["kind"])
    if cls is None:
        known = ", ".join(sorted(FAULT_KINDS)) or "none yet"
        raise ScenarioError(f"{path}.kind", f"unknown fault kind {data['kind']!r}; known: {known}")
    body = {k: v for k, v in data.items() if k != "kind"}
    return _from_data(cls, body, path)


def validate_faults(scenario: "Scenario") -> None:
    """Check every fault against the scenario it is part of (subtasks, phases, times)."""
    for i, fault in enumerate(scenario.faults):
        if type(fault) not in FAULT_KINDS.values():
            raise ScenarioError(f"faults[{i}]", f"not a fault value: {fault!r}")
        fault.validate(scenario, f"faults[{i}]")
