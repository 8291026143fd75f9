"""`onceflow fuzz` in operation: Ctrl-C at any moment, CI logs, workers, CI=1, output paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from onceflow.fuzz import fuzz
from tests.test_cli import ONCEFLOW, cli


@pytest.mark.parametrize("delay", [0.6, 1.3, 2.1])
def test_one_ctrl_c_stops_the_fuzzer_whenever_it_lands(tmp_path: Path, delay: float) -> None:
    proc = subprocess.Popen([*ONCEFLOW, "fuzz", "--budget", "60s", "--db", str(tmp_path / "db")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out[-1000:], err[-1000:])
    assert "interrupted" in out and "Traceback" not in err


def test_a_stop_request_ends_fuzz_as_interrupted() -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    outcome = fuzz(budget=60, seed=1, should_stop=stop)
    assert outcome.status == "interrupted"
    assert outcome.elapsed < 30


def test_json_keeps_progress_on_stderr_and_prints_the_replay_line(tmp_path: Path) -> None:
    proc = cli("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--json",
               "--seed", "1", "--db", str(tmp_path / "db"))
    assert proc.returncode == 1, proc.stderr[-1000:]
    report = json.loads(proc.stdout)  # stdout is the object alone
    assert report["status"] == "violation"
    assert "scenarios" in proc.stderr  # a status line for the CI log
    assert f"replay: onceflow replay {report['violation']['token']}" in proc.stderr


def test_two_workers_share_one_corpus(tmp_path: Path) -> None:
    db = tmp_path / "db"
    proc = cli("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--workers", "2",
               "--json", "--db", str(db))
    assert proc.returncode == 1, proc.stderr[-1000:]
    assert json.loads(proc.stdout)["status"] == "violation"
    assert any(p.is_file() for p in db.rglob("*"))
    again = cli("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--json",
                "--db", str(db))
    assert json.loads(again.stdout)["violation"]["scenarios_to_first"] == 1


def test_ci_does_not_derandomize_the_fuzzer(tmp_path: Path) -> None:
    env = dict(os.environ, CI="1")
    runs = [subprocess.run([*ONCEFLOW, "fuzz", "--budget", "1s", "--json", "--db",
                            str(tmp_path / f"db{i}")], capture_output=True, text=True, env=env)
            for i in range(2)]
    events = [json.loads(r.stdout)["events"] for r in runs]
    assert all(r.returncode == 0 for r in runs)
    assert events[0] != events[1], "two CI fuzz runs drew the very same scenarios"


@pytest.mark.parametrize("path", ["", "/proc/nonexistent/x.html", "."])
def test_replay_refuses_an_html_path_it_cannot_write(path: str) -> None:
    token = json.loads(cli("run", "--seed", "1", "--json").stdout)["token"]
    proc = cli("replay", token, "--html", path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("onceflow: error: --html") and "Traceback" not in proc.stderr


def test_an_empty_corpus_path_is_a_usage_error() -> None:
    proc = cli("fuzz", "--db", "", "--budget", "1s")
    assert proc.returncode == 2 and "corpus path is empty" in proc.stderr


@pytest.mark.parametrize("source,message", [
    ("/dev/zero", "larger than 1 MB"),
    ("", "the scenario is empty"),
    ("of1", "cut off"),
])
def test_replay_names_what_is_wrong_with_its_input(source: str, message: str) -> None:
    proc = cli("replay", source, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_absurd_worker_counts_are_refused() -> None:
    proc = cli("fuzz", "--workers", "99999", "--budget", "1s")
    assert proc.returncode == 2 and "at most 64 worker processes" in proc.stderr


def test_mutants_reject_a_counterexample_that_fails_without_the_mutant(monkeypatch: pytest.MonkeyPatch) -> None:
    from onceflow import console
    from onceflow.fuzz import FuzzOutcome, FuzzStats
    from onceflow.properties import checks

    outcome = fuzz(budget=30, mutants=("no-final-checkpoint",), seed=1)
    assert outcome.status == "violation"
    assert console._control(outcome) is True  # the correct model passes the counterexample
    assert console._control(FuzzOutcome("clean", FuzzStats(), 0.0)) is None

    real = checks.check

    def flaky_properties(result: object, **kw: object) -> None:
        real(result, **kw)  # type: ignore[arg-type]
        raise checks._finding(result, "no_loss", "lost", "planted")  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "check", flaky_properties)
    assert console._control(outcome) is False
