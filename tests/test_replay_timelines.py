"""`onceflow replay` reproduces a finding on the timeline it was found on: a restore at
the job's parallelism, a rescaled restore, a rollback, a rescale-chain link.

Each test takes a finding (from `check()` on a mutant's scenario, or from a user's own
restore), runs the command the finding prints, and asserts that it judged exactly that
timeline: the same violation, the same digest, the same restored timeline's digest.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from attrs import evolve

from onceflow import Scenario, Timing, Workload
from onceflow.cli import main
from onceflow.model.simulation import follow, restore, run, timeline_of
from onceflow.properties import Violation, check, no_loss
from onceflow.properties.checks import judge_timeline
from onceflow.scenario import RescaleStep, SavepointRequest
from onceflow.strategies import scenario_from_seed
from onceflow.timelines import RestoreStep, TimelineSpec
from onceflow.token import decode, decode_timeline, encode
from tests.test_cli import cli


def finding_of(scenario: Scenario) -> Any:
    with pytest.raises(Violation) as err:
        check(run(scenario))
    return err.value.finding


def replay_in_process(token: str, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["replay", token, *extra])
    return code, out.getvalue()


def assert_replays(finding: Any, *, subprocess: bool = True) -> dict[str, Any]:
    """The finding's replay command exits 1 with the same violation on the same timeline,
    and its JSON names that timeline and the same digests; returns the JSON."""
    spec = decode_timeline(finding.token)[1]
    assert not spec.original, "the token must name the finding's timeline"
    restored = follow(run(decode(finding.token)), spec)
    assert finding.replay.endswith(f"replay {finding.token}")
    if subprocess:
        proc = cli("replay", finding.token)
        code, text = proc.returncode, proc.stdout
        assert "Traceback" not in proc.stderr, proc.stderr
    else:
        code, text = replay_in_process(finding.token)
    assert code == 1, text
    assert f"{finding.property} violated: {finding.anomaly}: {finding.summary}" in text
    assert f"  timeline: {finding.timeline}\n" in text
    assert f"digest: {finding.digest}\n" in text
    assert f"timeline digest: {restored.digest}\n" in text
    # the text timeline shown is the finding's own
    assert f"({finding.timeline}); offending records" in text or "offending" not in text
    code, text = replay_in_process(finding.token, "--json")
    data = json.loads(text)
    assert code == 1 and data["status"] == "violation"
    assert data["violation"]["anomaly"] == finding.anomaly
    assert data["violation"]["timeline"] == finding.timeline
    assert data["violation"]["token"] == finding.token
    assert data["digest"] == finding.digest
    assert data["timeline_digest"] == restored.digest
    assert TimelineSpec.from_data(data["timeline"]) == spec
    return data


# -- the value and the token -------------------------------------------------------------------

def test_a_token_without_a_timeline_decodes_as_before() -> None:
    scenario = scenario_from_seed(3)
    token = encode(scenario)
    assert encode(scenario, TimelineSpec()) == token
    assert decode_timeline(token) == (scenario, TimelineSpec())
    # tokens printed before timelines existed: the scenario JSON alone
    from tests.test_regressions import REGRESSIONS

    for _, old in REGRESSIONS:
        scenario, spec = decode_timeline(old)
        assert spec.original and decode(old) == scenario
        assert decode_timeline(encode(scenario)) == (scenario, spec)


def test_a_timeline_round_trips_through_a_token() -> None:
    scenario = scenario_from_seed(5)
    spec = TimelineSpec((
        RestoreStep(3, "checkpoint", parallelism=5, chain=True,
                    savepoints=(SavepointRequest(at=2.0, stop=True),)),
        RestoreStep(4, "savepoint", into="rollback", at=7.5, parallelism=3),
    ))
    token = encode(scenario, spec)
    assert token.startswith("of1.")
    assert decode_timeline(token) == (scenario, spec)
    assert decode(token) == scenario  # run(decode(token)) keeps working


@pytest.mark.parametrize("data, match", [
    ({"steps": [{"snapshot": 1, "into": "sideways"}]}, "into"),
    ({"steps": [{"snapshot": 1, "at": 3.0}]}, "only a rollback"),
    ({"steps": [{"snapshot": 1, "parallelism": 99}]}, "parallelism"),
    ({"steps": [{"snapshot": 1, "into": "rollback"}, {"snapshot": 2}]}, "a rollback ends"),
    ({"steps": [{"snapshot": 1, "bogus": 1}]}, "bogus"),
])
def test_a_bad_timeline_in_a_token_is_a_clear_error(data: Any, match: str) -> None:
    from onceflow.errors import TokenError
    import base64
    import zlib

    body = Scenario().to_data()
    body["timeline"] = data
    token = "of1." + base64.urlsafe_b64encode(
        zlib.compress(json.dumps(body).encode())).decode().rstrip("=")
    with pytest.raises(TokenError, match=match):
        decode_timeline(token)
    proc = cli("replay", token)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert match in proc.stderr


def test_a_timeline_naming_a_missing_snapshot_says_so() -> None:
    scenario = Scenario(workload=Workload(records=20))
    token = encode(scenario, TimelineSpec((RestoreStep(999, "savepoint"),)))
    proc = cli("replay", token)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "no completed savepoint 999" in proc.stderr


# -- a finding on each kind of timeline replays on that timeline --------------------------------

#: a split is dropped whenever splits are redistributed at another parallelism
SPLIT_LOST = dict(mutants=("split-lost-on-rescale",), workload=Workload(records=200, splits=4),
                  timing=Timing(record_cost=0.5))


def _steps(finding: Any) -> tuple[RestoreStep, ...]:
    return decode_timeline(finding.token)[1].steps


def test_a_finding_on_a_restore_at_the_jobs_parallelism_replays_there() -> None:
    # commit-only-exact-id, as the generator drew it (seed 330): lost on a restore of
    # savepoint 1 (abort-discards' seed 165 no longer fails there: the abort notification
    # now carries the latest completed checkpoint, which commits first, as in Flink)
    scenario = decode(
        "of1.eNqdU9GSoyAQ_Bee2RRqdm_PX0mlqAmOCSeCBRiTSvnvO6OXXLJ193L6IEJP090DN2FOaLohWJ-TqG-iGSMcHOqUQ0RR5ziiFLSI8QxO1NVGSdHDRZvgzRgj-izqkqZCQ2gBWTuElDWtopAiYgbrsaFCKbLtMYyMrxTT5OBw3awF67DRL1LKWYoWRsfj3e1J5rJfgw6uxLoQYduioXmRXJj0OLgADW3eWd_wJDmBI6tJHoZ0CowEf6WJDPGIS6H13a7Yi3lPVsYMi4KdMKHvbX4L3l3f8AImv9lG7NlWotLMeUHO2A8Mrx6q3jeKxCc4493MjoGiVpuSUZEyEXULLuHKRVHrASI4h86mXtSFZNnDbxCrShRAMzoKeadkKStZ0KtkxUvIAZfFB1eREfKTp6CHEyR2TbFbf2Sth5GCijqiCbEhVVtJsYL36LSBAYzNJP5Til-WTEWi5HAdZPSGForNJ6vlWup-WuwoshMHox8gtfkpxdoBzf3msq16eYqZWz8EF45XVsWn6dV8SRudMWZrcM0OmyOfrjbECeJza8MYl3P2PTz-pxHJH-0TcJYPLgrn9Idook-Y_k1U3IlWoPp_pu0rU_HMdIgUm6Hr8-SQ-_mNrPyLP4bNe0724vXjon0sgXMXKc5kg1-UTCF2yxWh8Du8UsQ_7o2lcaHuJ6qoSvVOPx1O3EaeH5xd7-b8BZ18YMA")
    finding = finding_of(scenario)
    (step,) = _steps(finding)
    assert (step.into, step.parallelism, step.chain) == ("fork", None, False)
    assert "at parallelism" not in finding.timeline
    assert_replays(finding)


def test_a_finding_on_a_rescaled_restore_replays_at_that_parallelism() -> None:
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0,
                                                                   mode="unaligned"))
    finding = finding_of(scenario)
    (step,) = _steps(finding)
    assert step.into == "fork" and step.parallelism is not None and not step.chain
    assert f"at parallelism {step.parallelism}" in finding.timeline
    assert_replays(finding)


def test_a_finding_on_a_users_own_rescaled_restore_replays_it() -> None:
    # the properties never restore an aligned checkpoint at 3; a user's test does
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0))
    result = run(scenario)
    check(result)  # every timeline check() restores is clean
    restored = restore(result, result.checkpoints[0], 3)
    with pytest.raises(Violation) as err:
        no_loss(restored)
    finding = err.value.finding
    assert timeline_of(restored) == decode_timeline(finding.token)[1]
    assert_replays(finding)


def test_a_finding_on_a_rescale_chain_link_replays_that_link() -> None:
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0),
                        rescales=(RescaleStep(3, back=3),))
    finding = finding_of(scenario)
    (step,) = _steps(finding)
    assert step.chain and step.parallelism == 3
    assert_replays(finding)


def test_a_finding_on_the_second_link_of_a_chain_replays_it() -> None:
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0), rescales=(
        RescaleStep(2, back=3, savepoints=(SavepointRequest(at=5.0),)),
        RescaleStep(3, snapshot="savepoint")))
    finding = finding_of(scenario)
    first, second = _steps(finding)
    assert first.chain and second.chain and second.snapshot_kind == "savepoint"
    assert first.savepoints == (SavepointRequest(at=5.0),)
    assert ", on the timeline restored from" in finding.timeline
    assert_replays(finding)


@pytest.fixture
def marker_sink() -> Any:
    from onceflow.registry import SINKS, register_sink
    from tests.test_rollback import MarkerSink

    register_sink("test-replay-marker", factory=MarkerSink, exactly_once=True)
    yield "test-replay-marker"
    del SINKS["test-replay-marker"]


def test_a_finding_on_a_rollback_replays_that_rollback(marker_sink: str) -> None:
    from tests.test_rollback import _scenario

    finding = finding_of(_scenario(marker_sink))
    (step,) = _steps(finding)
    assert step.into == "rollback" and "rolled back" in finding.timeline
    assert_replays(finding, subprocess=False)  # the sink is registered in this process


def test_judge_timeline_judges_as_check_did() -> None:
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0),
                        rescales=(RescaleStep(3, back=3),))
    finding = finding_of(scenario)
    result = run(scenario)
    judge_timeline(result)  # the original run alone is clean
    with pytest.raises(Violation) as err:
        judge_timeline(follow(result, decode_timeline(finding.token)[1]))
    assert err.value.finding == finding


def test_a_shrunk_counterexample_replays_the_shrunk_violation() -> None:
    from onceflow.scenario import CheckpointConfig
    from onceflow.shrinking import shrink

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0),
                        rescales=(RescaleStep(3, back=3),))
    outcome = shrink(scenario, max_seconds=20)
    assert outcome is not None and outcome.steps > 0
    assert decode(outcome.finding.token) == outcome.scenario
    if decode_timeline(outcome.finding.token)[1].original:
        pytest.fail("the shrunk violation should stay on a restored timeline")
    assert_replays(outcome.finding)


def test_restore_all_gives_each_restored_timeline_its_token() -> None:
    from tests.test_rollback import _scenario

    scenario = _scenario()
    out = cli("run", "--scenario", encode(scenario), "--restore-all", "--json")
    assert out.returncode == 0, out.stderr
    restores = json.loads(out.stdout)["restores"]
    result = run(scenario)
    for kind in ("fork", "rollback"):
        entry = next(r for r in restores if r["restore"] == kind)
        got, spec = decode_timeline(entry["token"])
        assert got == scenario
        (step,) = spec.steps
        assert (step.into, step.snapshot, step.snapshot_kind) == (kind, entry["snapshot"],
                                                                  entry["kind"])
        timeline = follow(result, spec)
        assert timeline.restored_into == kind and timeline.status == entry["status"]
        judge_timeline(timeline)  # the correct sink: clean on each
        code, text = replay_in_process(entry["token"])
        assert code == 0 and "every property holds on this timeline" in text
        assert f"timeline digest: {timeline.digest}" in text


#: rescale-unfiltered-inflight as `onceflow mutants --only rescale-unfiltered-inflight
#: --seed 1` found and shrank it: a duplicate on checkpoint 1 restored at parallelism 2
UNFILTERED = (
    '{"checkpoints":{"aligned_timeout":0.1,"durable_store":false,"interval":0.5,'
    '"max_concurrent":1,"mode":"unaligned","retained":1,"timeout":50.0,'
    '"tolerable_failed_checkpoints":0},"faults":[],"mutants":["rescale-unfiltered-inflight"],'
    '"restart":{"attempts":2,"delay":0.5},"savepoints":[],"schedule":[],"seed":0,'
    '"sink":"two_phase","timing":{"buffer_records":1,"channel_capacity":2,'
    '"jitter":0.30000000000000004,"latency":0.1,"record_cost":0.1,"rpc_latency":0.1,'
    '"upload_time":0.0},"topology":{"max_parallelism":128,"vertices":[{"edge":"forward",'
    '"kind":"source","parallelism":1,"param":0,"uid":"source"},{"edge":"hash",'
    '"kind":"reduce","parallelism":1,"param":0,"uid":"reduce0"},{"edge":"hash",'
    '"kind":"sink","parallelism":1,"param":0,"uid":"sink"}]},"txn_timeout":600000.0,'
    '"version":1,"workload":{"keys":1,"records":1,"seed":0,"skew":0.0,"splits":1}}')


def test_the_diagram_and_text_timeline_of_a_rescaled_finding_show_the_rescaled_job(
        tmp_path: Any) -> None:
    finding = finding_of(Scenario.from_json(UNFILTERED))
    (step,) = _steps(finding)
    assert step.parallelism == 2 and "at parallelism 2" in finding.timeline
    data = assert_replays(finding)
    assert data["timeline"] == {"steps": [{"parallelism": 2, "snapshot": 1}]}
    html = tmp_path / "out.html"
    code, text = replay_in_process(finding.token, "--html", str(html))
    assert code == 1
    assert "6 tasks restore checkpoint 1" in text  # three vertices at 2 subtasks each
    assert "sink[1]" in html.read_text()  # a lane only the rescaled timeline has


def test_shrink_keeps_a_users_own_timeline_pinned() -> None:
    # check() finds nothing in this scenario: the shrinker shrinks on the token's timeline
    from onceflow.scenario import CheckpointConfig

    scenario = Scenario(**SPLIT_LOST, checkpoints=CheckpointConfig(interval=5.0))
    result = run(scenario)
    with pytest.raises(Violation) as err:
        no_loss(restore(result, result.checkpoints[0], 3))
    finding = err.value.finding
    out = cli("shrink", finding.token, "--json", timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["property"] == "no_loss" and data["steps"] > 0
    assert data["size_after"]["records"] < scenario.size["records"]
    shrunk, spec = decode_timeline(data["token"])
    assert spec == decode_timeline(finding.token)[1]  # pinned
    assert data["replay"].endswith(data["token"])
    code, text = replay_in_process(data["token"])
    assert code == 1 and "no_loss violated: lost" in text
