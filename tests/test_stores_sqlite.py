"""The SQLite store: real files a user can open, bad input as one-line errors, fuzzing on it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from onceflow import Scenario
from onceflow.model import restore, run
from onceflow.registry import STORES, register_store
from onceflow.stores import SQLiteStore, StoreError, keep_store
from tests.test_cli import cli


def test_kept_files_hold_the_tables_a_user_reads_with_sql(tmp_path: Path) -> None:
    scenario = Scenario(store="sqlite")
    with keep_store(tmp_path):
        result = run(scenario)
        restored = restore(result, result.checkpoints[0])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and any("-from-checkpoint" in f for f in files)
    db = sqlite3.connect(tmp_path / f"{result.run_id}-t0.sqlite")
    committed = db.execute("SELECT COUNT(*) FROM data JOIN transactions t ON data.txn = t.id "
                           "WHERE t.state = 'committed'").fetchone()[0]
    assert committed == len(result.committed()) == scenario.workload.records
    states = {s for (s,) in db.execute("SELECT DISTINCT state FROM transactions")}
    assert "committed" in states
    assert db.execute("SELECT COUNT(*) FROM visibility").fetchone()[0] > 0
    assert len(restored.committed()) == scenario.workload.records


def test_cli_run_keeps_every_timeline(tmp_path: Path) -> None:
    out = cli("run", "--seed", "3", "--store", "sqlite", "--keep-store", str(tmp_path / "k"),
              "--restore-all")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "k").glob("*.sqlite"))) >= 2


@pytest.mark.parametrize("args, message", [
    (["--store", "sqlite", "--keep-store", "/proc/onceflow-x"], "--keep-store"),
    (["--keep-store", "{tmp}"], "add --store sqlite"),
    (["--store", "nosuch"], "invalid choice"),
])
def test_bad_store_flags_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = cli("run", "--seed", "1", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_keep_store_file_in_the_way_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("fuzz", "--budget", "2s", "--store", "sqlite", "--keep-store", str(blocker / "d"),
              "--db", str(tmp_path / "db"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("kind", ["corrupt", "foreign", "locked", "unwritable", "missing-dir"])
def test_a_bad_database_file_is_a_store_error(bad_sqlite_file: Any, kind: str) -> None:
    path = bad_sqlite_file(kind)
    with pytest.raises(StoreError) as err:
        SQLiteStore(10.0, path=path)
    assert "\n" not in str(err.value)
    if kind == "foreign":
        assert path.exists()  # a user's database is never overwritten


@pytest.mark.parametrize("kind", ["corrupt", "locked", "missing"])
def test_reading_back_a_bad_file_is_a_store_error(bad_sqlite_file: Any, kind: str) -> None:
    path = bad_sqlite_file(kind)
    with pytest.raises(StoreError):
        SQLiteStore.open_file(path, txn_timeout=10.0)


def test_a_registered_store_on_a_bad_file_exits_2_on_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "db.sqlite").write_bytes(b"garbage " * 200)
    plugin = tmp_path / "badstore.py"
    plugin.write_text(
        "from onceflow.registry import register_store\n"
        "from onceflow.stores import SQLiteStore\n"
        f"register_store('userdb', factory=lambda *, txn_timeout, label='': "
        f"SQLiteStore(txn_timeout, path={str(tmp_path / 'db.sqlite')!r}))\n")
    for command in (["run", "--seed", "2"], ["fuzz", "--budget", "3s", "--db", str(tmp_path / "c")]):
        out = cli("--plugin", "badstore", *command, "--store", "userdb", cwd=tmp_path)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "not a database" in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_a_store_failing_mid_run_stops_fuzzing_without_a_verdict() -> None:
    from onceflow.fuzz import fuzz
    from onceflow.stores import MemoryStore

    class Failing(MemoryStore):
        def commit(self, now: float, txn_id: str) -> bool | None:
            raise StoreError("the database went away")

    register_store("test-failing", factory=lambda *, txn_timeout, label="": Failing(txn_timeout))
    try:
        with pytest.raises(StoreError, match="went away"):
            fuzz(budget=20, store="test-failing", db=None, sink="two_phase")
    finally:
        del STORES["test-failing"]


def test_a_store_failing_while_shrinking_keeps_the_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    import onceflow.fuzz as fuzz_module

    def failing(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(fuzz_module, "greedy_shrink", failing)
    outcome = fuzz_module.fuzz(budget=60, mutants=("lingering-transactions",), db=None,
                               store="sqlite", seed=1)
    assert outcome.status == "violation" and outcome.finding is not None
