"""The pytest plugin in a user's project: fixtures, @example, the onceflow-* Hypothesis
profiles, replays of scenarios with registered components, plugins in the reproduce lines."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

CONNECTOR = '''
from typing import Any
from onceflow.model.sinks import TwoPhaseCommitSink
from onceflow.registry import register_sink

class EagerCommit(TwoPhaseCommitSink):
    """Commits at pre-commit, before the checkpoint completes (a planted bug)."""
    def snapshot_state(self, checkpoint_id: int) -> Any:
        txn = self.txn
        state = super().snapshot_state(checkpoint_id)
        self.ctx.store.commit(self.ctx.now, txn)
        return state

register_sink("u_2pc", factory=TwoPhaseCommitSink, kind="two_phase")
register_sink("u_eager", factory=EagerCommit, kind="two_phase")
'''

TESTS = '''
import onceflow
import connector
from hypothesis import example, settings

SEEN = []
EXPLICIT = onceflow.Scenario(sink="u_2pc")

@settings(max_examples=5, deadline=None)
@example(EXPLICIT)
@onceflow.scenario_test(sink="u_2pc", max_faults=1)
def test_clean_with_a_fixture(result, tmp_path):
    (tmp_path / "seen").write_text(result.digest)
    SEEN.append(result.scenario)

def test_the_example_ran():
    assert EXPLICIT in SEEN

@settings(max_examples=40, deadline=None, derandomize=True)
@onceflow.scenario_test(mode="aligned", sink="u_2pc", mutants=("commit-only-exact-id",),
                        max_faults=2)
def test_buggy(result, tmp_path):
    pass
'''


def _out(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def test_fixtures_example_and_reproduce_lines_carry_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(connector=CONNECTOR, test_conn=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    out = _out(result)
    m = re.search(r"^onceflow --plugin connector replay (of1\.[A-Za-z0-9_-]+)\s*$", out, re.M)
    assert m, out[-3000:]
    token = m[1]
    assert f"pytest 'test_conn.py::test_buggy' --onceflow-replay {token}" in out
    # the replay runs the test on exactly that scenario, registered by the test module
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_conn.py::test_buggy",
                                          "--onceflow-replay", token)
    again.assert_outcomes(failed=1)
    assert token in _out(again)


@pytest.mark.parametrize("profile", ["onceflow-dev", "onceflow-ci", "onceflow-fuzz"])
def test_profiles_work_in_any_project(pytester: pytest.Pytester, profile: str) -> None:
    pytester.makepyfile(test_p='''
import onceflow
from hypothesis import settings

def test_profile():
    assert settings.default.deadline is None

@onceflow.scenario_test(max_faults=0, max_records=10)
def test_runs(result):
    assert result.status == "finished"
''')
    # a long fuzz profile is stopped short by the test's own budget: only check it loads
    args = ["-p", "no:cacheprovider", f"--hypothesis-profile={profile}"]
    if profile == "onceflow-fuzz":
        args += ["-k", "test_profile"]
    result = pytester.runpytest_subprocess(*args)
    out = _out(result)
    assert "INTERNALERROR" not in out, out[-2000:]
    assert result.ret == 0, out[-2000:]


def test_pyproject_plugins_load_in_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(connector=CONNECTOR, test_p='''
from onceflow.registry import SINKS

def test_registered_by_pyproject():
    assert "u_eager" in SINKS
''')
    pytester.makepyprojecttoml('[tool.onceflow]\nplugins = ["connector"]\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_broken_pyproject_plugin_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(broken="raise RuntimeError('no config')\n",
                        test_p="def test_x():\n    pass\n")
    pytester.makepyprojecttoml('[tool.onceflow]\nplugins = ["broken"]\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out = _out(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out[-2000:]
    assert "cannot import plugin module 'broken'" in out and "RuntimeError: no config" in out
    assert "INTERNALERROR" not in out
