"""Nothing found is lost: an interrupted `onceflow fuzz` (Ctrl-C, SIGTERM, the budget's
end) keeps every finding, in its corpus and as a printed replay command."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import onceflow.fuzz as fuzz_module
from onceflow import check, run
from onceflow.fuzz import FuzzStats, fuzz
from onceflow.properties.violation import Violation
from onceflow.token import decode
from tests.test_cli import ONCEFLOW, cli

MUTANT = "no-final-checkpoint"  # found within seconds, then shrunk and polished


def _entries(db: Path) -> int:
    return sum(1 for p in db.rglob("*") if p.is_file()) if db.exists() else 0


def _replays(token: str, prop: str) -> None:
    with pytest.raises(Violation) as info:
        check(run(decode(token)))
    assert info.value.finding.property == prop


def test_a_stop_while_shrinking_returns_the_finding(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz_module, "PROGRESS_EVERY", 0.0)  # progress after each scenario
    seen: dict[str, int] = {"violations": 0, "asked": 0}

    def progress(stats: FuzzStats) -> None:
        seen["violations"] = stats.violations

    def stop() -> bool:  # asked to stop as soon as the first violation is found
        if seen["violations"]:
            seen["asked"] += 1
            return True
        return False

    db = tmp_path / "db"
    outcome = fuzz(budget=120, mutants=(MUTANT,), seed=1, db=str(db), on_progress=progress,
                   should_stop=stop)
    assert seen["asked"], "the stop was never asked for while shrinking"
    assert outcome.status == "violation" and outcome.interrupted
    assert outcome.finding is not None and outcome.scenario is not None
    assert outcome.to_data()["interrupted"] is True
    assert _entries(db) >= 1, "the corpus lost the finding"
    _replays(outcome.finding.token, outcome.finding.property)


def _read_lines(stream: Any, into: "queue.Queue[str]", keep: list[str]) -> None:
    for line in stream:
        keep.append(line)
        into.put(line)


def _fuzz_until_found(argv: list[str], sig: int) -> tuple[int, str, str]:
    """Start `onceflow fuzz`, send `sig` once a status line counts a violation (or
    after 90 s), and return exit code, stdout and stderr."""
    proc = subprocess.Popen([*ONCEFLOW, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    err: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stderr, lines, err), daemon=True)
    reader.start()
    try:
        until = time.monotonic() + 90
        while time.monotonic() < until and proc.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if "violations 1" in line or "violations 2" in line:
                break
        if proc.poll() is None:
            proc.send_signal(sig)
        out = proc.stdout.read() if proc.stdout else ""
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    return proc.returncode, out, "".join(err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_signal_after_a_find_keeps_it_in_the_corpus_and_the_output(
        tmp_path: Path, sig: int, workers: int) -> None:
    db = tmp_path / "db"
    code, out, err = _fuzz_until_found(
        ["fuzz", "--mutant", MUTANT, "--budget", "120s", "--seed", "1", "--db", str(db),
         "--workers", str(workers), "--json"], sig)
    assert code == 1, (code, out[-1000:], err[-2000:])
    assert "Traceback" not in err
    report = json.loads(out)
    token = report["violation"]["token"]
    assert f"replay: {report['violation']['replay']}" in err
    assert _entries(db) >= 1, "the corpus lost the finding"
    _replays(token, report["violation"]["property"])


def test_sigterm_before_a_find_stops_cleanly_and_keeps_the_corpus(tmp_path: Path) -> None:
    db = tmp_path / "db"
    proc = subprocess.Popen([*ONCEFLOW, "fuzz", "--budget", "60s", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # once the first status line is out the fuzzer runs (a signal during Python's
        # start-up, before onceflow is imported, is the interpreter's to handle)
        first = proc.stderr.readline() if proc.stderr else ""
        assert "scenarios" in first, first
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, out[-1000:], err[-1000:])
    assert "Traceback" not in err
    assert "interrupted" in out


def test_the_budgets_end_keeps_the_finding_for_the_next_run(tmp_path: Path) -> None:
    db = tmp_path / "db"
    first = cli("fuzz", "--mutant", MUTANT, "--budget", "60s", "--seed", "1", "--json",
                "--db", str(db))
    assert first.returncode == 1, first.stderr[-1000:]
    assert _entries(db) >= 1
    # a run with a budget too short to find it by search replays the corpus first
    again = cli("fuzz", "--mutant", MUTANT, "--budget", "1s", "--seed", "2", "--json",
                "--db", str(db))
    assert again.returncode == 1, again.stderr[-1000:]
    report = json.loads(again.stdout)
    assert report["violation"]["scenarios_to_first"] <= 3
