"""Channels: reliable FIFO links from one sender subtask to one receiver subtask.

Records travel in buffers (lists), as Flink moves network buffers, so a
buffer, not a record, costs a simulated event.  A channel holds at most
`capacity` buffers between sender and receiver (credit-based flow control):
a full channel backpressures its sender.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import simpy

    from onceflow.model.task import Task

__all__ = ["Channel"]


class Channel:
    __slots__ = ("env", "sender", "receiver", "index", "latency", "jitter", "rng",
                 "capacity", "items", "buffers", "wanted_by", "closed", "last_arrival",
                 "pointwise", "name", "extra_delay", "recovered", "sender_task")

    def __init__(self, env: "simpy.Environment", sender: str, receiver: "Task", index: int,
                 *, latency: float, jitter: float, rng: Any, capacity: int,
                 pointwise: bool) -> None:
        self.env = env
        self.sender = sender
        self.receiver = receiver
        self.index = index  # position among the receiver's inputs
        self.latency = latency
        self.jitter = jitter
        self.rng = rng
        self.capacity = capacity
        self.items: deque[tuple[float, Any]] = deque()  # (arrival time, buffer or event)
        self.buffers = 0
        self.wanted_by: "Task | None" = None  # a sender waiting for credit
        self.closed = False
        self.last_arrival = 0.0
        self.pointwise = pointwise  # forward or broadcast: barriers never overtake here
        self.name = f"{sender}->{receiver.name}"
        self.extra_delay = 0.0  # set by latency-spike faults
        self.recovered = 0  # restored channel state still at the head of the channel
        self.sender_task: Any = None  # the task sending on it (set when the job wires it)

    # -- sender side ------------------------------------------------------

    def send(self, item: Any) -> None:
        env = self.env
        now = env.now
        delay = self.latency + self.extra_delay
        if self.jitter:
            delay += self.rng.random() * self.jitter
        arrival = now + delay
        if arrival < self.last_arrival:
            arrival = self.last_arrival  # FIFO
        self.last_arrival = arrival
        self.items.append((arrival, item))
        if item.__class__ is list:
            self.buffers += 1
        env.timeout(arrival - now).callbacks.append(self._arrived)

    def full(self) -> bool:
        return self.buffers >= self.capacity

    def overtake(self, barrier: Any) -> list[Any]:
        """Put `barrier` ahead of everything in flight; return the overtaken items.

        Restored channel state still at the head stays ahead: in Flink it sits in the
        receiver's recovered input channel, which the receiver consumes before it requests
        the sender's partition, so the barrier reaches it only after that state
        (`RecoveredInputChannel`, `StreamTask.restoreGates`)."""
        now = self.env.now
        items = list(self.items)
        kept, rest = items[:self.recovered], items[self.recovered:]
        overtaken = [item for _, item in rest]
        arrival = now + self.latency
        self.items = deque(kept + [(arrival, barrier)]
                           + [(max(t, arrival), item) for t, item in rest])
        self.last_arrival = max(self.last_arrival, arrival)
        self.env.timeout(self.latency).callbacks.append(self._arrived)
        return overtaken

    # -- receiver side ----------------------------------------------------

    def _arrived(self, _event: Any) -> None:
        if not self.closed:
            self.receiver.wake()

    def ready(self) -> bool:
        items = self.items
        return bool(items) and items[0][0] <= self.env.now

    def take(self) -> Any:
        item = self.items.popleft()[1]
        if item.__class__ is list:
            self.buffers -= 1
            sender = self.wanted_by
            if sender is not None and self.buffers < self.capacity:
                self.wanted_by = None
                sender.wake()
        return item

    def prefill(self, items: list[Any]) -> None:
        """Put restored channel state at the head of the channel, ready at once."""
        now = self.env.now
        for item in items:
            self.items.append((now, item))
            if item.__class__ is list:
                self.buffers += 1
        self.recovered += len(items)

    def close(self) -> None:
        self.closed = True
        self.items.clear()
