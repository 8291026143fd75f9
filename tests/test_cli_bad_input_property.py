"""Keep the class out: the command line fed generated bad input (tokens, scenario JSON
with mutated fields, special files, flags) answers with exit 2 and one line under 300
characters on stderr, never a traceback, within a time limit.  Inputs that turn out
valid get a verdict instead (exit 0 or 1)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from onceflow import Scenario, ScenarioError
from onceflow.cli import main
from onceflow.cost import estimate
from onceflow.errors import OnceflowError
from onceflow.token import encode

SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
TIME_LIMIT = 30.0  # seconds per invocation (bad input is refused in well under one)


def invoke(argv: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue(), time.monotonic() - started


def assert_clean_answer(argv: list[str], *, must_fail: bool = False) -> None:
    code, out, err, seconds = invoke(argv)
    assert seconds < TIME_LIMIT, (argv, seconds)
    assert not any(line.lstrip().startswith("Traceback") for line in (out + err).splitlines())
    if must_fail:
        assert code == 2, (argv, code, out, err)
    assert code in (0, 1, 2), (argv, code)
    if code == 2:
        assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)
        assert len(err) < 300, (argv, err)
        assert err.startswith("onceflow"), err


# -- tokens ----------------------------------------------------------------------------------

def _token_of(text: str) -> str:
    return "of1." + base64.urlsafe_b64encode(zlib.compress(text.encode())).decode().rstrip("=")


GOOD = encode(Scenario())
tokens = st.one_of(
    st.text(min_size=1, max_size=200).map(lambda t: "of" + t),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789-_=.", min_size=1,
            max_size=300).map(lambda t: "of1." + t),
    st.integers(5, len(GOOD) - 1).map(lambda n: GOOD[:n]),
    st.tuples(st.integers(4, len(GOOD) - 1), st.characters(min_codepoint=33, max_codepoint=126))
    .map(lambda p: GOOD[:p[0]] + p[1] + GOOD[p[0] + 1:]),
    st.text(max_size=300).map(_token_of),
    st.sampled_from(["of", "of1", "of1.", "of2.abc", "of1.====", "of1.\n", "of\x00"]),
)


@SETTINGS
@given(token=tokens, command=st.sampled_from(["replay", "shrink", "run"]))
def test_bad_tokens_get_one_line(token: str, command: str) -> None:
    argv = ["run", "--scenario", token] if command == "run" else [command, token]
    try:
        Scenario.from_json(zlib.decompress(base64.urlsafe_b64decode(
            token[4:] + "=" * (-len(token[4:]) % 4))).decode())
        valid = True
    except Exception:
        valid = False
    assume(not valid)  # a valid token is judged, and may take a while: not this test
    assert_clean_answer(argv, must_fail=True)


# -- scenario JSON with mutated fields -----------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**400),
              st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=30), st.sampled_from(["\n", "Traceback (most recent call last):",
                                                      "x" * 5000, "of1.", ""])),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


BASE = Scenario().to_data()
BASE["faults"] = [{"kind": "crash", "at": 5.0, "target": "map[0]"}]
BASE["savepoints"] = [{"at": 3.0}]
PATHS = _paths(BASE)


@st.composite
def mutated_scenarios(draw: Any) -> str:
    data = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            if draw(st.booleans()) or not isinstance(target, dict):
                target[path[-1]] = draw(json_values)
            else:
                target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            pass
    return json.dumps(data)


@SETTINGS
@given(text=mutated_scenarios(), command=st.sampled_from(["replay", "run", "shrink"]))
def test_mutated_scenario_files_get_one_line(tmp_path_factory: Any, text: str,
                                             command: str) -> None:
    try:
        cost = estimate(Scenario.from_json(text))
        assume(cost.judge_units < 200_000)  # valid and cheap: judged (exit 0 or 1)
    except (ScenarioError, OnceflowError, ValueError):
        pass
    path = tmp_path_factory.mktemp("s") / "scenario.json"
    path.write_text(text)
    argv = ["run", "--scenario", str(path)] if command == "run" else [command, str(path)]
    assert_clean_answer(argv)


# -- special files -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def specials(tmp_path_factory: Any) -> list[str]:
    root = tmp_path_factory.mktemp("special")
    (root / "empty.json").write_text("")
    (root / "binary.json").write_bytes(bytes(range(256)) * 4)
    (root / "big.json").write_text(" " * 1_100_000)
    (root / "deep.json").write_text("[" * 100_000)
    (root / "nul\nline.json").write_text("{\"workload\": {\"records\": -1}}")
    (root / "dir").mkdir()
    return [str(root / n) for n in ("empty.json", "binary.json", "big.json", "deep.json",
                                    "nul\nline.json", "dir", "missing.json")] + [
        "/dev/null", "/dev/zero", "/proc/self/status", "", " ", "-", "/"]


def test_special_files_get_one_line(specials: list[str]) -> None:
    for path in specials:
        for argv in (["replay", path], ["shrink", path], ["run", "--scenario", path]):
            assert_clean_answer(argv, must_fail=True)


def test_a_fifo_without_writer_is_refused_in_time(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_clean_answer(["replay", str(fifo)], must_fail=True)


# -- flags ---------------------------------------------------------------------------------------

bad_values = st.one_of(st.sampled_from(["", "-1", "0", "abc", "1e400", "10" * 50, "\n",
                                        "Traceback (most recent call last):", "nan", "inf",
                                        "99999999999", "1.5", "--json"]),
                       st.text(max_size=20))


@SETTINGS
@given(data=st.data())
def test_bad_flags_get_one_line(data: Any) -> None:
    value = data.draw(bad_values)
    argv = data.draw(st.sampled_from([
        ["fuzz", "--budget", value], ["fuzz", "--workers", value], ["fuzz", "--seed", value],
        ["mutants", "--budget", value], ["mutants", "--only", value],
        ["run", "--seed", value], ["run", "--mode", value], ["run", "--sink", value],
        ["run", "--mutant", value], ["bench", "--records", value], ["bench", "--repeat", value],
        ["replay", GOOD, "--html", "/proc/" + value], ["--plugin", "no_such_" + value, "run"],
        [value], ["run", value, value], ["replay"], ["shrink", "--nope", value],
    ]))
    if argv[:2] == ["fuzz", "--seed"] or argv[:2] == ["run", "--seed"]:
        assume(not value.strip().isdigit())  # a valid seed runs
    if argv[:2] in (["fuzz", "--budget"], ["mutants", "--budget"]):
        assume(not any(c.isdigit() for c in value) or value.strip() in ("0", "-1", "0.0"))
    if argv[:2] == ["bench", "--records"] or argv[:2] == ["bench", "--repeat"]:
        assume(not (value.strip().isdigit() and int(value) >= 1))
    if argv[:2] == ["fuzz", "--workers"]:
        assume(not (value.strip().isdigit() and 1 <= int(value) <= 64))
    if argv[:2] == ["run", value]:
        assume(value not in ("--json", "--restore-all"))
    assume(value not in ("-h", "--help") and "--help" not in argv and "-h" not in argv)
    assert_clean_answer(argv, must_fail=True)
