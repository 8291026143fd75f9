"""`onceflow report merge`: many machines' `fuzz --json` reports into one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onceflow.report.merge import MergeError, load_report, merge_reports
from tests.test_cli import cli


def fuzz_report(scenarios: int, *, status: str = "clean", phases: dict[str, int] | None = None,
                digest: str | None = None, elapsed: float = 10.0) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "scenarios": scenarios, "events": scenarios * 100,
                            "restores_checked": scenarios // 2, "phases_hit": phases or {},
                            "elapsed_s": elapsed}
    if digest is not None:
        data["status"] = "violation"
        data["violation"] = {"property": "no_loss", "anomaly": "lost", "summary": "1 record lost",
                             "token": f"of1.{digest}", "digest": digest}
    return data


def write(folder: Path, name: str, data: Any) -> str:
    path = folder / name
    path.write_text(json.dumps(data))
    return str(path)


def test_merge_sums_unions_and_lists_each_violation_once(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", fuzz_report(100, phases={"phase_crash:restore": 2, "crash": 5},
                                              elapsed=30))
    b = write(tmp_path, "b.json", fuzz_report(50, phases={"phase_crash:restore": 1,
                                                          "phase_crash:alignment": 4},
                                              digest="d1", elapsed=12))
    c = write(tmp_path, "c.json", fuzz_report(70, digest="d1", elapsed=20))
    d = write(tmp_path, "d.json", fuzz_report(30, digest="d2", elapsed=25))
    proc = cli("report", "merge", a, b, c, d, "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # violations: exit 1
    merged = json.loads(proc.stdout)
    assert merged["reports"] == 4 and merged["scenarios"] == 250
    assert merged["events"] == 25_000 and merged["restores_checked"] == 50 + 25 + 35 + 15
    assert merged["phases_hit"] == {"crash": 5, "phase_crash:alignment": 4,
                                    "phase_crash:restore": 3}
    assert merged["crash_phases_hit"] == ["alignment", "restore"]
    assert "restore" not in merged["crash_phases_not_hit"]
    assert [v["digest"] for v in merged["violations"]] == ["d1", "d2"]
    assert merged["violations"][0]["found_in"] == [b, c]
    assert merged["statuses"] == {"clean": 1, "violation": 3}
    assert merged["elapsed_s"] == 30 and merged["worker_seconds"] == 87
    text = cli("report", "merge", a, b, c, d)
    assert "2 distinct" in text.stdout and "onceflow replay of1.d1" in text.stdout


def test_a_merged_report_merges_again_to_the_same_totals(tmp_path: Path) -> None:
    reports = [fuzz_report(10 * i, digest=f"d{i % 2}", phases={"phase_crash:restore": i})
               for i in range(1, 5)]
    paths = [write(tmp_path, f"r{i}.json", r) for i, r in enumerate(reports)]
    flat = merge_reports([(p, load_report(p)) for p in paths])
    left = write(tmp_path, "left.json", merge_reports([(p, load_report(p)) for p in paths[:2]]))
    right = write(tmp_path, "right.json", merge_reports([(p, load_report(p)) for p in paths[2:]]))
    nested = merge_reports([(p, load_report(p)) for p in (left, right)])
    for key in ("reports", "scenarios", "events", "restores_checked", "phases_hit", "statuses",
                "worker_seconds", "status"):
        assert nested[key] == flat[key], key
    assert [(v["digest"], v["found_in"]) for v in nested["violations"]] == \
           [(v["digest"], v["found_in"]) for v in flat["violations"]]


def test_clean_reports_merge_clean(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"{i}.json", fuzz_report(5)) for i in range(3)]
    proc = cli("report", "merge", *paths, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "clean"


@pytest.mark.parametrize("content,message", [
    ("not json", "is not JSON"),
    ("[1, 2]", "onceflow mutants --json"),
    ('{"status": "clean"}', "'scenarios' is missing"),
    ('{"status": "clean", "scenarios": -1}', "not a count"),
    ('{"status": "weird", "scenarios": 1}', "unknown status"),
    ('{"status": "clean", "scenarios": 1, "phases_hit": [1]}', "not a mapping of counts"),
    ('{"status": "violation", "scenarios": 1, "violation": 7}', "malformed"),
    ("[" * 100_000, "nested too deeply"),
    ('{"kind": "onceflow-fuzz-merged-v1", "status": "clean", "scenarios": 1, "reports": "x"}',
     "'reports' is not a count"),
    ('{"kind": "onceflow-fuzz-merged-v1", "status": "clean", "scenarios": 1, "statuses": [1]}',
     "'statuses' is not a mapping"),
    ('{"kind": "onceflow-fuzz-merged-v1", "status": "clean", "scenarios": 1, "sources": 3}',
     "'sources' is not a list"),
    ('{"kind": "onceflow-fuzz-merged-v1", "status": "violation", "scenarios": 1, '
     '"violations": [{"token": "of1.x", "found_in": 5}]}', "'found_in' is not a list"),
])
def test_bad_reports_are_one_line_exit_2(tmp_path: Path, content: str, message: str) -> None:
    good = write(tmp_path, "good.json", fuzz_report(1))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = cli("report", "merge", good, str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


def test_missing_files_directories_and_devices_are_refused(tmp_path: Path) -> None:
    for source, message in ((str(tmp_path / "nope.json"), "cannot read"),
                            (str(tmp_path), "is a directory"),
                            ("/dev/zero", "not a regular file")):
        proc = cli("report", "merge", source)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = cli("report", "merge", str(fifo), timeout=30)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 20_000_001)
    proc = cli("report", "merge", str(big))
    assert proc.returncode == 2 and "larger than" in proc.stderr
    proc = cli("report", "merge")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    with pytest.raises(MergeError, match="no reports"):
        merge_reports([])


def test_real_fuzz_reports_merge(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        proc = cli("fuzz", "--budget", "3s", "--seed", str(seed), "--db", str(tmp_path / f"db{seed}"),
                   "--json")
        assert proc.returncode == 0, proc.stderr[-1000:]
        paths.append(write(tmp_path, f"{seed}.json", json.loads(proc.stdout)))
    merged = json.loads(cli("report", "merge", *paths, "--json").stdout)
    singles = [json.loads(Path(p).read_text()) for p in paths]
    assert merged["scenarios"] == sum(s["scenarios"] for s in singles) > 0
    assert merged["status"] == "clean" and merged["violations"] == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
_keys = st.sampled_from(["kind", "status", "scenarios", "events", "restores_checked",
                         "phases_hit", "elapsed_s", "violation", "violations", "reports",
                         "statuses", "sources", "worker_seconds", "found_in", "token", "digest"])
_reportish = st.dictionaries(_keys, _json | st.sampled_from(
    ["clean", "violation", "onceflow-fuzz-merged-v1", 3, {}, []]), max_size=10)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_reportish | _json, min_size=1, max_size=3))
def test_generated_reports_load_or_fail_with_a_merge_error(tmp_path_factory: pytest.TempPathFactory,
                                                           drawn: list[Any]) -> None:
    folder = tmp_path_factory.mktemp("gen")
    loaded = []
    for i, data in enumerate(drawn):
        path = folder / f"{i}.json"
        path.write_text(json.dumps(data))
        try:
            loaded.append((str(path), load_report(path)))
        except MergeError:
            continue
    if loaded:
        merged = merge_reports(loaded)
        assert merged["scenarios"] == sum(int(d.get("scenarios", 0)) for _, d in loaded)
        json.dumps(merged)
