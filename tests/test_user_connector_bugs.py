"""Connector bugs written as connector authors write them (tests/user_connectors.py,
through the public API only) are found, and their corrected versions pass; what
onceflow needed to judge them honestly (emitting from notify_checkpoint_complete,
records held in operator state across a rescale or a stop, a crash found by the fuzzer
that is shrunk and replayable, which side of a fork a write happened on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import onceflow
import user_connectors
from onceflow import Scenario, Topology, Vertex, Workload
from onceflow.cli import main
from onceflow.errors import OperatorError
from onceflow.strategies import scenario_from_seed
from onceflow.token import decode

user_connectors.register()


def _verdicts(seeds: range, **pins: Any) -> list[tuple[int, str, str]]:
    found = []
    for seed in seeds:
        scenario = scenario_from_seed(seed, max_faults=4, **pins)
        try:
            onceflow.check(onceflow.run(scenario), deterministic=False)
        except onceflow.Violation as violation:
            found.append((seed, violation.finding.property, violation.finding.anomaly))
        except OperatorError as exc:
            found.append((seed, "error", str(exc)))
    return found


@pytest.mark.parametrize("pin, name, want", [
    ("sink", "jdbc_commit_on_snapshot", ("visibility", "premature")),
    ("source", "kafka_offset_off_by_one", ("exactly_once", "duplicate")),
    ("sink", "es_autogen_id", ("exactly_once", "duplicate")),
    ("operators", "release_on_commit", ("error", "emit what is still held in finish(out)")),
])
def test_a_user_connector_bug_is_found_and_its_fix_passes(pin: str, name: str,
                                                          want: tuple[str, str]) -> None:
    def pins(component: str) -> dict[str, Any]:
        return {pin: [component] if pin == "operators" else component}

    assert _verdicts(range(40), **pins(name + "_fixed")) == []
    found = _verdicts(range(40), **pins(name))
    assert found, f"{name}: nothing found in 40 scenarios"
    assert any(p == want[0] and want[1] in a for _, p, a in found), found


def _pipeline(op: str, sink: str = "two_phase", records: int = 30, parallelism: int = 2,
              edge: str = "forward", produce_interval: float = 0.0) -> Scenario:
    return Scenario(topology=Topology((Vertex("source", "source", parallelism),
                                       Vertex("op", op, parallelism, edge),
                                       Vertex("sink", "sink", parallelism, "forward"))),
                    workload=Workload(records=records, produce_interval=produce_interval),
                    sink=sink)


def test_records_emitted_from_notify_reach_the_sink_exactly_once(monkeypatch: Any) -> None:
    emitted: list[int] = []
    notify = user_connectors.ReleaseOnCommit.notify_checkpoint_complete

    def counting(self: Any, checkpoint_id: int, out: list[Any]) -> None:
        notify(self, checkpoint_id, out)
        emitted.append(len(out))

    monkeypatch.setattr(user_connectors.ReleaseOnCommit, "notify_checkpoint_complete", counting)
    result = onceflow.run(_pipeline("release_on_commit_fixed", records=300,
                                         produce_interval=1.0))
    onceflow.check(result)
    assert sorted(r.id for r in result.committed()) == sorted(f"r{i}" for i in range(300))
    assert sum(emitted) > 0  # what the notifications released went downstream


def test_emitting_after_the_end_of_input_names_the_fix() -> None:
    with pytest.raises(OperatorError, match=r"after the end of input.*finish\(out\)"):
        onceflow.check(onceflow.run(_pipeline("release_on_commit", records=300,
                                              produce_interval=1.0)))


def test_a_crash_found_by_fuzz_is_shrunk_and_printed_with_its_replay(tmp_path: Path,
                                                                      capsys: Any) -> None:
    code = main(["fuzz", "--plugin", "user_connectors", "--operator", "release_on_commit",
                 "--budget", "60s", "--seed", "1", "--db", str(tmp_path / "db")])
    out, err = capsys.readouterr()
    assert code == 2 and "onceflow: error: operator 'release_on_commit'" in err
    replay = next(line for line in out.splitlines() if line.startswith("replay: "))
    assert replay.startswith("replay: onceflow --plugin user_connectors replay of1.")
    scenario = decode(replay.rsplit(" ", 1)[1])
    assert scenario.workload.records <= 2 and not scenario.faults  # shrunk
    assert main(["replay", replay.rsplit(" ", 1)[1]]) == 2
    assert "emit what is still held in finish(out)" in capsys.readouterr().err
    assert main(["fuzz", "--plugin", "user_connectors", "--operator", "release_on_commit",
                 "--budget", "60s", "--seed", "1", "--db", str(tmp_path / "db2"),
                 "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "error" and data["replay"].startswith("onceflow --plugin "
                                                                   "user_connectors replay")


def test_held_records_moved_by_a_rescale_are_not_misrouted_or_reordered() -> None:
    """A restore at another parallelism splits the operator's held batches over the new
    subtasks (Flink's round-robin): they leave from another subtask than the records'
    edges would route them through, and their order against newer records is timing."""
    found = _verdicts(range(100), operators=["release_on_commit_fixed"])
    assert found == []


def test_records_held_in_state_at_a_stop_are_not_expected_from_the_stopped_job() -> None:
    from onceflow.properties.checks import held_records
    from onceflow.model.records import Record

    class Snap:
        state = {"source": {0: 3}, "op": ([], [(1, [Record("r1", 0, 1, 0, 1)])]),
                 "sink": ([("txn", [Record("r9", 0, 1, 0, 9)])],)}

    topology = _pipeline("release_on_commit_fixed").topology
    assert held_records(topology, Snap()) == frozenset({"r1"})  # the sink's are its own


def test_a_write_at_the_moment_of_the_fork_is_placed_by_the_store_log() -> None:
    """The committer published a savepoint's pending file on the original timeline and
    again on recovery at the very moment the restored timeline forked: the report says
    which write is which (by the store's operation log, not by time alone)."""
    token = (Path(__file__).parent / "data" / "user_committer_fork.token").read_text().strip()
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(onceflow.run(decode(token)))
    events = [e for r in info.value.finding.records for e in r.events]
    assert any("before the fork, on the original timeline" in e for e in events), events
    assert any("after restore from savepoint" in e for e in events), events


# -- issue 10 leftovers: pins kept by the shrinker, --plugin after every command -----------

def _failing_with(operator: str) -> Scenario:
    """A scenario whose bug is in the sink (writer-side document ids), with `operator`
    in the pipeline: dropping the operator would keep the failure."""
    for seed in range(60):
        scenario = scenario_from_seed(seed, max_faults=4, sink="es_autogen_id",
                                      operators=[operator])
        try:
            onceflow.check(onceflow.run(scenario), deterministic=False)
        except onceflow.Violation:
            return scenario
    raise AssertionError("no failing scenario in 60 seeds")


def test_the_shrinker_keeps_the_operators_a_user_registered() -> None:
    from onceflow.shrinking import shrink

    scenario = _failing_with("release_on_commit_fixed")
    shrunk = shrink(scenario, max_seconds=60)
    assert shrunk is not None
    kinds = [v.kind for v in shrunk.scenario.topology.vertices]
    assert "release_on_commit_fixed" in kinds, kinds


def test_the_shrinker_keeps_a_pinned_builtin_operator_and_drops_it_unpinned() -> None:
    from onceflow.shrinking import shrink

    scenario = _failing_with("map")
    kept = shrink(scenario, max_seconds=60, keep=("map",))
    assert kept is not None and "map" in [v.kind for v in kept.scenario.topology.vertices]
    free = shrink(scenario, max_seconds=60)
    assert free is not None and "map" not in [v.kind for v in free.scenario.topology.vertices]


def test_shrink_command_refuses_a_pin_the_scenario_lacks(capsys: Any) -> None:
    from onceflow.token import encode

    token = encode(_failing_with("map"))
    assert main(["shrink", token, "--operator", "window"]) == 2
    assert "the scenario has no such operator" in capsys.readouterr().err


def test_mutants_pass_their_pins_to_the_search(monkeypatch: Any) -> None:
    import onceflow.console as console

    seen: list[dict[str, Any]] = []

    def fake_fuzz(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return console.FuzzOutcome("clean", console.FuzzStats(), 0.0)

    monkeypatch.setattr(console, "fuzz", fake_fuzz)
    monkeypatch.setattr(console, "baseline", lambda **kw: seen.append(kw) or fake_fuzz())
    main(["mutants", "--only", "committer-not-idempotent", "--budget", "1s", "--sink",
          "jdbc_commit_on_snapshot_fixed", "--operator", "release_on_commit_fixed",
          "--source", "kafka_offset_off_by_one_fixed", "--plugin", "user_connectors"])
    assert seen and all(kw["sink"] == "jdbc_commit_on_snapshot_fixed"
                        and kw["operators"] == ("release_on_commit_fixed",)
                        and kw["source"] == "kafka_offset_off_by_one_fixed"
                        for kw in seen if "sink" in kw)


@pytest.mark.parametrize("argv", [
    ["status", "--plugin", "user_connectors"],
    ["report", "--plugin", "user_connectors", "merge", "a.json"],
    ["report", "merge", "a.json", "--plugin", "user_connectors"],
    ["flink", "--plugin", "user_connectors"],
    ["conformance", "--plugin", "user_connectors"],
    ["bench", "--plugin", "user_connectors"],
    ["mutants", "--plugin", "user_connectors"],
])
def test_plugin_is_accepted_after_every_command(argv: list[str]) -> None:
    from onceflow.cli import _plugin_args, build_parser

    build_parser().parse_args(argv)  # accepted (no usage error), and loaded first:
    assert _plugin_args(argv) == ["user_connectors"]


def test_the_report_of_an_upsert_with_sink_chosen_keys_renders(tmp_path: Path,
                                                               capsys: Any) -> None:
    """An upsert's operation carries (records, keys): the timeline and the diagram read
    the records, not the keys (it was an internal error on replay)."""
    from onceflow.token import encode

    token = next(encode(s) for s in (scenario_from_seed(seed, max_faults=4,
                                                        sink="es_autogen_id")
                                     for seed in range(40))
                 if _fails(s))
    assert main(["replay", token, "--html", str(tmp_path / "d.html")]) == 1
    out, err = capsys.readouterr()
    assert "exactly_once violated: duplicate" in out and "internal error" not in err
    assert (tmp_path / "d.html").stat().st_size > 1000


def _fails(scenario: Scenario) -> bool:
    try:
        onceflow.check(onceflow.run(scenario), deterministic=False)
    except onceflow.Violation:
        return True
    return False
