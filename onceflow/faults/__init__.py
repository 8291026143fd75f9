"""Fault plans: what goes wrong in a run, and when."""

from onceflow.faults.plan import FAULT_KINDS, fault_from_data, validate_faults

__all__ = ["FAULT_KINDS", "fault_from_data", "validate_faults"]
