"""Hostile tokens and scenario files: refused in one line, before they cost memory or time.

Tokens travel through CI logs and chat.  A short valid-looking token must not
multiply records without bound (flat_map fan-outs, broadcast copies), tick a
checkpoint timer billions of times, or crash the parser with deep nesting.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from onceflow import Scenario, TokenError, Topology, Vertex, Workload, decode_token
from onceflow.errors import ScenarioError
from onceflow.scenario import MAX_RECORD_VISITS, record_visits

_SCRIPT = Path(sys.executable).parent / "onceflow"
ONCEFLOW = ([str(_SCRIPT)] if _SCRIPT.exists() else
            [sys.executable, "-c", "import sys; from onceflow.cli import main; sys.exit(main())"])


def token_of_json(text: str) -> str:
    return "of1." + base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")


def fan_out_data(flat_maps: int = 10, fan_out: int = 8, records: int = 1000) -> dict[str, Any]:
    data = Scenario().to_data()
    data["topology"]["vertices"] = (
        [{"uid": "source", "kind": "source", "parallelism": 1, "edge": "forward", "param": 0}]
        + [{"uid": f"f{i}", "kind": "flat_map", "parallelism": 1, "edge": "forward",
            "param": fan_out} for i in range(flat_maps)]
        + [{"uid": "sink", "kind": "sink", "parallelism": 1, "edge": "forward", "param": 0}])
    data["workload"]["records"] = records
    return data


FAN_OUT_TOKEN = token_of_json(json.dumps(fan_out_data()))
DEEP = "[" * 5000


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONCEFLOW, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("onceflow: error:"), lines[0]
    assert len(lines[0]) < 1000, lines[0]  # hostile values are not echoed in full
    return lines[0]


# -- amplifiers ------------------------------------------------------------------------------

def test_a_short_fan_out_token_is_refused_quickly() -> None:
    assert len(FAN_OUT_TOKEN) < 700
    started = time.monotonic()
    with pytest.raises(TokenError) as info:
        decode_token(FAN_OUT_TOKEN)
    assert time.monotonic() - started < 1.0
    text = str(info.value)
    assert "workload.records" in text and "record visits" in text
    assert "fewer records" in text  # says what to do


def test_record_visits_count_fan_outs_and_broadcast_copies() -> None:
    chain = Topology((Vertex("s", "source", 2), Vertex("f", "flat_map", 2, "forward", 3),
                      Vertex("b", "map", 4, "broadcast"), Vertex("k", "sink", 4, "forward")))
    # 10 at the source, 10 into the flat_map, 30 x 4 copies into b and into the sink
    assert record_visits(chain, 10) == 10 + 10 + 120 + 120


def test_the_generators_largest_topology_stays_valid() -> None:
    """What `scenarios()` can draw at its defaults (120 records, parallelism up to 8,
    two fan-out-3 flat_maps behind broadcast edges) stays under the bound."""
    topology = Topology((Vertex("source", "source", 8),
                         Vertex("flat_map0", "flat_map", 8, "broadcast", 3),
                         Vertex("flat_map1", "flat_map", 8, "broadcast", 3),
                         Vertex("sink", "sink", 8, "broadcast")))
    assert record_visits(topology, 120) <= MAX_RECORD_VISITS
    Scenario(topology=topology, workload=Workload(records=120), sink="append")


def test_the_bound_is_on_the_total_not_on_records_alone() -> None:
    small = fan_out_data(flat_maps=2, fan_out=8, records=1000)  # 74,000 record visits
    Scenario.from_data(small)
    big = fan_out_data(flat_maps=4, fan_out=8, records=1000)
    with pytest.raises(ScenarioError) as info:
        Scenario.from_data(big)
    assert info.value.field == "workload.records"


# -- deep nesting ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [DEEP, '{"savepoints": ' + DEEP, "{" + '"a":{' * 3000])
def test_deeply_nested_json_is_a_scenario_error(text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_json(text)
    assert info.value.field == "<json>"


def test_deeply_nested_token_is_a_token_error() -> None:
    with pytest.raises(TokenError, match="nested deeper than"):
        decode_token(token_of_json(DEEP))


# -- the command line: exit 2, one line ---------------------------------------------------------

def test_cli_refuses_a_deeply_nested_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    for command in ("replay", "shrink"):
        assert "nested deeper than" in one_line_error(cli(command, str(path)))
    assert "nested deeper than" in one_line_error(cli("run", "--scenario", str(path)))


def test_cli_refuses_a_deeply_nested_token() -> None:
    assert "nested deeper than" in one_line_error(cli("replay", token_of_json(DEEP)))


def test_cli_refuses_the_fan_out_token() -> None:
    line = one_line_error(cli("replay", FAN_OUT_TOKEN))
    assert "workload.records" in line and "record visits" in line


def test_cli_does_not_echo_a_huge_value(tmp_path: Path) -> None:
    data = Scenario().to_data()
    data["workload"]["records"] = [[["x" * 100_000]]]
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    assert "workload.records" in one_line_error(cli("replay", str(path)))
