"""Run a compiled job on a local Flink MiniCluster (one JVM) and read its committed output.

The JVM runs in its own process group; whatever way this process leaves (the
job's time limit, an error, Ctrl-C, SIGTERM, interpreter exit), the group is
killed, so no Flink process outlives the command.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from attrs import frozen

from onceflow.flink.build import Toolchain
from onceflow.flink.errors import FlinkError
from onceflow.flink.translate import FlinkPlan
from onceflow.model.records import Record, split_logs

__all__ = ["FlinkRun", "read_output", "run_job"]

#: JVM flags Flink 2 needs on Java 17 (from the wheel's conf/config.yaml, env.java.opts.all)
JVM_OPENS = tuple(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect",
    "java.text", "java.time", "java.util", "java.util.concurrent",
    "java.util.concurrent.atomic", "java.util.concurrent.locks"))

_LOG4J = """\
rootLogger.level = WARN
logger.jm.name = org.apache.flink.runtime.jobmaster
logger.jm.level = INFO
logger.eg.name = org.apache.flink.runtime.executiongraph.ExecutionGraph
logger.eg.level = INFO
logger.cc.name = org.apache.flink.runtime.checkpoint.CheckpointCoordinator
logger.cc.level = INFO
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{HH:mm:ss,SSS}} %-5p %c{{1}} - %m%n
"""

_LIVE: set[int] = set()  # process groups started here and not yet reaped


def _kill_group(pgid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                _LIVE.discard(pgid)
                return
            time.sleep(0.05)
    _LIVE.discard(pgid)


@atexit.register
def _kill_all() -> None:
    for pgid in sorted(_LIVE):
        _kill_group(pgid)


@frozen
class FlinkRun:
    """What the real job did: its status, the committed output and its events."""

    status: str                  # finished | failed
    records: tuple[Record, ...]  # committed output, as the model's records (split/offset 0)
    events: tuple[dict[str, Any], ...]
    faults_fired: tuple[int, ...]  # indexes of scenario.faults whose operator threw
    seconds: float
    workdir: str
    error: str | None = None


def write_input(plan: FlinkPlan, directory: Path) -> None:
    """One file per split of the scenario's log: `id,key,value,split,offset` lines."""
    directory.mkdir(parents=True, exist_ok=True)
    for s, log in enumerate(split_logs(plan.scenario.workload)):
        with (directory / f"split-{s:03d}.txt").open("w", encoding="utf-8") as f:
            f.writelines(f"{r.id},{r.key},{r.value},{r.split},{r.offset}\n" for r in log)


def read_output(kind: str, directory: Path) -> list[Record]:
    """The committed output: finished part files only (names starting with '.' are
    in-progress or pending), every upserted row, every appended line."""
    stamped: list[tuple[int, int, Record]] = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line:
                continue
            rid, key, value, stamp = line.rsplit(",", 3)
            stamped.append((int(stamp), len(stamped), Record(rid, int(key), int(value), 0, 0)))
    # the order the sinks wrote them in (the job's JVM stamps each line with its clock)
    return [r for _, _, r in sorted(stamped)]


def _workdir(keep: str | None) -> Path:
    """A fresh directory for one job: a new temporary one, or `keep` (new or empty: the
    output of an earlier run there would be read as this run's)."""
    try:
        if keep is None:
            work = Path(tempfile.mkdtemp(prefix="onceflow-flink-"))
        else:
            work = Path(keep)
            if work.exists() and (not work.is_dir() or any(work.iterdir())):
                raise FlinkError(f"--keep {keep}: give a new or empty directory (an earlier "
                                 "run's output there would be read as this run's)")
        for sub in ("in", "out", "markers", "state"):
            (work / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlinkError(f"cannot create the job's directory: {exc}") from None
    return work


def run_job(tools: Toolchain, classes: Path, name: str, plan: FlinkPlan, *,
            time_limit: float, keep: str | None = None) -> FlinkRun:
    """Run the compiled job `name` to its end, at most `time_limit` seconds."""
    work = _workdir(keep)
    write_input(plan, work / "in")
    (work / "log4j2.properties").write_text(_LOG4J.format(log=work / "flink.log"))
    cmd = [tools.java, "-Xmx700m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", *JVM_OPENS,
           f"-Dlog4j2.configurationFile={work / 'log4j2.properties'}",
           "-cp", f"{classes}{os.pathsep}{tools.classpath}", name,
           str(work / "in"), str(work / "out"), str(work / "markers"), str(work / "state")]
    started = time.monotonic()
    with (work / "stdout.txt").open("w") as out, (work / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        _LIVE.add(proc.pid)
        try:
            proc.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            raise FlinkError(f"the Flink job did not finish within {time_limit:g} s (killed; its log "
                             f"is in {work}); raise --time-limit if the machine is slow") from None
        finally:  # time limit, Ctrl-C, SIGTERM: never leave the JVM behind
            _kill_group(proc.pid)
            proc.wait()
    seconds = time.monotonic() - started
    events = []
    for line in (work / "stdout.txt").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("ONCEFLOW "):
            try:
                events.append(json.loads(line[len("ONCEFLOW "):]))
            except ValueError:
                pass
    done = [e for e in events if e.get("event") == "done"]
    if proc.returncode != 0 or not done:
        tail = (work / "stderr.txt").read_text(errors="replace").strip().splitlines()
        last = tail[-1] if tail else f"exit status {proc.returncode}"
        raise FlinkError(f"the Flink JVM failed ({last[:200]}); its output is in {work}")
    ended = [e for e in events if e.get("event") in ("job_ended", "restored_ended")]
    error = ended[-1].get("error") if ended else None
    fired = tuple(sorted(int(p.name.split("-", 1)[1]) for p in (work / "markers").glob("fault-*")))
    return FlinkRun(status=done[-1]["status"], records=tuple(read_output(plan.scenario.sink, work / "out")),
                    events=tuple(events), faults_fired=fired, seconds=seconds,
                    workdir=str(work), error=error)
