"""Every user-code failure is an error of that component (exit 2, one line on stderr,
its traceback folded into the report), never a harness traceback, never a violation."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

import hostile_components
from onceflow import Scenario, Topology, Vertex, Workload
from onceflow.cli import main
from onceflow.errors import OperatorError
from onceflow.model.simulation import run
from onceflow.properties.checks import check
from onceflow.token import encode


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    hostile_components.register()
    yield
    hostile_components.unregister()


def scenario(op: str, sink: str = "two_phase", records: int = 100) -> Scenario:
    return Scenario(topology=Topology((Vertex("source", "source", 2), Vertex("op", op, 2, "hash"),
                                       Vertex("sink", "sink", 2, "forward"))),
                    workload=Workload(records=records), sink=sink)


HOOKS = {
    "bad-init": "RuntimeError: init boom", "bad-open": "RuntimeError: open boom",
    "bad-process": "RuntimeError: process boom", "bad-none": "emitted None (NoneType)",
    "bad-str": "emitted 'hello' (str)", "bad-end-input": "RuntimeError: end boom",
    "bad-snapshot": "RuntimeError: snap boom",
    "bad-list": "state_kind 'keyed' needs a dict",
    "bad-wrongkind": "returned 42 of type int", "bad-notify": "RuntimeError: notify boom",
    "bad-fold": "the fold (oracle) of operator kind 'bad-fold' raised ZeroDivisionError",
    "fold-none": "fold emitted None",
}


@pytest.mark.parametrize("op", sorted(HOOKS))
def test_check_names_the_component(op: str) -> None:
    with pytest.raises(OperatorError) as info:
        check(run(scenario(op)))
    assert HOOKS[op] in str(info.value)
    assert "\n" not in str(info.value)
    if op.startswith("bad-") and op not in ("bad-none", "bad-str", "bad-list", "bad-wrongkind"):
        # raised in user code: the user's frame is folded into the report
        assert any("hostile_components.py" in frame for frame in info.value.traceback)


@pytest.mark.parametrize("op", sorted(HOOKS))
def test_replay_is_one_line_exit_2(op: str, capsys: Any) -> None:
    assert main(["replay", encode(scenario(op))]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("onceflow: error: ") and len(err) < 300
    assert not any(line.lstrip().startswith("Traceback") for line in (out + err).splitlines())
    assert HOOKS[op] in err


def test_a_newline_in_a_user_message_stays_on_one_line(capsys: Any) -> None:
    assert main(["replay", encode(scenario("bad-process"))]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "\\nTraceback" in err


def test_replay_json_carries_the_folded_traceback(capsys: Any) -> None:
    import json

    assert main(["replay", "--json", encode(scenario("bad-process"))]) == 2
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert data["status"] == "error" and data["component"] == "operator 'op' (bad-process)"
    assert any("hostile_components.py" in f and "in process" in f for f in data["traceback"])


@pytest.mark.parametrize("command", [["run", "--scenario"], ["shrink"]])
def test_run_and_shrink_report_the_component_error(command: list[str], capsys: Any) -> None:
    assert main(command + [encode(scenario("bad-process"))]) == 2
    _, err = capsys.readouterr()
    assert "RuntimeError: process boom" in err and err.count("\n") == 1


def test_a_keyed_operator_with_list_state_is_judged_without_crashing() -> None:
    """Operator (list) state on a keyed stream is legal; the consistent cut, which
    compares keyed state per key, leaves it alone."""
    check(run(scenario("list-state")))
