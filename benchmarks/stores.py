"""SQLite vs the in-memory store: fuzzer scenarios per second, side by side in one process.

    python benchmarks/stores.py [--scenarios 150] [--rounds 3]

Each round judges the same drawn scenarios (run + check(), restores and
rollbacks included, as the fuzzer does) on each store, alternating, and the
best round of each is reported with the ratio SQLite / memory (target >= 0.2).
"""

from __future__ import annotations

import argparse
import gc
import time

from attrs import evolve

from onceflow.model import run
from onceflow.properties import Violation, check
from onceflow.strategies import scenario_from_seed


def judge(scenarios: list, store: str) -> float:
    """Seconds to run and judge every scenario on `store`."""
    gc.collect()
    start = time.perf_counter()
    for scenario in scenarios:
        result = run(evolve(scenario, store=store))
        try:
            check(result)
        except Violation as violation:  # the correct model: a false alarm
            raise SystemExit(f"false alarm on {store}: {violation.finding.summary}") from None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scenarios = [scenario_from_seed(args.seed + i) for i in range(args.scenarios)]
    best = {"memory": float("inf"), "sqlite": float("inf")}
    for _ in range(args.rounds):
        for store in best:
            best[store] = min(best[store], judge(scenarios, store))
    rate = {s: args.scenarios / t for s, t in best.items()}
    print(f"{'store':<8} {'scenarios/s':>12} {'seconds':>9}")
    for store in best:
        print(f"{store:<8} {rate[store]:>12.1f} {best[store]:>9.2f}")
    print(f"ratio sqlite/memory: {rate['sqlite'] / rate['memory']:.2f} (target >= 0.20)")


if __name__ == "__main__":
    main()
