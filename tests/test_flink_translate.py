"""The Flink differential check without Java: translation, generated Java, refusals, CLI errors.

Tests that run real Flink are in test_flink_real.py (marker `flink`, selected by .ci/run).
"""

from __future__ import annotations

import ast
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from onceflow.cli import main
from onceflow.faults.plan import Crash, NotifyFault, PhaseCrash, WorkerCrash
from onceflow.flink.build import toolchain
from onceflow.flink.compare import judge, prepare
from onceflow.flink.errors import FlinkUnavailable, Untranslatable
from onceflow.flink.javagen import java_source
from onceflow.flink.runner import read_output
from onceflow.flink.translate import translate
from onceflow.model.records import Record
from onceflow.model.simulation import run
from onceflow.scenario import (CheckpointConfig, SavepointRequest, Scenario, Topology, Vertex,
                               Workload)


def _scenario(**kw):
    base = dict(workload=Workload(records=300, keys=4, splits=2))
    base.update(kw)
    return Scenario(**base)


def test_generated_java_is_deterministic_and_named_by_content():
    s = _scenario(faults=(Crash(at=3.0, target="map[0]"),))
    first = java_source(translate(s, run(s)))
    again = java_source(translate(s, run(s)))
    assert first == again
    other = java_source(translate(_scenario(sink="append"), run(_scenario(sink="append"))))
    assert other[0] != first[0]
    assert f"public class {first[0]} " in first[1]


def test_every_operator_edge_and_sink_appears_in_the_job():
    topo = Topology((Vertex("src", "source", 2), Vertex("m", "map", 2, "forward", 3),
                     Vertex("f", "filter", 3, "rebalance", 2), Vertex("fm", "flat_map", 3, "forward", 2),
                     Vertex("w", "window", 2, "hash", 4), Vertex("b", "map", 2, "broadcast", 0),
                     Vertex("r", "reduce", 2, "hash"), Vertex("sink", "sink", 2, "forward")))
    for sink, writer in (("two_phase", "FileSink.forRowFormat"), ("idempotent", "UpsertSink"),
                         ("append", "AppendSink")):
        s = _scenario(topology=topo, sink=sink, checkpoints=CheckpointConfig(mode="unaligned"))
        _, text = java_source(translate(s, run(s)))
        for piece in ("new AddMap(3L)", "new ModFilter(2L)", "new FanOut(2)", "new CountWindow(4L)",
                      "new Sum()", ".rebalance()", ".broadcast()", ".forward()", "keyBy(new ByKey()",
                      writer, "ENABLE_UNALIGNED, true", 'uid("fm")', "setMaxParallelism(128)"):
            assert piece in text, (sink, piece)


def test_a_timed_crash_fails_at_the_record_the_model_crashed_on():
    s = _scenario(faults=(Crash(at=3.0, target="map[1]"),))
    model = run(s)
    plan = translate(s, model)
    processed = sum(len(d[0]) for t, k, w, d in model.trace
                    if k == "process" and w == "map[1]" and t < 3.0)
    (point,) = plan.faults
    assert (point.vertex, point.subtask, point.point, point.n) == (1, 1, "record", processed + 1)


def test_phase_crashes_map_to_the_hook_flink_has():
    s = _scenario(faults=(PhaseCrash(phase="notify_complete", target="reduce[0]", checkpoint=2),
                          PhaseCrash(phase="after_sync_snapshot", target="sink[1]",
                                     snapshot="checkpoint")))
    a, b = translate(s, run(s)).faults
    assert (a.point, a.n, a.vertex) == ("notify", 2, 2)
    assert (b.point, b.which, b.vertex, b.subtask) == ("snapshot", 1, 3, 1)


@pytest.mark.parametrize("scenario, part", [
    (_scenario(faults=(WorkerCrash(at=2.0, worker=0),)), "faults[0] (worker_crash)"),
    (_scenario(faults=(NotifyFault(effect="lose"),)), "faults[0] (notify)"),
    (_scenario(faults=(PhaseCrash(phase="pre_commit", target="sink[0]"),)),
     "faults[0] (phase_crash at pre_commit)"),
    (_scenario(mutants=("commit-only-exact-id",)), "mutants"),
])
def test_a_part_without_a_flink_equivalent_is_refused_by_name(scenario, part):
    with pytest.raises(Untranslatable) as info:
        prepare(scenario)
    assert info.value.part.startswith(part)
    assert part in str(info.value)


def test_cli_refuses_an_untranslatable_scenario_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(_scenario(faults=(WorkerCrash(at=2.0, worker=0),)).to_json())
    assert main(["flink", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "faults[0] (worker_crash)" in err


def _fake_java(tmp_path: Path, version: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    for tool in ("java", "javac"):
        script = home / "bin" / tool
        script.write_text(f'#!/bin/sh\necho \'openjdk version "{version}" 2019-01-15\' >&2\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return home


def test_no_java_is_exit_2_saying_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    path = tmp_path / "s.json"
    path.write_text(_scenario().to_json())
    assert main(["flink", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "JAVA_HOME" in err and "install" in err


def test_old_java_is_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, "11.0.2")))
    with pytest.raises(FlinkUnavailable, match="Java 11; Flink 2 needs Java 17"):
        toolchain()
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "old", "1.8.0_292")))
    with pytest.raises(FlinkUnavailable, match="Java 8;"):
        toolchain()


def test_missing_extra_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, "17.0.15")))
    monkeypatch.setitem(sys.modules, "pyflink", None)
    with pytest.raises(FlinkUnavailable, match=r"pip install 'onceflow\[flink\]'"):
        toolchain()


def test_committed_output_skips_in_progress_files_and_keeps_write_order(tmp_path):
    (tmp_path / "2026-01-01--10").mkdir()
    (tmp_path / "2026-01-01--10" / "part-a-0-10").write_text("r2,1,5,300\nr3,1,9,400\n")
    (tmp_path / "2026-01-01--10" / "part-a-0-2").write_text("r0,1,1,100\nr1,1,3,200\n")
    (tmp_path / "2026-01-01--10" / ".part-a-0-11.inprogress.x").write_text("r4,1,10,500\n")
    got = read_output("two_phase", tmp_path)
    assert [r.id for r in got] == ["r0", "r1", "r2", "r3"]


def test_judge_names_duplicates_and_loss():
    s = _scenario()
    exp = [Record("r0", 1, 1, 0, 0), Record("r1", 1, 2, 0, 0)]
    dup = judge(s, "finished", exp + [exp[1]], exp)
    assert (dup.duplicates, dup.lost, dup.outcome) == (1, 0, "duplicates")
    assert dup.verdict.startswith("violated: exactly-once")
    lost = judge(s, "finished", exp[:1], exp)
    assert (lost.lost, lost.outcome) == (1, "loss")
    assert judge(s, "finished", exp, exp).outcome == "exact"


def test_stop_with_savepoint_is_restored_at_its_parallelism():
    s = _scenario(savepoints=(SavepointRequest(at=2.0, stop=True, restore_parallelism=3),))
    (sp,) = translate(s, run(s)).savepoints
    assert (sp.stop, sp.restore) == (True, 3)


def test_the_core_never_imports_the_flink_package():
    root = Path(__file__).resolve().parent.parent / "onceflow"
    for path in root.rglob("*.py"):
        if "flink" in path.relative_to(root).parts or path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("onceflow.flink") for n in names), path


def test_keep_needs_a_new_or_empty_directory(tmp_path):
    from onceflow.flink.errors import FlinkError
    from onceflow.flink.runner import _workdir

    used = tmp_path / "used"
    (used / "out").mkdir(parents=True)
    (used / "out" / "part-0").write_text("r0,1,1,1\n")
    with pytest.raises(FlinkError, match="new or empty directory"):
        _workdir(str(used))
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(FlinkError):
        _workdir(str(afile))
    fresh = _workdir(str(tmp_path / "fresh"))
    assert sorted(p.name for p in fresh.iterdir()) == ["in", "markers", "out", "state"]


def _comparison(scenario, ours, theirs):
    from onceflow.flink.compare import Comparison

    return Comparison(scenario, ours, theirs, 1.0, 0.0, True, (), (), "")


def test_agreement_needs_status_verdict_and_outcome():
    from onceflow.flink.compare import Side

    def side(status="finished", outcome="exact", verdict="holds (exactly-once)"):
        return Side(status, 10, 0, 0, outcome, verdict, {})

    exactly = _scenario()
    assert _comparison(exactly, side(), side()).agree
    assert not _comparison(exactly, side(), side(outcome="duplicates",
                                                 verdict="violated: exactly-once")).agree
    assert not _comparison(exactly, side(), side(status="failed")).agree
    # a failed job's output is judged by neither side: status and outcome must match
    assert _comparison(exactly, side("failed", "loss"), side("failed", "loss", "not judged")).agree
    # at-least-once: duplicates on one side only is timing, not disagreement
    alo = _scenario(sink="append")
    c = _comparison(alo, side(outcome="duplicates", verdict="holds (at-least-once)"),
                    side(verdict="holds (at-least-once)"))
    assert c.agree and not c.same_outcome
    assert not _comparison(alo, side(verdict="holds (at-least-once)"),
                           side(outcome="loss", verdict="violated: records lost")).agree


def test_drop_untranslatable_keeps_what_flink_can_do():
    from onceflow.flink.translate import translatable

    s = _scenario(faults=(WorkerCrash(at=2.0, worker=0), Crash(at=3.0, target="map[0]"),
                          PhaseCrash(phase="pre_commit", target="sink[0]")))
    kept, dropped = translatable(s)
    assert kept.faults == (Crash(at=3.0, target="map[0]"),)
    assert [d.split(":")[0] for d in dropped] == ["faults[0] (worker_crash)",
                                                   "faults[2] (phase_crash at pre_commit)"]
    prepare(kept)  # translates


def test_a_progress_crash_fails_at_its_record_after_its_checkpoints():
    from types import SimpleNamespace

    from onceflow.flink.translate import _progress_crash

    s = _scenario()
    fault = SimpleNamespace(target="reduce[1]", record=40, after_checkpoints=2)
    point = _progress_crash(0, fault, s, run(s))
    assert (point.vertex, point.subtask, point.point, point.n, point.k) == (2, 1, "progress", 40, 2)
    plan = translate(s, run(s))
    from attrs import evolve

    _, text = java_source(evolve(plan, faults=(point,)))
    assert 'new FailOnce(new File(markers, "fault-0").getPath(), "progress", 40L, 2L, 1, 0' in text
