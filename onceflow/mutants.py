"""Named mutants: switchable re-creations of real exactly-once bugs.

With no mutant on, the model is correct.  Each mutant changes one mechanism, at
the place where the real bug lived; the model asks `job.mutant(name)`.
"""

from __future__ import annotations

from onceflow.errors import ScenarioError

__all__ = ["MUTANTS", "validate_mutants"]

#: name -> (source, mechanism, expected symptom)
MUTANTS: dict[str, tuple[str, str, str]] = {}


def validate_mutants(names: tuple[str, ...]) -> None:
    for i, name in enumerate(names):
        if name not in MUTANTS:
            known = ", ".join(sorted(MUTANTS)) or "none"
            raise ScenarioError(f"mutants[{i}]", f"unknown mutant {name!r}; known: {known}")
    if len(set(names)) != len(names):
        raise ScenarioError("mutants", "a mutant is listed twice")
