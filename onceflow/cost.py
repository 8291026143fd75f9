"""What a scenario costs, computed from the scenario alone (before anything runs).

Two figures follow from a scenario's own timings:

- `horizon(scenario)`: the simulated time by which a correct run must have
  finished.  It follows every timing that delays a run (latency, jitter,
  channel capacity, rpc latency, upload time, checkpoint interval and timeout,
  restart delay, fault times, durations and delays), so no correct run is
  judged stuck for being slow.  It is an upper bound, not a prediction: only a
  run that is really stuck runs until it.
- `slowest_idle_checkpoint(scenario)`: the longest a checkpoint can take when no
  data is queued (the final checkpoint of FLIP-147); a checkpoint timeout below
  it would let no job finish, and the scenario is refused.

Values layer: imports only the scenario values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from onceflow.registry import OPERATORS

if TYPE_CHECKING:
    from onceflow.scenario import Scenario

__all__ = ["QUIET_PERIOD", "horizon", "quickest_checkpoint", "slowest_idle_checkpoint"]

#: Simulated ms after the last fault or savepoint request (plus the time the input
#: needs) within which a live job must finish; after it, it is stuck.
QUIET_PERIOD = 1_000.0
#: Commit attempts a two-phase sink makes before its task fails (model/sinks.py).
_COMMIT_RETRIES = 5


def quickest_checkpoint(scenario: "Scenario") -> float:
    """The least time any checkpoint takes: the trigger's rpc, one latency per barrier
    hop from the source to the sink, and the upload of the last state."""
    t = scenario.timing
    hops = len(scenario.topology.vertices) - 1
    return t.rpc_latency + hops * t.latency + t.upload_time


def slowest_idle_checkpoint(scenario: "Scenario") -> float:
    """The most time a checkpoint takes when no data is queued ahead of its barriers
    (as for the final checkpoint after the end of input): jitter at its maximum on
    every message.  The split enumerator's checkpoint comes first: the barriers are
    injected one rpc latency after the trigger."""
    t = scenario.timing
    hops = len(scenario.topology.vertices) - 1
    return (2 * t.rpc_latency + t.jitter + hops * (t.latency + t.jitter) + t.upload_time)


def _flows(scenario: "Scenario") -> list[int]:
    """Records entering each vertex in one uninterrupted run, at most."""
    flow, out = scenario.workload.records, []
    for i, v in enumerate(scenario.topology.vertices):
        if i and v.edge == "broadcast":
            flow *= v.parallelism
        out.append(flow)
        spec = OPERATORS.get(v.kind)
        if spec is not None and spec.ids == "multiply":
            flow *= max(v.param, 1)
    return out


def _buffers(scenario: "Scenario") -> list[float]:
    """Buffers crossing each edge (index i: into vertex i), at most.

    The source reads up to `buffer_records` records per buffer and split; each
    buffer a task handles becomes at most one buffer per output channel, and
    never more buffers than records; ends of input flush one more per channel.
    """
    t = scenario.timing
    vertices = scenario.topology.vertices
    flows = _flows(scenario)
    out: list[float] = [0.0]
    handled = math.ceil(flows[0] / t.buffer_records) + scenario.workload.splits
    for i in range(1, len(vertices)):
        v, prev = vertices[i], vertices[i - 1]
        fan = 1 if v.edge == "forward" else v.parallelism
        crossing = min(float(max(flows[i], 1)), handled * fan) + prev.parallelism * fan
        out.append(crossing)
        handled = crossing
    return out


def _fault_slack(scenario: "Scenario") -> tuple[float, float, int]:
    """(the last moment a timed fault or savepoint acts, the delays faults add on
    top of the timings, how many failovers the faults can cause)."""
    t = scenario.timing
    last = max([s.at for s in scenario.savepoints] + [0.0])
    slack = 0.0
    failovers = 0
    per_buffer = t.buffer_records * t.record_cost
    for f in scenario.faults:
        at = getattr(f, "at", None)
        duration = getattr(f, "duration", 0.0)
        if at is not None:
            last = max(last, at + duration)
        name = type(f).__name__
        if name == "LatencySpike":
            slack += f.extra + duration
        elif name == "SlowSubtask":
            slack += duration + per_buffer * f.factor
        elif name == "StoreFault":
            failovers += -(-f.times // _COMMIT_RETRIES)
        elif name in ("NotifyFault", "StorageFault"):
            pass  # one notification or upload: a later checkpoint completes (or it times out)
        else:  # crashes of subtasks, workers, the coordinator, or at a phase
            failovers += 1
    return last, slack, min(failovers, scenario.restart.attempts)


def data_time(scenario: "Scenario") -> float:
    """The most time the input needs to flow through the job once, with no fault:
    each channel keeps at most `channel_capacity` buffers in flight, each for one
    latency, and every record costs `record_cost` at every vertex it enters."""
    t = scenario.timing
    hop = t.latency + t.jitter
    flows = _flows(scenario)
    transfer = sum(b / t.channel_capacity * hop for b in _buffers(scenario))
    work = sum(flows) * t.record_cost
    hops = (len(flows) - 1) * hop
    # readers get their splits one at a time from the split enumerator: a request and
    # an assignment (two rpc latencies) per split, plus the registration
    assign = 2 * (scenario.workload.splits + 1) * (t.rpc_latency + t.jitter)
    return transfer + work + hops + assign


def horizon(scenario: "Scenario") -> float:
    """The simulated time (from the run's start) by which a correct run has finished.

    One pass of the input, then a checkpoint cycle (an interval, a timed-out
    checkpoint, and a complete one with its notification) to finish; each
    failover the faults can cause adds the restart delay, a replay of the input
    and a cycle; faults add their own durations and delays.  Never below the
    bound of earlier versions (the quiet period plus 100 times the work), so a
    run judged finished before is judged so still.
    """
    c = scenario.checkpoints
    t = scenario.timing
    last, slack, failovers = _fault_slack(scenario)
    # a growing log: the input ends only once its last record is produced
    last = max(last, scenario.workload.last_produce)
    work = scenario.workload.records * t.record_cost
    cycle = (c.interval + c.timeout + slowest_idle_checkpoint(scenario)
             + t.rpc_latency + t.jitter)
    one_pass = 2 * data_time(scenario) + cycle
    bound = one_pass + failovers * (scenario.restart.delay + one_pass) + slack
    return last + QUIET_PERIOD + max(100 * work, bound)


def describe(value: Any) -> str:
    """A number for messages: `1.5e+07` or `3003`."""
    return f"{value:,.0f}" if abs(value) < 1e12 else f"{value:.3g}"
