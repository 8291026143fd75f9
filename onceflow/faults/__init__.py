"""Fault plans: what goes wrong in a run, and when."""

from onceflow.faults.injector import unfired
from onceflow.faults.plan import FAULT_KINDS, fault_from_data, max_checkpoint_id, validate_faults

__all__ = ["FAULT_KINDS", "fault_from_data", "max_checkpoint_id", "unfired", "validate_faults"]
