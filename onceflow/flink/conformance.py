"""`onceflow conformance`: a fixed suite of scenarios, each run in the model and on Flink.

The suite covers the barrier modes, the three sink kinds, a crash in an
exactly-once cell and in an at-least-once cell, a checkpoint-notification
crash behind rebalance/flat_map/filter edges, a window, a stop-with-savepoint
restored at another parallelism, and a failed stop-with-savepoint.  Scenarios
are built here, not drawn: the suite is the same in every run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from attrs import frozen

from onceflow.faults.plan import Crash, PhaseCrash
from onceflow.flink.compare import Comparison, compare
from onceflow.flink.console import sigterm_interrupts
from onceflow.scenario import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology,
                               Vertex, Workload)

__all__ = ["CASES", "Case", "run_suite"]


@frozen
class Case:
    name: str
    cell: str          # what the case covers
    scenario: Scenario


def _chain(*middle: Vertex, p: int = 2, sink_edge: str = "forward") -> Topology:
    return Topology((Vertex("source", "source", p), *middle, Vertex("sink", "sink", p, sink_edge)))


_KEYED = _chain(Vertex("map", "map", 2, "forward", 1), Vertex("reduce", "reduce", 2, "hash"))
_WORK = Workload(records=2000, keys=8, splits=4, seed=7)
_TIMING = Timing(record_cost=0.05)  # 2,000 records take ~50 simulated ms: several checkpoints


def _scenario(**kw: Any) -> Scenario:
    base: dict[str, Any] = {"topology": _KEYED, "workload": _WORK, "timing": _TIMING,
                            "checkpoints": CheckpointConfig(mode="aligned", interval=10.0)}
    base.update(kw)
    return Scenario(**base)


CASES: tuple[Case, ...] = (
    Case("eo-crash", "aligned, two_phase, crash mid-run (exactly-once cell)",
         _scenario(faults=(Crash(at=33.0, target="map[1]"),))),
    Case("alo-append-crash", "at_least_once, append, crash mid-run (at-least-once cell)",
         _scenario(sink="append", checkpoints=CheckpointConfig(mode="at_least_once", interval=10.0),
                   faults=(Crash(at=33.0, target="map[1]"),))),
    Case("savepoint-rescale", "aligned, two_phase, stop-with-savepoint restored at parallelism 3",
         _scenario(savepoints=(SavepointRequest(at=25.0, stop=True, restore_parallelism=3),))),
    Case("stop-savepoint-fails", "aligned, two_phase, stop-with-savepoint whose sink fails "
                                 "after the savepoint",
         _scenario(savepoints=(SavepointRequest(at=25.0, stop=True),),
                   faults=(PhaseCrash(phase="stop_savepoint", target="sink[0]"),))),
    Case("unaligned-idempotent", "unaligned, idempotent, crash mid-run",
         _scenario(sink="idempotent", checkpoints=CheckpointConfig(mode="unaligned", interval=10.0),
                   faults=(Crash(at=33.0, target="reduce[0]"),))),
    Case("notify-crash-shuffled", "aligned, two_phase, rebalance/flat_map/filter, crash in a "
                                  "checkpoint notification",
         _scenario(topology=_chain(Vertex("fan", "flat_map", 2, "rebalance", 2),
                                   Vertex("even", "filter", 3, "rebalance", 2), p=2,
                                   sink_edge="rebalance"),
                   faults=(PhaseCrash(phase="notify_complete", target="fan[0]", checkpoint=2),))),
    Case("alo-window", "at_least_once, two_phase, count window, snapshot crash",
         _scenario(topology=_chain(Vertex("win", "window", 2, "hash", 5)),
                   checkpoints=CheckpointConfig(mode="at_least_once", interval=10.0),
                   faults=(PhaseCrash(phase="after_sync_snapshot", target="win[1]", checkpoint=3),))),
    Case("aligned-append-clean", "aligned, append, no fault (no duplicates without a crash)",
         _scenario(sink="append")),
    Case("alo-2pc-crash", "at_least_once, two_phase, crash in the keyed reduce (duplicates "
                          "are timing: records that overtake a barrier)",
         _scenario(checkpoints=CheckpointConfig(mode="at_least_once", interval=10.0),
                   faults=(Crash(at=33.0, target="reduce[1]"),))),
    Case("window-stop-rescale", "aligned, two_phase, count window, stop-with-savepoint "
                                "restored at parallelism 1",
         _scenario(topology=_chain(Vertex("win", "window", 2, "hash", 7)),
                   savepoints=(SavepointRequest(at=25.0, stop=True, restore_parallelism=1),))),
    Case("broadcast-append", "aligned, append, broadcast edge into a keyed reduce, no fault",
         _scenario(sink="append", topology=_chain(Vertex("m", "map", 2, "forward", 1),
                                                  Vertex("b", "map", 3, "broadcast", 2),
                                                  Vertex("r", "reduce", 2, "hash")))),
)


def _row(case: Case, c: Comparison | None, error: str | None, seconds: float) -> dict[str, Any]:
    from onceflow.token import encode  # noqa: PLC0415

    row: dict[str, Any] = {"name": case.name, "cell": case.cell, "seconds": round(seconds, 1),
                           "token": encode(case.scenario)}
    if c is None:
        row.update(agree=False, error=error)
    else:
        row.update(c.to_data())
    return row


def run_suite(*, count: int | None, as_json: bool, time_limit: float, cache: str | None,
              keep: str | None) -> int:
    from onceflow.flink.errors import FlinkError  # noqa: PLC0415

    cases = CASES[:count] if count else CASES
    if keep and Path(keep).exists() and (not Path(keep).is_dir() or any(Path(keep).iterdir())):
        raise FlinkError(f"--keep {keep}: give a new or empty directory (each case gets a "
                         "subdirectory)")
    rows = []
    if not as_json:
        print(f"{'case':24}{'onceflow':24}{'flink':24}{'agree':7}{'seconds':>8}")
    with sigterm_interrupts():
        for case in cases:
            started = time.monotonic()
            c, error = None, None
            workdir = str(Path(keep) / case.name) if keep else None
            try:
                c = compare(case.scenario, time_limit=time_limit, cache=cache, keep=workdir)
            except FlinkError as exc:  # one job hung or failed: the others still run
                error = str(exc)
            row = _row(case, c, error, time.monotonic() - started)
            rows.append(row)
            if not as_json:
                if c is None:
                    print(f"{case.name:24}{'-':24}{'error':24}{'NO':7}{row['seconds']:>8.1f}  {error}")
                else:
                    ours = f"{c.onceflow.status}/{c.onceflow.outcome}"
                    theirs = f"{c.flink.status}/{c.flink.outcome}"
                    agree = ("yes" if c.same_outcome else "yes*") if c.agree else "NO"
                    print(f"{case.name:24}{ours:24}{theirs:24}{agree:7}"
                          f"{row['seconds']:>8.1f}")
    agreed = sum(1 for r in rows if r["agree"])
    if as_json:
        print(json.dumps({"cases": rows, "agreed": agreed, "total": len(rows)}, sort_keys=True))
    else:
        print(f"{agreed}/{len(rows)} agree" + (
            " (* at-least-once: duplicates on one side only, a matter of timing)"
            if any(r.get("same_outcome") is False and r["agree"] for r in rows) else ""))
        for row in rows:
            if not row["agree"]:
                print(f"{row['name']}: onceflow flink --scenario {row['token']}")
    return 0 if agreed == len(rows) else 1
