"""The fuzzer demonstrably reaches every crash window.

A fixed range of seeds is drawn with `scenario_from_seed` (the generator that
`scenarios()` and `onceflow run --seed N` share); every drawn scenario that
holds a phase crash is run (a scenario without one cannot hit a phase), and
every phase in `CRASH_PHASES` must have been hit at least once.  The range is
fixed, so the test is deterministic; it takes a few seconds.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from onceflow import run
from onceflow.faults.plan import CRASH_PHASES, PhaseCrash
from onceflow.strategies import scenario_from_seed

SEEDS = range(0, 6000)

Hits = dict[str, list[tuple[int, int]]]


@pytest.fixture(scope="module")
def phase_hits() -> Hits:
    """phase -> [(seed, checkpoint id the fault fired at)], over SEEDS."""
    hits: Hits = defaultdict(list)
    for seed in SEEDS:
        scenario = scenario_from_seed(seed)
        if not any(isinstance(f, PhaseCrash) for f in scenario.faults):
            continue
        for entry in run(scenario).faults_fired:
            if entry["kind"] == "phase_crash":
                hits[str(entry["phase"])].append((seed, int(str(entry["checkpoint"]))))
    return dict(hits)


def test_drawn_scenarios_hit_every_crash_phase(phase_hits: Hits) -> None:
    hits = phase_hits
    assert set(hits) <= set(CRASH_PHASES), set(hits) - set(CRASH_PHASES)
    missed = [p for p in CRASH_PHASES if not hits.get(p)]
    counts = {p: len(hits.get(p, ())) for p in CRASH_PHASES}
    assert not missed, (f"{len(SEEDS)} drawn scenarios never hit phase(s) {missed}; "
                        f"hits per phase: {counts}")


def test_drawn_scenarios_hit_the_restore_window_of_a_real_restore(phase_hits: Hits) -> None:
    """The 'restore' phase also fires when a fresh job starts (checkpoint 0); the window that
    matters is a task restoring a completed checkpoint after a failover."""
    restores = [(seed, cp) for seed, cp in phase_hits.get("restore", []) if cp > 0]
    assert restores, "no drawn scenario crashed a task while it restored a checkpoint"
