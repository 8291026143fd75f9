"""Determinism: a scenario is its own reproduction, across processes and hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from onceflow import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology, Vertex,
                      Workload, run)

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from onceflow import Scenario, run, restore
out = []
for text in json.loads(sys.stdin.read()):
    r = run(Scenario.from_json(text))
    d = [r.digest, r.status, len(r.committed())]
    if r.savepoints:
        d.append(restore(r, r.savepoints[0]).digest)
    out.append(d)
print(json.dumps(out))
"""


def scenarios() -> list[Scenario]:
    return [
        # jitter and a 2-input hash exchange: the rng decides arrivals and channel picks
        Scenario(
            topology=Topology((
                Vertex("source", "source", 2),
                Vertex("map", "map", 2, "forward", 1),
                Vertex("reduce", "reduce", 3, "hash"),
                Vertex("sink", "sink", 3, "forward"),
            ), max_parallelism=16),
            workload=Workload(records=150, keys=11, splits=3, skew=1.0, seed=7),
            checkpoints=CheckpointConfig(mode="unaligned", interval=6),
            timing=Timing(latency=1.0, jitter=3.0, record_cost=0.2, buffer_records=4),
            savepoints=(SavepointRequest(at=12.0),), seed=42),
        Scenario(
            topology=Topology((
                Vertex("source", "source", 2),
                Vertex("fm", "flat_map", 2, "rebalance", 2),
                Vertex("window", "window", 2, "hash", 4),
                Vertex("sink", "sink", 1, "rebalance"),
            ), max_parallelism=8),
            workload=Workload(records=100, keys=5, splits=2, seed=3),
            checkpoints=CheckpointConfig(mode="at_least_once", interval=5),
            timing=Timing(latency=0.5, jitter=2.0, record_cost=0.1, buffer_records=3),
            sink="append", seed=9),
    ]


def digests_in_subprocess(hash_seed: str) -> list[list[object]]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, check=True,
                          input=json.dumps([s.to_json() for s in scenarios()]),
                          capture_output=True, text=True, timeout=60)
    return json.loads(proc.stdout)


def test_same_digest_in_separate_processes_with_different_hash_seeds() -> None:
    a = digests_in_subprocess("1")
    b = digests_in_subprocess("4242")
    assert a == b
    local = [[r.digest, r.status, len(r.committed())] for r in map(run, scenarios())]
    assert [x[:3] for x in a] == local
    assert all(status == "finished" for _, status, *_ in a)


def test_digest_depends_on_the_scheduling_seed() -> None:
    """The digest is not a constant: another scheduling seed reorders a jittery run."""
    s = scenarios()[0]
    other = Scenario.from_data({**s.to_data(), "seed": 43})
    assert run(s).digest == run(s).digest
    assert run(s).digest != run(other).digest
