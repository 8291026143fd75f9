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
from typing import TYPE_CHECKING, Any, NamedTuple

from onceflow.registry import OPERATORS

if TYPE_CHECKING:
    from onceflow.scenario import Scenario

__all__ = ["MAX_JUDGE_UNITS", "MAX_RESTORED_CHECKPOINTS", "MAX_RUN_UNITS", "Cost", "check_budget", "estimate", "QUIET_PERIOD", "horizon", "quickest_checkpoint", "slowest_idle_checkpoint"]

#: Simulated ms after the last fault or savepoint request (plus the time the input
#: needs) within which a live job must finish; after it, it is stuck.
QUIET_PERIOD = 1_000.0
#: Checkpoints restored when a run is judged; beyond this count a deterministic sample
#: (the first, the last, those around each fault, some with channel state, an even
#: spread): every restore costs a run, so restoring all would cost runs x checkpoints.
MAX_RESTORED_CHECKPOINTS = 16
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
        if spec is not None:  # what the operator declares it emits (one per record in)
            flow = spec.most_output(flow, v.param, scenario.workload.keys)
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
            if f.effect == "slow_commit":  # the committing task waits for each commit
                slack += f.delay * f.times
            elif f.effect == "lost_transaction":  # the writer fails: one failover
                failovers += 1
            else:
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
    vertices = scenario.topology.vertices
    transfer = 0.0
    for i, crossing in enumerate(_buffers(scenario)):
        if not i:
            continue
        v, senders = vertices[i], vertices[i - 1].parallelism
        # channels carry buffers side by side; a hash edge may route every record of a
        # skewed input to one receiver, whose channels (one per sender) still work apart
        lanes = senders if v.edge in ("forward", "hash") else senders * v.parallelism
        transfer += crossing / (t.channel_capacity * lanes) * hop
    # subtasks work side by side; behind a hash edge a skewed input may load one of them
    work = sum(flow * t.record_cost / (1 if v.edge == "hash" else v.parallelism)
               for flow, v in zip(flows, vertices))
    hops = (len(flows) - 1) * hop
    # readers get their splits one at a time from the split enumerator: a request and
    # an assignment (two rpc latencies) per split, plus the registration
    assign = 2 * (scenario.workload.splits + 1) * (t.rpc_latency + t.jitter)
    return transfer + work + hops + assign


def busy_time(scenario: "Scenario") -> float:
    """The most time a correct run spends working (not waiting for a checkpoint to time
    out): one pass of the input and a checkpoint cycle to finish, and for each failover
    the faults can cause the restart delay, a replay and a cycle; faults add their own
    durations and delays."""
    t = scenario.timing
    _, slack, failovers = _fault_slack(scenario)
    cycle = (scenario.checkpoints.interval + slowest_idle_checkpoint(scenario)
             + t.rpc_latency + t.jitter)
    one_pass = 2 * data_time(scenario) + cycle
    return one_pass + failovers * (scenario.restart.delay + one_pass) + slack


def horizon(scenario: "Scenario") -> float:
    """The simulated time (from the run's start) by which a correct run has finished.

    The busy time (`busy_time`), plus a timed-out checkpoint per pass (a checkpoint
    pending when the input ends delays the final one by up to the timeout), after the
    last timed fault or savepoint request and a quiet period.  Never below the bound
    of earlier versions (the quiet period plus 100 times the work), so a run judged
    finished before is judged so still.
    """
    last, _, failovers = _fault_slack(scenario)
    # a growing log: the input ends only once its last record is produced
    last = max(last, scenario.workload.last_produce)
    work = scenario.workload.records * scenario.timing.record_cost
    bound = busy_time(scenario) + (1 + failovers) * scenario.checkpoints.timeout
    return last + QUIET_PERIOD + max(100 * work, bound)


class Cost(NamedTuple):
    """What running and judging a scenario costs, estimated from the scenario alone.

    `run_events`: simulated events of one run, at most (a trace entry each);
    `record_visits`: records entering vertices in one run, failover replays included;
    `run_units`: both together (what a run's time and memory follow);
    `restores`: the timelines the properties restore (savepoints, and checkpoints up
    to MAX_RESTORED_CHECKPOINTS, each by fork and by rollback, those with channel
    state at other parallelisms too; a timeline per rescale-chain step);
    `judge_units`: the run, its re-run for determinism, every restored timeline (each
    a run at most) and the oracle's pass over the input for each timeline judged.
    """

    run_events: float
    record_visits: float
    run_units: float
    checkpoints: float
    restores: int
    judge_units: float
    horizon: float


#: Units per record visit and per record or key the oracle folds, against one per
#: simulated event (measured in CPU time with benchmarks/cost_bounds.py on its worst
#: cases: a unit of a restored run ~0.5 us, the properties' passes over a timeline's
#: records and keys (oracle, store reads, canonical forms) ~20 units a record and key;
#: a record visit ~1 unit: 577k visits of 120 records through two broadcast fan-outs
#: ran in 0.2 s)
VISIT_UNITS = 1.0
ORACLE_UNITS = 20.0
STATE_UNITS = 3.0
#: Budget of one run (events plus record visits): a run's trace and memory follow it.
MAX_RUN_UNITS = 4_000_000
#: Budget of judging (see `Cost.judge_units`): 0.3-0.8 us of CPU a unit (the most for
#: wide topologies: 96 tasks), so the most expensive admitted scenario of each shape is
#: judged in at most ~33 s of CPU on a loaded machine (the target is 60 s and 2 GiB on
#: a 2-core machine; benchmarks/cost_bounds.py).  The generator's scenarios stay far
#: below it (the largest of 2,000 draws: ~7.7M; its largest topology at 120 records:
#: ~21M).  28M would bring wide to ~15 s but refuses scenarios the tests hold valid.
MAX_JUDGE_UNITS = 40_000_000


def estimate(scenario: "Scenario") -> Cost:
    """The cost of running and judging `scenario`, from the scenario alone.

    Data: every buffer crossing an edge is sent, arrives and is processed, every
    record is handled at every vertex it enters, and each failover the faults can
    cause replays the input.  Checkpoints: one per interval (none faster than the
    quickest checkpoint) until the horizon, each a few events per task and channel,
    and a timer tick per interval besides.  Judging runs the scenario twice, restores
    every savepoint and up to MAX_RESTORED_CHECKPOINTS checkpoints (each a run at
    most) and folds the input once per snapshot it judges.
    """
    c = scenario.checkpoints
    vertices = scenario.topology.vertices
    tasks = sum(v.parallelism for v in vertices)
    channels = sum(v.parallelism if v.edge == "forward" else vertices[i - 1].parallelism
                   * v.parallelism for i, v in enumerate(vertices) if i)
    _, _, failovers = _fault_slack(scenario)
    passes = 1 + failovers
    data = 3.0 * sum(_buffers(scenario)) + _flows(scenario)[0] / scenario.timing.buffer_records
    visits = float(sum(_flows(scenario))) * passes
    until = horizon(scenario)
    ticks = until / c.interval  # a stuck run ticks until the horizon (a cheap event each)
    # checkpoints complete while the job works: a fault or savepoint far in the future
    # does not keep a finished job alive
    # (a growing log keeps the job working until its last record is produced)
    busy = busy_time(scenario) + scenario.workload.last_produce
    # a barrier behind data waits for the buffers queued ahead of it at every hop
    # (unaligned barriers overtake them); up to max_concurrent checkpoints overlap
    duration = quickest_checkpoint(scenario)
    if c.mode != "unaligned":
        t = scenario.timing
        duration += ((len(vertices) - 1) * t.channel_capacity * t.buffer_records
                     * t.record_cost)
    checkpoints = min(ticks, busy / max(c.interval, duration / c.max_concurrent)
                      + len(scenario.savepoints) + passes)
    # each snapshot copies every keyed operator's state: an entry per key
    keyed = sum(1 for v in vertices if v.keyed)
    per_checkpoint = (6.0 * tasks + 2.0 * channels
                      + STATE_UNITS * keyed * min(scenario.workload.keys,
                                                  scenario.workload.records))
    run_events = passes * (data + 4 * tasks + channels) + checkpoints * per_checkpoint + ticks
    run_units = run_events + VISIT_UNITS * visits
    # each judged snapshot is restored twice: into the store as of its completion
    # (fork) and into the store as it stands later (rollback); one holding channel
    # state (unaligned) also at two other parallelisms (1 and twice the job's), each
    # by fork and by rollback, unless a broadcast edge fixes the parallelism
    judged = int(min(checkpoints, MAX_RESTORED_CHECKPOINTS)) + len(scenario.savepoints)
    rescaled = c.mode == "unaligned" and not any(v.edge == "broadcast" for v in vertices)
    # the rescale chain (Scenario.rescales): a restored timeline per step
    restores = (6 if rescaled else 2) * judged + len(scenario.rescales)
    # each judged snapshot: the oracle folds the input (per key) for its consistent cut,
    # each restored timeline: its output is compared with the oracle's
    oracle = restores * ORACLE_UNITS * (scenario.workload.records + scenario.workload.keys)
    judge = (2 + restores) * run_units + oracle
    return Cost(run_events, visits, run_units, checkpoints, restores, judge, until)


def check_budget(scenario: "Scenario") -> None:
    """Refuse a scenario whose estimated cost is over the budget, naming the figure
    and by how much (ScenarioError)."""
    from onceflow.errors import ScenarioError  # noqa: PLC0415

    cost = estimate(scenario)
    hint = ("use fewer records, a longer checkpoint interval, lower parallelism, fewer "
            "flat_map fan-outs, faults or savepoints")
    if cost.run_units > MAX_RUN_UNITS:
        raise ScenarioError(
            "workload.records", f"one run would cost ~{describe(cost.run_units)} units "
            f"({describe(cost.record_visits)} record visits), "
            f"{cost.run_units / MAX_RUN_UNITS:.1f}x the budget of {describe(MAX_RUN_UNITS)}; "
            f"{hint}")
    if cost.judge_units > MAX_JUDGE_UNITS:
        raise ScenarioError(
            "workload.records", f"running and judging would cost ~{describe(cost.judge_units)} "
            f"units ({cost.restores + 2} runs of {describe(cost.run_units)}), "
            f"{cost.judge_units / MAX_JUDGE_UNITS:.1f}x the budget of "
            f"{describe(MAX_JUDGE_UNITS)}; {hint}")


def describe(value: Any) -> str:
    """A figure for messages: `950`, `12.3k`, `55.7M`."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"
