"""examples/sql_sink.py: a two-phase sink speaking SQL to the SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from attrs import evolve

import examples.sql_sink  # noqa: F401  (registers sql_two_phase and sql_two_phase_eager)
from onceflow import OnceflowError, Scenario
from onceflow.model import run
from onceflow.properties import Violation, check
from onceflow.stores import keep_store
from onceflow.strategies import scenario_from_seed


def test_the_sql_sink_is_exactly_once_under_drawn_faults() -> None:
    judged = 0
    for seed in range(25):
        scenario = evolve(scenario_from_seed(seed, sink="two_phase"), sink="sql_two_phase",
                          store="sqlite")
        check(run(scenario))
        judged += bool(scenario.faults)
    assert judged > 5


def test_its_rows_are_in_the_kept_file(tmp_path: Path) -> None:
    with keep_store(tmp_path):
        result = run(Scenario(sink="sql_two_phase", store="sqlite"))
    db = sqlite3.connect(tmp_path / f"{result.run_id}-t0.sqlite")
    assert db.execute("SELECT COUNT(*) FROM data").fetchone()[0] == 200
    assert db.execute("SELECT COUNT(*) FROM sql_staging").fetchone()[0] == 0
    assert {s for (s,) in db.execute("SELECT DISTINCT state FROM sql_txns")} <= {
        "committed", "aborted"}


def test_the_eager_variant_is_premature_with_no_fault() -> None:
    with pytest.raises(Violation) as err:
        check(run(Scenario(sink="sql_two_phase_eager", store="sqlite")))
    assert err.value.finding.anomaly == "premature" and err.value.finding.faults == ()


def test_on_the_memory_store_it_says_what_to_do() -> None:
    result = run(Scenario(sink="sql_two_phase"))
    assert result.error is not None and "--store sqlite" in result.error
    with pytest.raises(OnceflowError, match="--store sqlite"):
        check(result)
