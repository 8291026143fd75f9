"""Real Apache Flink (Java 17+ and onceflow[flink]): the generated Java compiles for every
operator, edge, sink and fault point; time limits and Ctrl-C leave no JVM behind.

Marked `flink`: deselected by default, run by .ci/run with `pytest -m flink`.  Agreement
of the model with Flink is checked by `onceflow conformance` in .ci/run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onceflow.scenario import CheckpointConfig, Scenario, Timing, Workload

pytestmark = pytest.mark.flink


def _jvms_in(workdir: Path) -> list[int]:
    """Live processes whose command line names `workdir` (our job's JVM)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmd and "java" in cmd:
            found.append(int(proc.name))
    return found


def _slow_scenario(tmp_path: Path) -> Path:
    # 4,000 records at 10 simulated ms each: the paced Flink run takes its 30 s maximum
    s = Scenario(workload=Workload(records=4000, keys=4, splits=2), timing=Timing(record_cost=10.0),
                 checkpoints=CheckpointConfig(interval=500.0))
    path = tmp_path / "slow.json"
    path.write_text(s.to_json())
    return path


def _onceflow(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "onceflow"), *args]


def test_a_job_over_its_time_limit_is_killed_with_a_one_line_error(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.run(_onceflow("flink", "--scenario", str(_slow_scenario(tmp_path)),
                                    "--time-limit", "8", "--keep", str(work),
                                    "--cache", str(tmp_path / "cache")),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "did not finish within 8 s" in proc.stderr
    assert _jvms_in(work) == []


def test_ctrl_c_leaves_no_flink_process(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.Popen(_onceflow("flink", "--scenario", str(_slow_scenario(tmp_path)),
                                      "--keep", str(work), "--cache", str(tmp_path / "cache")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 200
    while not _jvms_in(work) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert _jvms_in(work), "the Flink JVM never started"
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _jvms_in(work) == []


def test_every_operator_edge_sink_and_fault_point_compiles(tmp_path):
    from onceflow.faults.plan import Crash, PhaseCrash
    from onceflow.flink.build import compile_job, toolchain
    from onceflow.flink.javagen import java_source
    from onceflow.flink.translate import translate
    from onceflow.model.simulation import run
    from onceflow.scenario import Topology, Vertex

    topo = Topology((Vertex("src", "source", 2), Vertex("m", "map", 2, "forward", 3),
                     Vertex("f", "filter", 3, "rebalance", 2), Vertex("fm", "flat_map", 3, "forward", 2),
                     Vertex("w", "window", 2, "hash", 4), Vertex("b", "map", 2, "broadcast", 0),
                     Vertex("r", "reduce", 2, "hash"), Vertex("sink", "sink", 2, "forward")))
    faults = (Crash(at=1.0, target="src[0]"), Crash(at=2.0, target="r[1]"),
              PhaseCrash(phase="notify_complete", target="w[0]"),
              PhaseCrash(phase="after_sync_snapshot", target="sink[1]"),
              PhaseCrash(phase="stop_savepoint", target="fm[2]"))
    tools = toolchain()
    for sink in ("two_phase", "idempotent", "append"):
        s = Scenario(topology=topo, sink=sink, faults=faults,
                     workload=Workload(records=100, keys=4, splits=2))
        name, source = java_source(translate(s, run(s)))
        compile_job(tools, name, source, tmp_path)  # raises FlinkError if javac refuses it
        assert (tmp_path / name / f"{name}.class").exists()
