"""Every repro of issue 14 gives a one-line exit 2 or a scenario within the budget
(whose cost `benchmarks/cost_bounds.py` measures), and hostile-but-valid scenarios at
the bounds are admitted only within it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from onceflow import Scenario, ScenarioError
from onceflow.cli import main
from onceflow.cost import MAX_JUDGE_UNITS, MAX_RUN_UNITS, estimate
from onceflow.token import encode


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def one_line_exit_2(argv: list[str]) -> str:
    code, out, err = cli(argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and len(err) < 300
    assert not any(line.lstrip().startswith("Traceback") for line in (out + err).splitlines())
    return err


def admitted_within_budget_or_refused(data: dict[str, Any]) -> None:
    try:
        scenario = Scenario.from_data(data)
    except ScenarioError as exc:
        assert "budget" in str(exc) or "at most" in str(exc), str(exc)
        assert len(str(exc)) < 700
        return
    cost = estimate(scenario)
    assert cost.run_units <= MAX_RUN_UNITS and cost.judge_units <= MAX_JUDGE_UNITS


PAIR = [{"uid": "source", "kind": "source"}, {"uid": "sink", "kind": "sink"}]


def test_a_short_token_with_many_checkpoints_is_bounded() -> None:
    admitted_within_budget_or_refused({
        "topology": {"vertices": PAIR}, "workload": {"records": 40000},
        "checkpoints": {"interval": 0.5},
        "timing": {"upload_time": 0, "rpc_latency": 0, "latency": 0}})


def test_a_keyed_job_with_as_many_keys_as_records_is_refused_naming_the_figure() -> None:
    data = {"topology": {"vertices": [PAIR[0], {"uid": "reduce", "kind": "reduce", "edge": "hash"},
                                      PAIR[1]]},
            "workload": {"records": 100000, "keys": 100000}}
    with pytest.raises(ScenarioError) as info:
        Scenario.from_data(data)
    assert info.value.field == "workload.records"
    assert "x the budget" in str(info.value) and "fewer records" in str(info.value)


def test_end_of_input_crashes_over_the_largest_input_are_refused() -> None:
    data = Scenario(faults=()).to_data()
    data["workload"]["records"] = 500_000
    data["faults"] = [{"kind": "phase_crash", "phase": "end_of_input", "target": "sink[0]",
                       "checkpoint": 0}] * 32
    with pytest.raises(ScenarioError) as info:
        Scenario.from_data(data)
    assert "budget" in str(info.value) or "at most" in str(info.value)


def test_twelve_vertices_at_parallelism_8_with_a_1ms_interval_is_bounded() -> None:
    vertices = [{"uid": "source", "kind": "source", "parallelism": 8}]
    vertices += [{"uid": f"m{i}", "kind": "map", "parallelism": 8, "edge": "rebalance"}
                 for i in range(10)]
    vertices += [{"uid": "sink", "kind": "sink", "parallelism": 8}]
    admitted_within_budget_or_refused({"topology": {"vertices": vertices},
                                       "checkpoints": {"interval": 1.0}})


@pytest.mark.parametrize("where", [("timing", "latency"), ("timing", "upload_time"),
                                   ("restart", "delay"), ("checkpoints", "interval"),
                                   ("checkpoints", "timeout"), (None, "txn_timeout")])
def test_a_time_of_10_to_the_400_is_a_one_line_error(where: tuple[str | None, str],
                                                     tmp_path: Path) -> None:
    data = Scenario().to_data()
    section, name = where
    (data[section] if section else data)[name] = 10**400
    with pytest.raises(ScenarioError):
        Scenario.from_data(data)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    err = one_line_exit_2(["replay", str(path)])
    assert name in err


def test_a_fault_time_of_10_to_the_400_is_a_one_line_error(tmp_path: Path) -> None:
    data = Scenario().to_data()
    data["faults"] = [{"kind": "crash", "at": 10**400, "target": "map[0]"}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    assert "faults[0].at" in one_line_exit_2(["replay", str(path)])


def test_html_into_proc_is_refused_before_the_run() -> None:
    one_line_exit_2(["replay", encode(Scenario()), "--html", "/proc/x.html"])


def test_a_huge_echoed_value_is_shortened(tmp_path: Path) -> None:
    data = Scenario().to_data()
    data["faults"] = [{"kind": "crash", "at": list(range(100000)), "target": "map[0]"}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    err = one_line_exit_2(["replay", str(path)])
    assert "faults[0].at" in err
    with pytest.raises(ScenarioError) as info:
        Scenario.from_data(data)
    assert len(str(info.value)) < 300


def test_a_field_name_with_a_newline_cannot_fake_a_traceback_line(tmp_path: Path) -> None:
    data = Scenario().to_data()
    data["timing"]["lat\nTraceback (most recent call last):"] = 1
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    err = one_line_exit_2(["replay", str(path)])
    assert "\\n" in err
    with pytest.raises(ScenarioError) as info:
        Scenario.from_data(data)
    assert "\n" not in str(info.value)


def test_an_empty_scenario_argument_is_a_usage_error() -> None:
    assert "empty" in one_line_exit_2(["run", "--scenario", ""])
    one_line_exit_2(["replay", ""])


@pytest.mark.parametrize("records", [0, 1, 200])
def test_hostile_but_valid_timings_at_the_bounds_are_admitted_and_bounded(records: int) -> None:
    """The largest admitted parallelism, vertices, savepoints and faults together."""
    vertices = [{"uid": "source", "kind": "source", "parallelism": 8}]
    vertices += [{"uid": f"m{i}", "kind": "map", "parallelism": 8, "edge": "forward"}
                 for i in range(10)]
    vertices += [{"uid": "sink", "kind": "sink", "parallelism": 8}]
    data = {"topology": {"vertices": vertices}, "workload": {"records": records},
            "savepoints": [{"at": float(i)} for i in range(16)],
            "faults": [{"kind": "crash", "at": float(i), "target": "m0[0]"} for i in range(32)],
            "restart": {"attempts": 100}}
    admitted_within_budget_or_refused(data)
