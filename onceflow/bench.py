"""`onceflow bench`: how fast the model simulates, against a bare event loop.

The reference pipeline is source (p=4) -> map -> keyed reduce (p=4) -> two-phase
sink, 20k records over 64 keys in 8 splits, a checkpoint every 50 simulated ms.
It is run with `onceflow.run`; its simulated events (SimPy events processed) are
counted on an identical, separately driven replay whose trace digest must match.

The yardstick is a bare `heapq` event loop in this module that moves the same
records (`split_logs`) through the same channel structure: 4 sources read
buffers of `Timing.buffer_records` round-robin from their splits, forward
channels to 4 maps (value + 1), hash channels (`subtask_for_key`) to 4 reduces
(a running sum per key), forward channels to 4 sinks (a list each).  Same
latency, same per-record cost, same channel capacity (credit-based
backpressure), buffers as lists, FIFO per channel, one heap entry per buffer
delivery and per processing step, no checkpoints.  Both start from the
workload (building the input log is timed in both), and both must end with the
same per-key sums, or the benchmark refuses to report.

A benchmark, not a timed test: wall time is measured here and nowhere else.
"""

from __future__ import annotations

import gc
import heapq
import os
import platform
import sys
import time
from collections import deque
from typing import Any

from onceflow.model.job import RUNNING, STUCK, Job, horizon
from onceflow.model.keygroups import subtask_for_key
from onceflow.model.records import Record, split_logs
from onceflow.model.simulation import RunResult, run
from onceflow.scenario import (CheckpointConfig, Scenario, Timing, Topology, Vertex,
                               Workload)

__all__ = ["bare_loop", "bench", "count_events", "format_report", "main",
           "reference_scenario"]

#: What the model's rate is held against: at least this share of the bare loop's.
TARGET_RATIO = 1 / 3

PARALLELISM = 4


def reference_scenario(records: int = 20_000) -> Scenario:
    """The pipeline of the benchmark (issue 2)."""
    p = PARALLELISM
    return Scenario(
        topology=Topology((
            Vertex("source", "source", p),
            Vertex("map", "map", p, "forward", 1),
            Vertex("reduce", "reduce", p, "hash"),
            Vertex("sink", "sink", p, "forward"),
        )),
        workload=Workload(records=records, keys=64, splits=8),
        checkpoints=CheckpointConfig(interval=50.0),
        timing=Timing(),
        sink="two_phase",
    )


# -- the model ---------------------------------------------------------------------


def count_events(scenario: Scenario) -> tuple[int, Job]:
    """Replay `Job.run` step by step; the number of SimPy events it processes.

    `env.run(until=t)` processes every event scheduled before `t` (its stop
    event is urgent, so nothing at `t` itself); this loop does the same, one
    `env.step()` at a time.  The reference scenario has no faults and no
    savepoint requests, so nothing else of `run` needs replaying.
    """
    if scenario.faults or scenario.savepoints:
        raise ValueError("count_events replays plain runs only (no faults, no savepoints)")
    job = Job(scenario)
    env = job.env
    job.sources.start()
    job.deploy(job.initial)
    job.coordinator.start()
    until = env.now + horizon(scenario)
    step = env.step
    peek = env.peek
    events = 0
    while peek() < until:
        step()
        events += 1
    if job.status == RUNNING:
        job.status = STUCK
        job.end_time = env.now
    return events, job


def model_sums(result: RunResult) -> dict[int, int]:
    """Per-key final sums as the model's committed output shows them.

    The reduce emits its running sum under each input record; values are
    positive, so a key's final sum is the largest it emitted.
    """
    sums: dict[int, int] = {}
    for r in result.committed():
        if r.value > sums.get(r.key, 0):
            sums[r.key] = r.value
    return sums


def job_sums(job: Job) -> dict[int, int]:
    """Per-key sums held in the reduce operators' state at the end of `job`."""
    assert job.attempt is not None
    sums: dict[int, int] = {}
    for task in job.attempt.tasks:
        if task.vertex.kind == "reduce":
            sums.update(task.operator.sums)
    return sums


# -- the bare loop -------------------------------------------------------------------

_DELIVER, _STEP = 0, 1


def bare_loop(workload: Workload, timing: Timing, *, parallelism: int = PARALLELISM,
              max_parallelism: int = 128, addend: int = 1) -> dict[str, Any]:
    """Move `workload`'s records through the reference pipeline on a bare heapq loop.

    Tasks are numbered layer * parallelism + subtask (layers: source, map,
    reduce, sink).  A channel is [sender, receiver, buffers held, last
    arrival, waiting sender]; a receiver's inbox holds (channel, buffer) in
    arrival order, which is FIFO per channel.  A task has at most one step
    on the heap; a step takes one buffer, sends its output (arriving after
    `latency`), and schedules the next step after len(buffer) * record_cost.
    A sender with a full output channel waits for credit, as in the model.
    """
    p = parallelism
    logs = split_logs(workload)
    latency = timing.latency
    cost = timing.record_cost
    size = timing.buffer_records
    capacity = timing.channel_capacity

    n_tasks = 4 * p
    inbox: list[deque[tuple[list[Any], list[Record]]]] = [deque() for _ in range(n_tasks)]
    scheduled = [False] * n_tasks
    outputs: list[list[list[Any]]] = [[] for _ in range(n_tasks)]

    def channel(sender: int, receiver: int) -> list[Any]:
        ch = [sender, receiver, 0, 0.0, False]
        outputs[sender].append(ch)
        return ch

    for s in range(p):
        channel(s, p + s)  # source -> map: forward
        for r in range(p):
            channel(p + s, 2 * p + r)  # map -> reduce: hash, one channel per pair
        channel(2 * p + s, 3 * p + s)  # reduce -> sink: forward

    # sources: their splits and offsets; reduces: sums; sinks: what they received
    splits = [[x for x in range(workload.splits) if x % p == s] for s in range(p)]
    offsets = [dict.fromkeys(own, 0) for own in splits]
    turns = [0] * p
    sums: list[dict[int, int]] = [{} for _ in range(p)]
    received: list[list[Record]] = [[] for _ in range(p)]
    route: dict[int, int] = {}

    heap: list[tuple[float, int, int, Any, Any]] = []
    push = heapq.heappush
    pop = heapq.heappop
    seq = 0
    for t in range(p):  # the sources start at time 0
        push(heap, (0.0, seq, _STEP, t, None))
        seq += 1
        scheduled[t] = True

    events = 0
    while heap:
        now, _, kind, a, b = pop(heap)
        events += 1

        if kind == _DELIVER:
            receiver = a[1]
            inbox[receiver].append((a, b))
            if not scheduled[receiver]:
                scheduled[receiver] = True
                push(heap, (now, seq, _STEP, receiver, None))
                seq += 1
            continue

        # a processing step of task `a`
        task = a
        outs = outputs[task]
        blocked = False
        for ch in outs:
            if ch[2] >= capacity:
                ch[4] = True  # wake me when it has credit again
                blocked = True
                break
        if blocked:
            scheduled[task] = False
            continue
        layer, sub = divmod(task, p)

        if layer == 0:  # source: read the next buffer, round-robin over its splits
            own = splits[sub]
            buf: list[Record] = []
            for _ in range(len(own)):
                split = own[turns[sub] % len(own)]
                turns[sub] += 1
                offset = offsets[sub][split]
                log = logs[split]
                if offset < len(log):
                    buf = log[offset:offset + size]
                    offsets[sub][split] = offset + len(buf)
                    break
            if not buf:
                scheduled[task] = False  # end of input
                continue
            out_bufs: list[list[Record]] | None = [buf]
            n = len(buf)
        else:
            box = inbox[task]
            if not box:
                scheduled[task] = False  # idle until a delivery
                continue
            ch, buf = box.popleft()
            ch[2] -= 1
            if ch[4] and ch[2] < capacity:
                ch[4] = False
                sender = ch[0]
                if not scheduled[sender]:
                    scheduled[sender] = True
                    push(heap, (now, seq, _STEP, sender, None))
                    seq += 1
            n = len(buf)
            if layer == 1:  # map
                out_bufs = [[Record(r.id, r.key, r.value + addend, r.split, r.offset)
                             for r in buf]]
            elif layer == 2:  # keyed reduce, routed by key group to the sinks' layer
                state = sums[sub]
                out = []
                for r in buf:
                    total = state.get(r.key, 0) + r.value
                    state[r.key] = total
                    out.append(Record(r.id, r.key, total, r.split, r.offset))
                out_bufs = [out]
            else:  # sink
                received[sub].extend(buf)
                out_bufs = None

        if out_bufs is not None:
            if layer == 1:  # hash: split the map's output per reduce subtask
                pending: list[list[Record]] = [[] for _ in range(p)]
                for r in out_bufs[0]:
                    i = route.get(r.key)
                    if i is None:
                        i = route[r.key] = subtask_for_key(r.key, p, max_parallelism)
                    pending[i].append(r)
                out_bufs = pending
            for ch, out in zip(outs, out_bufs):
                if out:
                    arrival = now + latency
                    if arrival < ch[3]:
                        arrival = ch[3]  # FIFO
                    ch[3] = arrival
                    ch[2] += 1
                    push(heap, (arrival, seq, _DELIVER, ch, out))
                    seq += 1
        push(heap, (now + n * cost, seq, _STEP, task, None))
        seq += 1

    final: dict[int, int] = {}
    for state in sums:
        final.update(state)
    return {"events": events, "sums": final, "received": received, "end_time": now}


def bare_sums(received: list[list[Record]]) -> dict[int, int]:
    """Per-key final sums as the bare loop's sinks received them."""
    sums: dict[int, int] = {}
    for records in received:
        for r in records:
            if r.value > sums.get(r.key, 0):
                sums[r.key] = r.value
    return sums


# -- the benchmark ---------------------------------------------------------------------


def _timed(fn: Any) -> float:
    """Wall seconds of `fn()`, started from a collected heap."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
    }


def bench(records: int = 20_000, repeat: int = 3, profile: bool = False) -> dict[str, Any]:
    """Run the benchmark; best of `repeat` wall times for the model and the bare loop.

    With `profile`, the model is also run once under cProfile and the top of its
    stats is printed (and kept in the result under "profile").
    """
    if repeat < 1 or records < 1:
        raise ValueError("records and repeat must be at least 1")
    scenario = reference_scenario(records)

    workload, timing = scenario.workload, scenario.timing
    maxp = scenario.topology.max_parallelism
    addend = scenario.topology.vertex("map").param
    profiled = _profile(scenario) if profile else None

    def model() -> None:
        run(scenario)

    def bare_run() -> None:
        # run() pauses the garbage collector during a simulation; so does the bare loop
        enabled = gc.isenabled()
        gc.disable()
        try:
            bare_loop(workload, timing, max_parallelism=maxp, addend=addend)
        finally:
            if enabled:
                gc.enable()

    split_logs(workload)  # the input log is built once and shared (cached) by both sides

    # Interleaved, so that a noisy machine slows both sides alike; best of `repeat` each.
    # The timed runs keep nothing: a full collection walks every live object, so
    # leftovers of earlier runs would slow the later ones.  The checks below use
    # untimed runs (the model is deterministic; the counted replay must match its digest).
    model_time = bare_time = float("inf")
    for _ in range(repeat):
        model_time = min(model_time, _timed(model))
        bare_time = min(bare_time, _timed(bare_run))

    result = run(scenario)
    bare = bare_loop(workload, timing, max_parallelism=maxp, addend=addend)
    if result.status != "finished":
        raise AssertionError(f"the reference run did not finish: {result.status}")
    events, job = count_events(scenario)
    if job.trace.digest() != result.trace.digest():
        raise AssertionError("the counted replay diverged from onceflow.run")

    # the same work done: every record out, the same per-key sums everywhere
    committed = result.committed()
    received = sum(len(r) for r in bare["received"])
    if len(committed) != records or received != records:
        raise AssertionError(f"records out: model {len(committed)}, bare {received}, "
                             f"expected {records}")
    expected: dict[int, int] = {}
    for log in split_logs(workload):
        for r in log:
            expected[r.key] = expected.get(r.key, 0) + r.value + addend
    sums_model = model_sums(result)
    checks = {"model output": sums_model, "model state": job_sums(job),
              "bare state": bare["sums"], "bare output": bare_sums(bare["received"])}
    for label, sums in checks.items():
        if sums != expected:
            raise AssertionError(f"per-key sums differ from the input's ({label})")

    out: dict[str, Any] = {
        "records": records,
        "repeat": repeat,
        "model": {
            "seconds": model_time,
            "records_per_s": records / model_time,
            "events": events,
            "events_per_s": events / model_time,
            "trace_events": len(result.trace),
            "checkpoints": len(result.checkpoints),
            "simulated_ms": result.end_time,
        },
        "bare": {
            "seconds": bare_time,
            "records_per_s": records / bare_time,
            "events": bare["events"],
            "events_per_s": bare["events"] / bare_time,
            "simulated_ms": bare["end_time"],
        },
        "ratio": (records / model_time) / (records / bare_time),
        "target": TARGET_RATIO,
        "sums_equal": True,
        "model_sums": sums_model,
        "bare_sums": bare["sums"],
        "machine": machine(),
    }
    out["meets_target"] = out["ratio"] >= TARGET_RATIO
    if profiled is not None:
        out["profile"] = profiled
        print(profiled)
    return out


def _profile(scenario: Scenario, top: int = 25) -> str:
    """cProfile stats of one model run, then the garbage collector's pauses in another."""
    import cProfile  # noqa: PLC0415
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    run(scenario)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)

    pauses: dict[int, list[float]] = {}  # generation -> [collections, seconds, collected]
    started = [0.0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            p = pauses.setdefault(info["generation"], [0, 0.0, 0])
            p[0] += 1
            p[1] += time.perf_counter() - started[0]
            p[2] += info["collected"]

    del profiler, stats
    gc.collect()
    gc.callbacks.append(watch)
    try:
        start = time.perf_counter()
        run(scenario)
        elapsed = time.perf_counter() - start
    finally:
        gc.callbacks.remove(watch)
    total = sum(p[1] for p in pauses.values())
    text.write(f"garbage collector during one run of {elapsed * 1000:.1f} ms: "
               f"{total * 1000:.1f} ms ({total / elapsed:.0%})\n")
    for gen, (count, seconds, collected) in sorted(pauses.items()):
        text.write(f"  generation {gen}: {count} collections, {seconds * 1000:.1f} ms, "
                   f"{collected} objects freed\n")
    return text.getvalue()


def format_report(result: dict[str, Any]) -> str:
    """A small plain-text table of `bench`'s result."""
    m, b, mach = result["model"], result["bare"], result["machine"]
    rows = [
        ("", "model", "bare loop"),
        ("wall s (best of %d)" % result["repeat"], f"{m['seconds']:.4f}", f"{b['seconds']:.4f}"),
        ("records/s", f"{m['records_per_s']:,.0f}", f"{b['records_per_s']:,.0f}"),
        ("events", f"{m['events']:,}", f"{b['events']:,}"),
        ("events/s", f"{m['events_per_s']:,.0f}", f"{b['events_per_s']:,.0f}"),
        ("simulated ms", f"{m['simulated_ms']:.2f}", f"{b['simulated_ms']:.2f}"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"onceflow bench: {result['records']:,} records, source p=4 -> map -> "
             "keyed reduce p=4 -> 2PC sink, checkpoint every 50 ms"]
    for i, row in enumerate(rows):
        lines.append(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    verdict = "meets" if result["meets_target"] else "below"
    lines.append(f"  ratio model/bare (records/s): {result['ratio']:.3f} "
                 f"({verdict} the 1/3 target)")
    lines.append("  (both sides read the same cached input log, with the garbage collector paused)")
    lines.append(f"  model: {m['checkpoints']} checkpoints, {m['trace_events']:,} trace events")
    lines.append(f"  per-key sums equal: {'yes' if result['sums_equal'] else 'NO'}")
    lines.append(f"  machine: {mach['platform']}, {mach['python']}, {mach['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="onceflow bench", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print cProfile stats of the model")
    args = parser.parse_args(argv)
    print(format_report(bench(args.records, args.repeat, args.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
