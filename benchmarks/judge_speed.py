"""Scenarios judged per second, as the fuzzer judges them (run + every property,
restores included), now and as before issue 14, in one process (a ratio that holds on
a busy machine).

    python benchmarks/judge_speed.py [--scenarios 300] [--repeat 3]

"before" switches this process back to what judging did before: every checkpoint
restored, a clean run always run twice (determinism), the oracle's output of the
whole input folded again for every timeline.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from typing import Iterator

import onceflow.cost as cost
import onceflow.properties.checks as checks
import onceflow.properties.oracle as oracle
from onceflow.model.simulation import run
from onceflow.properties.violation import Violation
from onceflow.strategies import scenario_from_seed


@contextmanager
def before() -> Iterator[None]:
    saved = (checks.MAX_RESTORED_CHECKPOINTS, checks.runs_user_code, oracle._OUTPUTS)

    class NoCache(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: object, value: object) -> None:
            pass

    checks.MAX_RESTORED_CHECKPOINTS = 10**9
    checks.runs_user_code = lambda scenario: True
    oracle._OUTPUTS = NoCache()
    try:
        yield
    finally:
        checks.MAX_RESTORED_CHECKPOINTS, checks.runs_user_code, oracle._OUTPUTS = saved


def judge_all(scenarios: list) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    for scenario in scenarios:
        result = run(scenario)
        try:
            checks.check(result)
        except Violation:
            pass
    return len(scenarios) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenarios = [scenario_from_seed(i) for i in range(args.scenarios)]
    now = then = 0.0
    for _ in range(args.repeat):  # interleaved: a noisy machine slows both alike
        with before():
            then = max(then, judge_all(scenarios))
        now = max(now, judge_all(scenarios))
    print(f"scenarios judged per second ({args.scenarios} generator scenarios, best of "
          f"{args.repeat}): before {then:.1f}, now {now:.1f}, ratio {now / then:.2f}x")
    print(f"(restored checkpoints capped at {cost.MAX_RESTORED_CHECKPOINTS})")


if __name__ == "__main__":
    main()
