"""The most expensive scenario the bounds admit, per topology shape: time and peak memory
to run and judge it (issue 14).  A benchmark, not a test: run it on a quiet machine.

    python benchmarks/cost_bounds.py [--shape NAME] [--json]

For each shape the records are raised (binary search) to the most the scenario's
validation admits, with keys = records (the oracle's worst case), a 0.5 ms checkpoint
interval and zero latencies (the most checkpoints, so the most restores); each
scenario is run and judged in a fresh process (peak RSS is that process's).  Prints
CPU time (the child's user + system time: what a busy machine does not inflate much),
wall time and peak RSS per shape, and PASS or FAIL against the target: judged in at
most 60 s and 2 GiB (CPU time stands in for the time on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any, Callable

from attrs import evolve

from onceflow import (CheckpointConfig, Scenario, ScenarioError, Timing, Topology, Vertex,
                      Workload)
from onceflow.cost import estimate
from onceflow.faults.plan import Crash
from onceflow.scenario import MAX_KEYS, MAX_RECORDS, SavepointRequest

FAST = Timing(latency=0.0, rpc_latency=0.0, upload_time=0.0)


def _v(uid: str, kind: str, p: int, edge: str = "forward", param: int = 0) -> Vertex:
    return Vertex(uid, kind, p, edge, param)


SHAPES: dict[str, Callable[[], Scenario]] = {
    "pipe": lambda: Scenario(topology=Topology((_v("source", "source", 2),
                                                _v("sink", "sink", 2))), timing=FAST),
    "keyed": lambda: Scenario(timing=FAST),  # source -> map -> reduce (hash) -> sink
    "window": lambda: Scenario(topology=Topology((
        _v("source", "source", 4), _v("window", "window", 4, "hash", 2),
        _v("sink", "sink", 4))), timing=FAST),
    "wide": lambda: Scenario(topology=Topology(
        (_v("source", "source", 8), _v("fm", "flat_map", 8, "forward", 2))
        + tuple(_v(f"map{i}", "map", 8, "rebalance", 1) for i in range(4))
        + (_v("reduce", "reduce", 8, "hash"),)
        + tuple(_v(f"after{i}", "map", 8, "forward", 1) for i in range(4))
        + (_v("sink", "sink", 8),)), timing=FAST),
    "faults": lambda: Scenario(
        timing=FAST, savepoints=tuple(SavepointRequest(at=float(5 * i)) for i in range(16)),
        faults=tuple(Crash(float(3 + 7 * i), f"map[{i % 2}]") for i in range(32)),
        restart=evolve(Scenario().restart, attempts=40)),
}


def most_expensive(shape: str) -> Scenario:
    base = evolve(SHAPES[shape](), checkpoints=CheckpointConfig(interval=0.5))

    def build(records: int) -> Scenario | None:
        try:
            return evolve(base, workload=Workload(records=records,
                                                  keys=max(1, min(records, MAX_KEYS))))
        except ScenarioError:
            return None

    lo, hi = 0, MAX_RECORDS
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if build(mid) is not None:
            lo = mid
        else:
            hi = mid - 1
    found = build(lo)
    assert found is not None
    return found


def judge(scenario_json: str) -> dict[str, Any]:
    """Run and judge one scenario here; its figures (for the child process)."""
    from onceflow.errors import OperatorError
    from onceflow.model.simulation import run
    from onceflow.properties.checks import check
    from onceflow.properties.violation import Violation

    scenario = Scenario.from_json(scenario_json)
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = run(scenario)
    ran = time.perf_counter() - started
    ran_cpu = time.process_time() - cpu_started
    restores = [0]
    verdict = "clean"
    try:
        check(result, on_restore=lambda _r: restores.__setitem__(0, restores[0] + 1))
    except (Violation, OperatorError) as exc:
        verdict = type(exc).__name__
    total = time.perf_counter() - started
    total_cpu = time.process_time() - cpu_started
    return {"run_seconds": round(ran, 2), "judge_seconds": round(total, 2),
            "run_cpu_seconds": round(ran_cpu, 2), "judge_cpu_seconds": round(total_cpu, 2),
            "status": result.status, "events": len(result.trace),
            "snapshots": len(result.snapshots), "restores": restores[0], "verdict": verdict,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


#: the target (issue 14): any admitted scenario runs and is judged within these
LIMIT_SECONDS = 60.0
LIMIT_MIB = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(judge(args.child)))
        return
    rows = []
    for shape in args.shape or sorted(SHAPES):
        scenario = most_expensive(shape)
        cost = estimate(scenario)
        out = subprocess.run([sys.executable, __file__, "--child", scenario.to_json()],
                             capture_output=True, text=True, check=True)
        row = {"shape": shape, "records": scenario.workload.records,
               "estimated_run_units": int(cost.run_units),
               "estimated_judge_units": int(cost.judge_units), **json.loads(out.stdout)}
        row["pass"] = (row["judge_cpu_seconds"] <= LIMIT_SECONDS
                       and row["peak_rss_mib"] <= LIMIT_MIB)
        rows.append(row)
        if not args.json:
            print(f"{shape:7} records {row['records']:>7}  run+judge CPU "
                  f"{row['judge_cpu_seconds']:>6} s (run {row['run_cpu_seconds']:>5} s)  wall "
                  f"{row['judge_seconds']:>6} s  peak {row['peak_rss_mib']:>5} MiB  events "
                  f"{row['events']:>8}  snapshots {row['snapshots']:>5}  restores "
                  f"{row['restores']:>3}  {row['status']}, {row['verdict']}  "
                  f"{'PASS' if row['pass'] else 'FAIL'}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        worst = max(rows, key=lambda r: r["judge_cpu_seconds"])
        print(f"{'PASS' if all(r['pass'] for r in rows) else 'FAIL'}: the slowest shape "
              f"({worst['shape']}) took {worst['judge_cpu_seconds']} s CPU against "
              f"{LIMIT_SECONDS:g} s; the largest peak was "
              f"{max(r['peak_rss_mib'] for r in rows)} MiB against {LIMIT_MIB} MiB")


if __name__ == "__main__":
    main()
