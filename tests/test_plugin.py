"""The pytest plugin, in a pytest subprocess: scenario_test, the reproduce section,
--onceflow-replay and its errors.

The inner tests are derandomized so that they draw the same examples with and
without CI=1 (with random draws, 40 examples miss the commit-only-exact-id
mutant in roughly one run out of eight).
"""

from __future__ import annotations

import base64
import json
import re
import zlib

import pytest

import onceflow

pytest_plugins = ["pytester"]

FAILING = '''
import onceflow
from hypothesis import settings

@settings(max_examples=150, deadline=None, derandomize=True)
@onceflow.scenario_test(mode="aligned", sink="two_phase", mutants=("commit-only-exact-id",),
                        max_faults=2)
def test_buggy_pipeline(result):
    pass
'''

PASSING = '''
import onceflow
from hypothesis import settings

SEEN = []

@settings(max_examples=10, deadline=None, derandomize=True)
@onceflow.scenario_test(mode="aligned", sink="two_phase")
def test_correct_pipeline(result):
    SEEN.append(result.digest)
    assert result.scenario.checkpoints.mode == "aligned"
    assert result.scenario.sink == "two_phase"
    assert result.status in ("finished", "failed")

def test_every_example_ran():
    assert 1 <= len(SEEN) <= 10
'''

TOKEN = re.compile(r"^onceflow replay (of1\.[A-Za-z0-9_-]+)\s*$", re.MULTILINE)
DIGEST = re.compile(r"digest: ([0-9a-f]{16,})")


def _text(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def _reproduce_token(output: str) -> str:
    assert "onceflow reproduce" in output, output[-4000:]
    tokens = TOKEN.findall(output)
    assert tokens, output[-4000:]
    return tokens[-1]


def test_failing_scenario_test_reports_diagnosis_and_replay(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pipeline=FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = _text(result)
    assert "violated" in out
    assert "onceflow reproduce" in out
    assert "onceflow replay of1." in out
    assert "--onceflow-replay of1." in out
    assert "pytest 'test_pipeline.py::test_buggy_pipeline' --onceflow-replay of1." in out
    token = _reproduce_token(out)
    digest = onceflow.run(onceflow.decode_token(token)).digest
    # the diagnosis names the digest of the scenario that the reproduce section replays
    assert digest in DIGEST.findall(out), (digest, DIGEST.findall(out))
    assert f"replay: onceflow replay {token}" in out

    # ... and re-running with the printed option fails the same way
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--onceflow-replay", token)
    again.assert_outcomes(failed=1)
    out2 = _text(again)
    assert "violated" in out2
    assert "onceflow: replaying of1." in out2  # the report header
    assert DIGEST.findall(out2) and set(DIGEST.findall(out2)) == {digest}
    assert _reproduce_token(out2) == token
    assert _violated_property(out) == _violated_property(out2)


def _violated_property(output: str) -> str:
    m = re.search(r"(\w+) violated: (\w[\w-]*)", output)
    assert m, output[-3000:]
    return m.group(0)


def test_passing_scenario_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok=PASSING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "onceflow reproduce" not in _text(result)


def test_replay_of_a_passing_token_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok=PASSING)
    token = onceflow.encode_token(onceflow.Scenario())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--onceflow-replay", token)
    result.assert_outcomes(passed=2)


def _token_of_json(text: str) -> str:
    return "of1." + base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")


def _fan_out_json() -> str:
    """source -> 10 flat_maps with fan-out 8 -> sink, 1000 records: 8**10 copies each."""
    data = onceflow.Scenario().to_data()
    data["topology"]["vertices"] = (
        [{"uid": "source", "kind": "source", "parallelism": 1, "edge": "forward", "param": 0}]
        + [{"uid": f"f{i}", "kind": "flat_map", "parallelism": 1, "edge": "forward", "param": 8}
           for i in range(10)]
        + [{"uid": "sink", "kind": "sink", "parallelism": 1, "edge": "forward", "param": 0}])
    data["workload"]["records"] = 1000
    return json.dumps(data)


BAD_TOKENS = {
    "of1.abc": "token is damaged",
    "of9.xyz": "token version 'of9'",
    "not-a-token": "not an onceflow token",
    _token_of_json("[" * 5000): "nested deeper than",
    _token_of_json(_fan_out_json()): "record visits",
}
BAD_IDS = ["damaged", "version", "not-a-token", "deeply-nested", "fan-out"]


@pytest.mark.parametrize("token", list(BAD_TOKENS), ids=BAD_IDS)
def test_bad_replay_token_is_a_clear_error(pytester: pytest.Pytester, token: str) -> None:
    pytester.makepyfile(test_ok=PASSING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--onceflow-replay", token)
    assert result.ret != 0
    out = _text(result)
    assert BAD_TOKENS[token] in out, out[-3000:]
    assert not re.search(r"\d+ passed", out), "no test runs with a bad token"


@pytest.mark.parametrize("token", list(BAD_TOKENS), ids=BAD_IDS)
def test_bad_replay_token_is_a_usage_error(pytester: pytest.Pytester, token: str) -> None:
    """A bad token is the user's input error: pytest's usage error, not an internal error."""
    pytester.makepyfile(test_ok=PASSING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--onceflow-replay", token)
    out = _text(result)
    assert "INTERNALERROR" not in out and "Traceback" not in out, out[-3000:]
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.ret
    assert BAD_TOKENS[token] in out
