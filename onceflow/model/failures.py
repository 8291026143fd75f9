"""Failure escalation of snapshots: Flink's `CheckpointFailureManager`.

A checkpoint that is declined, expires or fails its upload counts against
`execution.checkpointing.tolerable-failed-checkpoints` (default 0); one failure
more than tolerated fails the job over.  As in Flink 2.x:

- counted reasons: a task declined (`CHECKPOINT_DECLINED`), the asynchronous
  part failed (`CHECKPOINT_ASYNC_EXCEPTION`, a failed storage write), the
  checkpoint expired (`CHECKPOINT_EXPIRED`);
- not counted: subsumed, aborted by a failover or a shutdown, a decline because
  a newer barrier was already emitted (`CHECKPOINT_DECLINED_SUBSUMED`), a task
  not ready, finished or closing;
- each checkpoint counts once, and only when it is newer than the last snapshot
  that completed; a completion resets the count;
- a savepoint's job-level failure (it expired) is not counted; a task-level
  failure of a savepoint is; any failure of a stop-with-savepoint (a synchronous
  savepoint) fails the job at once.
"""

from __future__ import annotations

__all__ = ["COUNTED", "FailureCounter"]

#: The failure reasons that count (the model's names for Flink's reasons).
COUNTED = frozenset({"declined", "async_failure", "expired"})


class FailureCounter:
    """Consecutive counted snapshot failures since the last completed snapshot."""

    __slots__ = ("tolerable", "failures", "counted", "last_success")

    def __init__(self, tolerable: int) -> None:
        self.tolerable = tolerable
        self.failures = 0
        self.counted: set[int] = set()
        self.last_success = 0

    def success(self, checkpoint_id: int) -> None:
        if checkpoint_id > self.last_success:
            self.last_success = checkpoint_id
            self.failures = 0
            self.counted.clear()

    def failure(self, checkpoint_id: int, reason: str) -> bool:
        """Count a failure; True when the job must fail over now."""
        if reason not in COUNTED or checkpoint_id <= self.last_success:
            return False
        if checkpoint_id not in self.counted:
            self.counted.add(checkpoint_id)
            self.failures += 1
        if self.failures > self.tolerable:
            self.failures = 0
            self.counted.clear()
            return True
        return False
