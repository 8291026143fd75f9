"""Every printed replay command carries every plugin its scenario and timeline need.

A finding on a restore into an upgraded job graph (`restore(..., topology=)`) names
operators the original scenario does not have; a scenario may write to a registered
store.  The command a violation prints must load the modules that register them, so
that a user who pastes it into a fresh shell gets the same verdict.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import onceflow
from onceflow import (CheckpointConfig, SavepointRequest, Scenario, Timing, Topology, Vertex,
                      Violation, Workload, restore, run)
from onceflow.errors import RegistrationError
from onceflow.plugins import plugins_for
from onceflow.registry import OPERATORS, STORES, register_store
from onceflow.timelines import RestoreStep, TimelineSpec

_SCRIPT = Path(sys.executable).parent / "onceflow"
ONCEFLOW = ([str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "onceflow"])

OPERATOR_MODULE = "replay_upgrade_ops"
STORE_MODULE = "replay_upgrade_store"

OPERATOR_SOURCE = '''
"""An operator a user adds in an upgraded job graph: it emits every record twice
although it declares that it keeps ids (a duplicating bug)."""
from onceflow.registry import register_operator


class Twice:
    state_kind = None

    def open(self, ctx, restored):
        pass

    def process(self, records, out):
        for record in records:
            out.append(record)
            out.append(record)

    def end_input(self, out):
        pass

    def snapshot_state(self, checkpoint_id):
        return None

    def notify_checkpoint_complete(self, checkpoint_id):
        pass

    def notify_checkpoint_aborted(self, checkpoint_id):
        pass


register_operator("twice_upgrade", factory=lambda param: Twice(),
                  fold=lambda param, records, state: list(records), ids="keep",
                  output_bound=lambda records, param, keys: 2 * records)
'''

STORE_SOURCE = '''
"""A user's own store (here the built-in memory store under another name)."""
from onceflow.registry import register_store
from onceflow.stores.memory import MemoryStore

register_store("replay_memory", factory=lambda *, txn_timeout, label="": MemoryStore(
    txn_timeout, label=label))
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: Any) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / f"{OPERATOR_MODULE}.py").write_text(textwrap.dedent(OPERATOR_SOURCE))
    (folder / f"{STORE_MODULE}.py").write_text(textwrap.dedent(STORE_SOURCE))
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module(OPERATOR_MODULE)
        importlib.import_module(STORE_MODULE)
        yield folder
    finally:
        sys.path.remove(str(folder))
        OPERATORS.pop("twice_upgrade", None)
        STORES.pop("replay_memory", None)
        sys.modules.pop(OPERATOR_MODULE, None)
        sys.modules.pop(STORE_MODULE, None)


def _topology(*middle: Vertex) -> Topology:
    return Topology((Vertex("source", "source", 2), *middle,
                     Vertex("sink", "sink", 2, "forward")), max_parallelism=8)


REDUCE = Vertex("reduce", "reduce", 2, "hash")


def _scenario(store: str = "memory") -> Scenario:
    return Scenario(topology=_topology(REDUCE), workload=Workload(records=60, keys=4, splits=2),
                    checkpoints=CheckpointConfig(mode="aligned", interval=8.0),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    sink="two_phase", store=store, savepoints=(SavepointRequest(at=5),))


def _cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def _upgraded_violation(store: str) -> Violation:
    result = run(_scenario(store))
    assert result.savepoints, "the scenario must take its savepoint"
    upgraded = _topology(Vertex("twice", "twice_upgrade", 2, "forward"), REDUCE)
    restored = restore(result, result.savepoints[0], topology=upgraded)
    with pytest.raises(Violation) as info:
        onceflow.properties.exactly_once(restored)
    return info.value


def test_the_printed_command_of_an_upgraded_graph_replays_in_a_fresh_process(
        plugin_dir: Path, tmp_path: Path) -> None:
    violation = _upgraded_violation("replay_memory")
    finding = violation.finding
    # the original scenario uses neither the operator nor (as a component) the module
    assert "twice_upgrade" not in {v.kind for v in _scenario().topology.vertices}
    assert f"--plugin {OPERATOR_MODULE}" in finding.replay
    assert f"--plugin {STORE_MODULE}" in finding.replay
    argv = shlex.split(finding.replay)
    assert argv[0] == "onceflow"
    # a fresh process in the user's project folder: the printed command, as pasted
    proc = _cli([*ONCEFLOW, *argv[1:]], cwd=plugin_dir)
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert f"{finding.property} violated: {finding.anomaly}" in proc.stdout, proc.stdout[-2000:]
    assert f"digest: {finding.digest}" in proc.stdout
    # without the plugins the same token is a one-line error naming --plugin
    bare = _cli([*ONCEFLOW, "replay", finding.token], cwd=tmp_path)
    assert bare.returncode == 2, (bare.returncode, bare.stderr)
    assert "--plugin" in bare.stderr and len(bare.stderr.strip().splitlines()) == 1


def test_plugins_for_reads_every_component_of_the_timeline(plugin_dir: Path) -> None:
    scenario = _scenario("replay_memory")
    assert plugins_for(scenario) == (STORE_MODULE,)
    step = RestoreStep(snapshot=1, snapshot_kind="savepoint",
                       topology=_topology(Vertex("twice", "twice_upgrade", 2, "forward"), REDUCE))
    assert plugins_for(scenario, TimelineSpec((step,))) == (OPERATOR_MODULE, STORE_MODULE)
    assert plugins_for(_scenario(), TimelineSpec()) == ()


def test_a_registered_store_records_its_module_and_bad_registrations_are_specific() -> None:
    spec = register_store("replay_memory_here", factory=lambda *, txn_timeout, label="": None)
    try:
        assert spec.module == __name__
    finally:
        STORES.pop("replay_memory_here", None)
    for kwargs, match in (({"name": "Bad Name", "factory": dict}, "bad store name"),
                          ({"name": "memory", "factory": dict}, "built-in store"),
                          ({"name": "ok_store", "factory": 3}, "factory must be a callable"),
                          ({"name": "ok_store", "factory": dict, "keeps_files": "yes"},
                           "keeps_files")):
        with pytest.raises(RegistrationError, match=match):
            register_store(**kwargs)
    assert "ok_store" not in STORES
