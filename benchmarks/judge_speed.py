"""Scenarios judged per second, as the fuzzer judges them (run + every property,
restores included), now and as before issue 14, in one process (a ratio that holds on
a busy machine).

    python benchmarks/judge_speed.py [--scenarios 300] [--repeat 3]

Times are CPU time of this process (what a busy machine inflates least).

"before" switches this process back to what judging did before issue 14: every
checkpoint restored, a clean run always run twice (determinism), the oracle's output
of the whole input folded again for every timeline, and none of the caches below.
"uncached" only turns off what round 3 added: the signature checks of sinks and
committers, the protocol checks of readers and enumerators, and the restored
scenario, each remembered instead of recomputed per restored timeline.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from typing import Iterator

import onceflow.cost as cost
import onceflow.model.simulation as simulation
import onceflow.model.sinks as sinks
import onceflow.model.sources as sources
import onceflow.properties.checks as checks
import onceflow.properties.oracle as oracle
from onceflow.model.simulation import run
from onceflow.properties.violation import Violation
from onceflow.strategies import scenario_from_seed


class NoCache(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: object, value: object) -> None:
        pass


class NoSet(set):  # type: ignore[type-arg]
    def add(self, item: object) -> None:
        pass


@contextmanager
def uncached() -> Iterator[None]:
    saved = (sinks._SIGNATURES, sources._CONFORMING, simulation._RESTORED)
    sinks._SIGNATURES, sources._CONFORMING, simulation._RESTORED = NoCache(), NoSet(), NoCache()
    try:
        yield
    finally:
        sinks._SIGNATURES, sources._CONFORMING, simulation._RESTORED = saved


@contextmanager
def before() -> Iterator[None]:
    saved = (checks.MAX_RESTORED_CHECKPOINTS, checks.runs_user_code, oracle._OUTPUTS)
    checks.MAX_RESTORED_CHECKPOINTS = 10**9
    checks.runs_user_code = lambda scenario: True
    oracle._OUTPUTS = NoCache()
    try:
        with uncached():
            yield
    finally:
        checks.MAX_RESTORED_CHECKPOINTS, checks.runs_user_code, oracle._OUTPUTS = saved


def judge_all(scenarios: list) -> float:  # type: ignore[type-arg]
    started = time.process_time()
    for scenario in scenarios:
        result = run(scenario)
        try:
            checks.check(result)
        except Violation:
            pass
    return len(scenarios) / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenarios = [scenario_from_seed(i) for i in range(args.scenarios)]
    now = then = plain = 0.0
    for _ in range(args.repeat):  # interleaved: a noisy machine slows all alike
        with before():
            then = max(then, judge_all(scenarios))
        with uncached():
            plain = max(plain, judge_all(scenarios))
        now = max(now, judge_all(scenarios))
    print(f"scenarios judged per second ({args.scenarios} generator scenarios, best of "
          f"{args.repeat}): before {then:.1f}, now {now:.1f}, ratio {now / then:.2f}x")
    print(f"round 3's caches: without {plain:.1f}, with {now:.1f}, ratio {now / plain:.2f}x")
    print(f"(restored checkpoints capped at {cost.MAX_RESTORED_CHECKPOINTS})")


if __name__ == "__main__":
    main()
