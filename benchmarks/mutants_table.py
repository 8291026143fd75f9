"""Summarise `onceflow mutants --json` runs (one file per seed) as the BENCHMARKS.md table.

    for s in 1 2 3 4 5; do onceflow mutants --budget 60s --seed $s --json > mut_$s.json; done
    python benchmarks/mutants_table.py mut_*.json
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _ints(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):g} ({min(values)}-{max(values)})"


def _fault_kinds(token: str | None) -> set[str]:
    """The kinds of the faults in a counterexample's scenario."""
    if not token:
        return set()
    from onceflow.token import decode  # noqa: PLC0415

    return {type(f).kind_name for f in decode(token).faults}


def needs_a_fault(rows: list[dict[str, Any]]) -> str:
    """'yes (kinds)' when every shrunk counterexample kept a fault (the greedy polish
    drops every fault it can), 'no' when one needed none, '-' when none was found."""
    found = [r for r in rows if r["found"]]
    if not found:
        return "-"
    if any(r["shrunk"]["faults"] == 0 for r in found):
        return "no"
    kinds = sorted(set().union(*(_fault_kinds(r.get("token")) for r in found)))
    return f"yes ({', '.join(kinds)})"


def main(paths: list[str]) -> None:
    runs = [json.load(open(p)) for p in paths]
    names = [row["name"] for row in runs[0]]
    print(f"| mutant | found | s to 1st violation | scenarios | property / anomaly | "
          f"shrunk records | shrunk faults | shrunk p | baseline found | baseline s | "
          f"baseline records | baseline faults | needs a fault |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    hyp_times: list[float] = []
    base_times: list[float] = []
    ratios_time: list[float] = []
    ratios_size: list[float] = []
    for name in names:
        rows: list[dict[str, Any]] = [r for run in runs for r in run if r["name"] == name]
        found = [r for r in rows if r["found"]]
        secs = [r["seconds"] for r in found]
        hyp_times.extend(secs)
        kinds = sorted({f"{r['property']} / {r['anomaly']}" for r in found})
        base = [r["baseline"] for r in rows if r.get("baseline")]
        bfound = [b for b in base if b["found"]]
        bsecs = [b["seconds"] for b in bfound]
        base_times.extend(bsecs)
        if secs and bsecs:
            ratios_time.append(statistics.median(bsecs) / max(statistics.median(secs), 1e-3))
        rec = [r["shrunk"]["records"] for r in found]
        brec = [b["records"] for b in bfound]
        if rec and brec:
            ratios_size.append(statistics.median(brec) / max(statistics.median(rec), 1))
        print(f"| {name} | {len(found)}/{len(rows)} | {_stats(secs)} | "
              f"{_ints([r['scenarios'] for r in found])} | {'; '.join(kinds)} | "
              f"{_ints(rec)} | {_ints([r['shrunk']['faults'] for r in found])} | "
              f"{_ints([r['shrunk']['parallelism'] for r in found])} | "
              f"{len(bfound)}/{len(base)} | {_stats(bsecs)} | {_ints(brec)} | "
              f"{_ints([b['faults'] for b in bfound])} | {needs_a_fault(rows)} |")
    killed = sum(1 for name in names if all(
        r["found"] for run in runs for r in run if r["name"] == name))
    print()
    print(f"- kill rate (found in every run): {killed}/{len(names)}")
    needing = [n for n in names if needs_a_fault(
        [r for run in runs for r in run if r["name"] == n]).startswith("yes")]
    print(f"- mutants whose every shrunk counterexample needs a fault: {len(needing)} "
          f"({', '.join(needing)})")
    per_mutant = [statistics.median([r["seconds"] for run in runs for r in run
                                     if r["name"] == n and r["found"]] or [float("inf")])
                  for n in names]
    print(f"- median over mutants of the median time to first violation: "
          f"{statistics.median(per_mutant):.2f} s (worst mutant {max(per_mutant):.2f} s)")
    if ratios_time:
        print(f"- baseline / Hypothesis, median time to first violation: "
              f"{statistics.median(ratios_time):.2f}x")
    if ratios_size:
        print(f"- baseline / Hypothesis, median counterexample records: "
              f"{statistics.median(ratios_size):.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
