"""Properties over runs: the oracle, the guarantee matrix, and the checks."""

from onceflow.properties.checks import (PROPERTIES, check, consistent_cut, determinism,
                                        exactly_once, exactly_once_after_restores,
                                        judge_timeline, liveness,
                                        no_loss, read_committed_isolation, restores_of,
                                        snapshots_resolve)
from onceflow.properties.guarantees import AT_LEAST_ONCE, EXACTLY_ONCE, MATRIX, guarantee
from onceflow.properties.oracle import canonical, expected_output, expected_state
from onceflow.properties.placement import partitioning
from onceflow.properties.violation import ANOMALIES, Finding, RecordIssue, Violation
from onceflow.properties.rollback import rollback_effects, rollback_restores, rollbacks_of
from onceflow.properties.visibility import coverage, premature_visibility

__all__ = [
    "ANOMALIES", "AT_LEAST_ONCE", "EXACTLY_ONCE", "Finding", "MATRIX", "PROPERTIES",
    "RecordIssue", "Violation", "canonical", "check", "consistent_cut", "coverage", "determinism",
    "exactly_once", "exactly_once_after_restores", "expected_output", "expected_state",
    "guarantee", "judge_timeline", "liveness", "no_loss", "partitioning", "premature_visibility",
    "read_committed_isolation", "restores_of", "rollback_effects", "rollback_restores",
    "rollbacks_of", "snapshots_resolve",
]
