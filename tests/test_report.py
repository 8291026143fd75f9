"""Reports on a violation: the text timeline, the HTML diagram and the violating timeline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import onceflow
from onceflow import CheckpointConfig, OnceflowError, Scenario, Timing, Violation, Workload
from onceflow.model.simulation import RunResult
from onceflow.properties.checks import no_loss, timeline_label
from onceflow.properties.violation import Finding
from onceflow.report import text_timeline, violating_timeline, write_html
from onceflow.strategies import scenario_from_seed

LINE = re.compile(r"^(>> |   )t=(?P<time>\d+\.\d{3})\s+\S+\s+\S")


def violation(scenario: Scenario) -> tuple[RunResult, Finding] | None:
    result = onceflow.run(scenario)
    try:
        onceflow.check(result)
    except Violation as v:
        return result, v.finding
    return None


@pytest.fixture(scope="module")
def lost() -> tuple[RunResult, Finding]:
    """Periodic checkpoints commit the head; without the final checkpoint the tail is lost."""
    found = violation(Scenario(
        workload=Workload(records=120, keys=4, splits=2),
        checkpoints=CheckpointConfig(interval=3.0),
        timing=Timing(record_cost=0.2, buffer_records=4),
        mutants=("no-final-checkpoint",)))
    assert found is not None
    result, finding = found
    assert (finding.anomaly, finding.timeline) == ("lost", "the original run")
    return found


@pytest.fixture(scope="module")
def restored() -> tuple[RunResult, Finding]:
    """A committable overtaken by an unaligned barrier: lost after a restore."""
    for seed in range(200):
        found = violation(scenario_from_seed(seed, mode="unaligned", sink="two_phase",
                                             mutants=("unaligned-committables",)))
        if found is not None and found[1].timeline.startswith("restored from"):
            return found
    pytest.fail("no seed below 200 loses records on a restored timeline")


def ids(finding: Finding) -> list[str]:
    return [r.id for r in finding.records]


# -- the text timeline ---------------------------------------------------------------------

def test_timeline_names_and_marks_the_offending_records(lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    text = text_timeline(result, finding)
    marked = [line for line in text.splitlines() if line.startswith(">>")]
    assert ids(finding)
    for record_id in ids(finding):
        assert any(re.search(rf"\b{re.escape(record_id)}\b", line) for line in marked), record_id
    assert all(line.startswith(("# ", ">> ", "   ")) for line in text.splitlines())


def test_timeline_shows_commits_and_the_end(lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    text = text_timeline(result, finding, limit=1000)
    assert "COMMIT txn " in text
    assert "job finished" in text
    assert "trigger checkpoint 1" in text and "checkpoint 1 completed" in text
    assert re.search(r"^>> .*NEVER COMMITTED; holds " + ids(finding)[0], text, re.M)


def test_timeline_is_in_time_order(lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    times = [float(m["time"]) for line in text_timeline(result, finding, limit=1000).splitlines()
             if (m := LINE.match(line))]
    assert len(times) > 20
    assert times == sorted(times)


def test_timeline_elides_far_from_the_offending_records(lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    full = text_timeline(result, finding, limit=1000).splitlines()
    short = text_timeline(result, finding, limit=25).splitlines()
    assert len(short) <= 1 + 25 < len(full)
    elided = [int(m[1]) for line in short if (m := re.search(r"\.\.\. (\d+) lines? elided", line))]
    assert elided and sum(elided) == len(full) - len(short) + len(elided)
    assert any(line.startswith(">>") for line in short)


def test_timeline_without_finding_summarizes_buffers() -> None:
    result = onceflow.run(Scenario(workload=Workload(records=40, keys=4, splits=2)))
    text = text_timeline(result, limit=1000)
    assert ">>" not in text
    assert re.search(r"processed \d+ records? \(r\d+", text)
    assert "job finished" in text


def test_timeline_rejects_a_limit_below_one(lost: tuple[RunResult, Finding]) -> None:
    with pytest.raises(ValueError, match="limit"):
        text_timeline(lost[0], lost[1], limit=0)


# -- the violating timeline -------------------------------------------------------------------

def test_violating_timeline_of_the_original_run_is_the_run(
        lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    assert violating_timeline(result, finding) is result


def test_violating_timeline_restores_the_snapshot(restored: tuple[RunResult, Finding]) -> None:
    result, finding = restored
    timeline = violating_timeline(result, finding)
    assert timeline.parent is result and timeline.restored_from is not None
    assert timeline_label(timeline) == finding.timeline
    assert finding.snapshot is not None and finding.snapshot.startswith(
        f"{timeline.restored_from.kind} {timeline.restored_from.id} ")
    with pytest.raises(Violation) as again:
        no_loss(timeline)
    assert ids(again.value.finding) == ids(finding)


def test_timeline_of_a_restore_shows_the_fork(restored: tuple[RunResult, Finding]) -> None:
    result, finding = restored
    text = text_timeline(violating_timeline(result, finding), finding, limit=1000)
    assert "RESTORED from " + finding.snapshot in text  # type: ignore[operator]
    assert any(line.startswith(">>") for line in text.splitlines())
    assert finding.timeline in text.splitlines()[0]


# -- the HTML diagram -------------------------------------------------------------------------

def test_write_html_highlights_the_offending_records(tmp_path: Path,
                                                    lost: tuple[RunResult, Finding]) -> None:
    result, finding = lost
    out = write_html(result, tmp_path / "diagram.html", finding)
    assert out == tmp_path / "diagram.html"
    html = out.read_text(encoding="utf-8")
    assert "plotly" in html
    assert "offending records: " + ", ".join(ids(finding)) in html
    for record_id in ids(finding):
        assert record_id in html
    for lane in ("coordinator", "store", "source[0]", "sink[1]"):
        assert f'"{lane}"' in html


def test_write_html_of_a_restored_timeline(tmp_path: Path,
                                           restored: tuple[RunResult, Finding]) -> None:
    result, finding = restored
    html = write_html(violating_timeline(result, finding), tmp_path / "r.html",
                      finding).read_text(encoding="utf-8")
    assert finding.timeline in html
    assert "restored from " in html


def test_write_html_without_plotly_says_how_to_get_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        lost: tuple[RunResult, Finding]) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(OnceflowError, match=r"pip install 'onceflow\[html\]'"):
        write_html(lost[0], tmp_path / "d.html", lost[1])
    assert not (tmp_path / "d.html").exists()
