"""One scenario both ways: onceflow's model and real Flink, judged alike, side by side.

Each side's committed output is put in onceflow's canonical form and compared
with the oracle's (never with the other side): `outcome` is "exact",
"duplicates", "loss", "loss+duplicates" or "values" (same ids, other values);
`verdict` says whether the scenario's guarantee held.  The sides agree when
their status, verdict and outcome are the same; where only at-least-once is
promised, "exact" on one side and "duplicates" on the other also agree (how many
records are replayed is timing), with `same_outcome` false.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from typing import Any

from attrs import frozen

from onceflow.flink.build import cache_dir, compile_job, toolchain
from onceflow.flink.javagen import java_source
from onceflow.flink.runner import FlinkRun, run_job
from onceflow.flink.translate import FlinkPlan, translate
from onceflow.model.records import Record
from onceflow.model.simulation import RunResult, restore, run
from onceflow.properties.checks import check, expected_records
from onceflow.properties.guarantees import EXACTLY_ONCE, guarantee
from onceflow.properties.oracle import canonical
from onceflow.properties.violation import Violation
from onceflow.scenario import Scenario

__all__ = ["Comparison", "Side", "compare", "judge"]


@frozen
class Side:
    status: str
    records_out: int
    duplicates: int
    lost: int
    outcome: str
    verdict: str
    output: dict[int, Any]  # canonical form, per key

    def to_data(self) -> dict[str, Any]:
        return {"status": self.status, "records_out": self.records_out,
                "duplicates": self.duplicates, "lost": self.lost, "outcome": self.outcome,
                "verdict": self.verdict}


@frozen
class Comparison:
    scenario: Scenario
    onceflow: Side
    flink: Side
    flink_seconds: float
    compile_seconds: float
    cached: bool
    faults_fired: tuple[int, ...]   # on Flink: indexes into scenario.faults
    events: tuple[dict[str, Any], ...]
    workdir: str

    @property
    def same_outcome(self) -> bool:
        return self.onceflow.outcome == self.flink.outcome

    @property
    def agree(self) -> bool:
        """Same status, same verdict, and the same outcome, except that where only
        at-least-once is promised, duplicates on one side and none on the other is timing
        (how many records overtake a barrier, or were written after the last checkpoint)."""
        a, b = self.onceflow, self.flink
        if a.status != b.status:
            return False
        if a.status == "finished" and a.verdict.split(" ")[0] != b.verdict.split(" ")[0]:
            return False  # (a failed job's output is judged by neither side)
        if self.same_outcome:
            return True
        timing = {"exact", "duplicates"}
        return (guarantee(self.scenario) != EXACTLY_ONCE and a.outcome in timing
                and b.outcome in timing)

    def to_data(self) -> dict[str, Any]:
        return {"agree": self.agree, "same_outcome": self.same_outcome, "onceflow": self.onceflow.to_data(),
                "flink": self.flink.to_data(), "flink_seconds": round(self.flink_seconds, 2),
                "compile_seconds": round(self.compile_seconds, 2), "compiled_from_cache": self.cached,
                "flink_faults_fired": list(self.faults_fired),
                "flink_events": [e for e in self.events if e.get("event") != "done"],
                "workdir": self.workdir or None}


def judge(scenario: Scenario, status: str, got: list[Record], expected: list[Record],
          verdict: str | None = None) -> Side:
    """A side's figures: its output against the oracle's `expected`."""
    have, want = Counter(r.id for r in got), Counter(r.id for r in expected)
    duplicates = sum(max(0, n - want[i]) for i, n in have.items())
    lost = sum(max(0, n - have[i]) for i, n in want.items())
    topology = scenario.topology
    mine, theirs = canonical(got, topology), canonical(expected, topology)
    if mine == theirs:
        outcome = "exact"
    elif lost and duplicates:
        outcome = "loss+duplicates"
    elif lost:
        outcome = "loss"
    elif duplicates:
        outcome = "duplicates"
    else:
        outcome = "values"
    if verdict is None:  # judged by the scenario's guarantee, as the properties do
        promised = guarantee(scenario)
        if status != "finished":
            verdict = f"not judged: the job {status}"
        elif promised == EXACTLY_ONCE:
            verdict = "holds (exactly-once)" if outcome == "exact" else f"violated: exactly-once ({outcome})"
        else:
            verdict = "holds (at-least-once)" if not lost else "violated: records lost"
    return Side(status, len(got), duplicates, lost, outcome, verdict, mine)


def _comparable(result: RunResult) -> RunResult:
    """The model timeline Flink's run corresponds to: after a stop-with-savepoint, the
    restore from that savepoint (at the requested parallelism) runs to the end."""
    if result.stopped_with is None:
        return result
    snapshot = result.snapshot(result.stopped_with)
    request = result.savepoint_requests.get(snapshot.id)
    if request is not None and request.drain:
        return result
    return restore(result, snapshot, request.restore_parallelism if request else None)


def model_side(scenario: Scenario, result: RunResult) -> Side:
    try:
        check(result)
        verdict = f"holds ({guarantee(scenario).replace('_', '-')})"
    except Violation as v:
        verdict = f"violated: {v.finding.property} ({v.finding.anomaly})"
    timeline = _comparable(result)
    return judge(scenario, timeline.status, timeline.committed(), expected_records(timeline), verdict)


def prepare(scenario: Scenario) -> tuple[RunResult, FlinkPlan]:
    """The model's run and the Flink plan (raises Untranslatable first, before any Java)."""
    result = run(scenario)
    return result, translate(scenario, result)


def compare(scenario: Scenario, *, time_limit: float = 180.0, cache: str | None = None,
            keep: str | None = None) -> Comparison:
    """Run `scenario` in the model and on Flink; raises Untranslatable, FlinkUnavailable
    or FlinkError (each a one-line message)."""
    result, plan = prepare(scenario)
    tools = toolchain()
    name, source = java_source(plan)
    started = time.monotonic()
    classes, cached = compile_job(tools, name, source, cache_dir(cache))
    compiled = time.monotonic() - started
    flink: FlinkRun = run_job(tools, classes, name, plan, time_limit=time_limit, keep=keep)
    ours = model_side(scenario, result)
    expected = expected_records(_comparable(result)) if result.stopped_with is not None \
        else expected_records(result)
    theirs = judge(scenario, flink.status, list(flink.records), expected)
    if keep is None:
        shutil.rmtree(flink.workdir, ignore_errors=True)
    return Comparison(scenario, ours, theirs, flink.seconds, compiled, cached, flink.faults_fired,
                      flink.events, flink.workdir if keep else "")
