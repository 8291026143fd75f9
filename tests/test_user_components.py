"""Registered operators and sinks work wherever built-in ones do, and are judged by what
they declare, never by their names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings

import onceflow
from onceflow import Record, Scenario
from onceflow.errors import RegistrationError, ScenarioError, TokenError, UnknownComponentError
from onceflow.faults.plan import PhaseCrash
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.properties.guarantees import guarantee
from onceflow.registry import OPERATORS, SINKS, register_operator, register_sink
from onceflow.strategies import scenario_from_seed, scenarios
from tests.test_cli import ONCEFLOW


class Count:
    """A keyed operator: how many records of its key it has seen."""

    state_kind: ClassVar[str | None] = "keyed"

    def open(self, ctx: Any, restored: Any) -> None:
        self.counts: dict[int, int] = dict(restored or {})

    def process(self, records: list[Record], out: list[Record]) -> None:
        for r in records:
            self.counts[r.key] = self.counts.get(r.key, 0) + 1
            out.append(r._replace(value=self.counts[r.key]))

    def end_input(self, out: list[Record]) -> None:
        pass

    def snapshot_state(self, checkpoint_id: int) -> Any:
        return dict(self.counts)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pass

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        pass


def count_fold(param: int, records: list[Record], state: dict[Any, Any]) -> list[Record]:
    out = []
    for r in records:
        state[r.key] = state.get(r.key, 0) + 1
        out.append(r._replace(value=state[r.key]))
    return out


# registered at import, as a user's plugin module does
register_operator("t_count", factory=lambda p: Count(), fold=count_fold, keyed=True)
register_sink("t_2pc", factory=TwoPhaseCommitSink, kind="two_phase")
register_sink("t_upsert", factory=lambda: onceflow.model.sinks.IdempotentSink(), kind="idempotent")
register_sink("t_append", factory=lambda: onceflow.model.sinks.AppendSink(), kind="append")


# -- declarations -------------------------------------------------------------------------

def test_built_ins_are_registered_through_the_same_registry() -> None:
    assert {n: (s.kind, s.exactly_once, s.builtin) for n, s in SINKS.items() if s.builtin} == {
        "append": ("append", False, True), "idempotent": ("idempotent", True, True),
        "two_phase": ("two_phase", True, True),
        "two_phase_global": ("two_phase", True, True)}
    assert {"map", "filter", "flat_map", "reduce", "window"} <= {
        n for n, s in OPERATORS.items() if s.builtin}
    assert OPERATORS["reduce"].keyed and not OPERATORS["map"].keyed


@pytest.mark.parametrize("builtin, clone", [("two_phase", "t_2pc"), ("idempotent", "t_upsert"),
                                            ("append", "t_append")])
def test_a_sink_is_judged_by_its_declaration_not_its_name(builtin: str, clone: str) -> None:
    """A registered sink declaring what a built-in is gets exactly the built-in's verdicts."""
    verdicts = {}
    for sink in (builtin, clone):
        out = []
        for seed in range(12):
            s = scenario_from_seed(seed, sink=sink, mutants=("savepoint-commits",))
            result = onceflow.run(s)
            try:
                onceflow.check(result, deterministic=False)
                out.append((guarantee(s), result.digest, None))
            except onceflow.Violation as v:
                out.append((guarantee(s), result.digest, (v.finding.property, v.finding.anomaly)))
        verdicts[sink] = out
    assert verdicts[builtin] == verdicts[clone]


def test_a_registered_two_phase_sink_gets_phase_crashes_at_commit_phases() -> None:
    phases = set()
    for seed in range(300):
        s = scenario_from_seed(seed, sink="t_2pc")
        phases |= {f.phase for f in s.faults if isinstance(f, PhaseCrash)}
    assert {"pre_commit", "commit_before", "commit_after"} <= phases
    appended = set()
    for seed in range(300):
        s = scenario_from_seed(seed, sink="t_append")
        appended |= {f.phase for f in s.faults if isinstance(f, PhaseCrash)}
    assert not {"pre_commit", "commit_before", "commit_after", "recovery_commit"} & appended


def test_a_registered_two_phase_sink_is_checked_for_read_committed_isolation() -> None:
    class Leaky(TwoPhaseCommitSink):
        """Commits at pre-commit, then aborts what it committed when notified: readers
        saw records that later disappear."""

        def snapshot_state(self, checkpoint_id: int) -> Any:
            txn = self.txn
            state = super().snapshot_state(checkpoint_id)
            self.ctx.store.commit(self.ctx.now, txn)
            return state

    register_sink("t_leaky", factory=Leaky, kind="two_phase")
    try:
        found = set()
        for seed in range(40):
            result = onceflow.run(scenario_from_seed(seed, sink="t_leaky", max_faults=3))
            try:
                onceflow.check(result, deterministic=False)
            except onceflow.Violation as v:
                found.add(v.finding.property)
        assert found, "a sink committing at pre-commit must be caught"
    finally:
        SINKS.pop("t_leaky", None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="append", exactly_once=True), "declare kind='idempotent' or kind='two_phase'"),
    (dict(kind="two_phase", upsert=True), "only an idempotent sink upserts"),
    (dict(kind="transactional"), "unknown kind 'transactional'; declare one of"),
    (dict(kind="two_phase", exactly_once="yes"), "exactly_once must be True or False"),
])
def test_a_sink_registration_contradicting_itself_is_refused(kwargs: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(RegistrationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        register_sink("t_bad", factory=TwoPhaseCommitSink, **kwargs)
    assert "t_bad" not in SINKS


def test_a_two_phase_sink_class_must_keep_list_state() -> None:
    class NoState:
        state_kind = None

    with pytest.raises(RegistrationError, match="set state_kind = 'list'"):
        register_sink("t_bad", factory=NoState, kind="two_phase")


def test_a_keyed_declaration_must_match_the_operator_class() -> None:
    class Odd(Count):
        state_kind = "set"

    with pytest.raises(RegistrationError, match="state_kind is 'set'; declare None, 'keyed' or 'list'"):
        register_operator("t_bad", factory=Odd, fold=count_fold, keyed=True)
    with pytest.raises(RegistrationError, match="register it with keyed=True"):
        register_operator("t_bad", factory=Count, fold=count_fold)
    with pytest.raises(RegistrationError, match="is a built-in operator"):
        register_operator("reduce", factory=Count, fold=count_fold, keyed=True)
    with pytest.raises(RegistrationError, match="params must be"):
        register_operator("t_bad", factory=Count, fold=count_fold, keyed=True, params=(3, 1))


# -- pins ------------------------------------------------------------------------------------

def test_pinned_operators_are_placed_in_order_with_keyed_edges() -> None:
    kinds = set()
    for seed in range(60):
        s = scenario_from_seed(seed, operators=["map", "t_count", "filter"], sink="t_2pc")
        vs = s.topology.vertices
        assert [v.kind for v in vs] == ["source", "map", "t_count", "filter", "sink"]
        assert vs[2].edge == "hash"
        # a user keyed operator is never fed out of order (its fold could not judge it)
        assert vs[1].edge in ("forward", "hash") and vs[2].edge == "hash"
        assert s.sink == "t_2pc"
        kinds.add((vs[1].parallelism, vs[3].edge))
    assert len(kinds) > 3, "parallelism and edges are drawn"


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(operators=["t_count"], sink="t_2pc", max_faults=2))
def test_scenarios_with_registered_components_hold(s: Scenario) -> None:
    assert [v.kind for v in s.topology.vertices][1:-1] == ["t_count"]
    onceflow.check(onceflow.run(s))


def test_unknown_pins_name_the_fix() -> None:
    with pytest.raises(ScenarioError, match="unknown sink 'nope'.*--plugin MODULE"):
        scenarios(sink="nope")
    with pytest.raises(ScenarioError, match="unknown operator 'nope'.*--plugin MODULE"):
        scenarios(operators=["nope"])
    with pytest.raises(ScenarioError, match="give a list of registered operator names"):
        scenarios(operators="t_count")
    with pytest.raises(ScenarioError, match="unknown source 'nope'.*--plugin MODULE"):
        scenarios(source="nope")
    with pytest.raises(ScenarioError, match="unknown source 'nope'.*--plugin MODULE"):
        scenario_from_seed(0, source="nope")


def test_a_token_naming_an_unregistered_component_says_which() -> None:
    token = onceflow.encode_token(scenario_from_seed(1, operators=["t_count"], sink="t_2pc"))
    spec = OPERATORS.pop("t_count")
    try:
        with pytest.raises(UnknownComponentError, match="unknown operator 't_count'"):
            onceflow.decode_token(token)
    finally:
        OPERATORS["t_count"] = spec


# -- the command line --------------------------------------------------------------------------

PLUGIN = '''
from typing import Any
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.registry import register_operator, register_sink
from tests.test_user_components import Count, count_fold

class EagerCommit(TwoPhaseCommitSink):
    """Commits at pre-commit, before the checkpoint completes."""
    def snapshot_state(self, checkpoint_id: int) -> Any:
        txn = self.txn
        state = super().snapshot_state(checkpoint_id)
        self.ctx.store.commit(self.ctx.now, txn)
        return state

register_operator("p_count", factory=lambda p: Count(), fold=count_fold, keyed=True)
register_sink("p_2pc", factory=TwoPhaseCommitSink, kind="two_phase")
register_sink("p_eager", factory=EagerCommit, kind="two_phase")
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run([*ONCEFLOW, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    (tmp_path / "myplug.py").write_text(PLUGIN)
    return tmp_path


def test_plugin_before_or_after_the_command_from_the_current_directory(plugin_dir: Path) -> None:
    for args in (("--plugin", "myplug", "run"), ("run", "--plugin", "myplug"),
                 ("run", "--plugin=myplug")):
        proc = _cli(*args, "--operator", "p_count", "--sink", "p_2pc", "--seed", "3", "--json",
                    cwd=plugin_dir)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["verdict"] == "clean"
        assert data["replay"].startswith("onceflow --plugin myplug replay of1.")


def test_run_judges_and_exits_1_with_the_replay_carrying_the_plugin(plugin_dir: Path) -> None:
    for seed in range(30):
        proc = _cli("--plugin", "myplug", "run", "--sink", "p_eager", "--seed", str(seed),
                    cwd=plugin_dir)
        if proc.returncode == 1:
            break
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
    assert "violated" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if "replay: onceflow" in x)
    replay = line.split("replay: ", 1)[1].split()
    assert replay[:3] == ["onceflow", "--plugin", "myplug"]
    again = _cli(*replay[1:], cwd=plugin_dir)
    assert again.returncode == 1
    digest = next(x for x in proc.stdout.splitlines() if x.strip().startswith("digest:"))
    assert digest.strip() in again.stdout


def test_replay_without_the_plugin_names_the_component_and_the_flag(plugin_dir: Path) -> None:
    sys.path.insert(0, str(plugin_dir))
    try:
        import myplug  # noqa: F401
        token = onceflow.encode_token(scenario_from_seed(2, sink="p_2pc"))
    finally:
        sys.path.remove(str(plugin_dir))
        SINKS.pop("p_2pc", None), SINKS.pop("p_eager", None), OPERATORS.pop("p_count", None)
        sys.modules.pop("myplug", None)
    proc = _cli("replay", token, cwd=plugin_dir.parent)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "unknown sink 'p_2pc'" in err and "--plugin MODULE" in err


@pytest.mark.parametrize("args, message", [
    (("run", "--sink", "nope"), "unknown sink 'nope'"),
    (("fuzz", "--budget", "1s", "--operator", "nope"), "unknown operator 'nope'"),
    (("run", "--source", "nope"), "unknown source 'nope'"),
    (("fuzz", "--budget", "1s", "--source", "nope"), "unknown source 'nope'"),
    (("--plugin", "no_such_module_xyz", "run"), "cannot import plugin module 'no_such_module_xyz'"),
    (("--plugin", "broken", "run"), "cannot import plugin module 'broken' (--plugin): "
                                    "ZeroDivisionError"),
])
def test_bad_component_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                     message: str) -> None:
    (tmp_path / "broken.py").write_text("1 / 0\n")
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err


def test_version_and_python_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "onceflow", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"onceflow {onceflow.__version__}"
    proc = subprocess.run([sys.executable, "-m", "onceflow", "run", "--seed", "1", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "clean"


def test_run_exits_1_on_a_violation_and_restore_all_on_different_output() -> None:
    for seed in range(40):
        s = scenario_from_seed(seed, mode="aligned", sink="two_phase",
                               mutants=("savepoint-commits",))
        try:
            onceflow.check(onceflow.run(s), deterministic=False)
        except onceflow.Violation:
            break
    else:
        pytest.fail("no violating scenario drawn")
    token = onceflow.encode_token(s)
    proc = subprocess.run([*ONCEFLOW, "run", "--scenario", token, "--json", "--restore-all"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "violation" and data["violation"]["property"]
