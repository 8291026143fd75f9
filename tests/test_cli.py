"""The `onceflow` command end to end, in subprocesses: exit codes, JSON reports, tokens,
the failure corpus and Ctrl-C.

Exit codes: 0 clean, 1 a property was violated, 2 a usage or input error (one
line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest

import onceflow.fuzz
from onceflow import Scenario, decode_token, encode_token, run
from onceflow.fuzz import fuzz
from onceflow.shrinking import violation_of
from onceflow.strategies import scenario_from_seed

_SCRIPT = Path(sys.executable).parent / "onceflow"
ONCEFLOW = ([str(_SCRIPT)] if _SCRIPT.exists() else
            [sys.executable, "-c", "import sys; from onceflow.cli import main; sys.exit(main())"])


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONCEFLOW, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=dict(os.environ))


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("onceflow"), lines[0]
    return lines[0]


# -- usage and input errors: exit 2, one line, no traceback ---------------------------------------

def _token_of_json(text: str) -> str:
    return "of1." + base64.urlsafe_b64encode(zlib.compress(text.encode())).decode().rstrip("=")


def _bad_scenario_json() -> str:
    data = Scenario().to_data()
    data["topology"]["vertices"][0]["parallelism"] = 0
    return json.dumps(data)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    bad = tmp_path / "bad.json"
    bad.write_text(_bad_scenario_json())
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{not json")
    regular = tmp_path / "regular-file"
    regular.write_text("I am not a directory\n")
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)) * 4)
    return {"bad": bad, "notjson": notjson, "regular": regular, "binary": binary,
            "missing": tmp_path / "missing.json", "dir": tmp_path}


Args = Callable[[dict[str, Path]], list[str]]

USAGE_CASES: dict[str, Args] = {
    "fuzz budget 10x": lambda f: ["fuzz", "--budget", "10x"],
    "fuzz budget =-5m": lambda f: ["fuzz", "--budget=-5m"],
    "fuzz budget -5m": lambda f: ["fuzz", "--budget", "-5m"],
    "fuzz budget 0s": lambda f: ["fuzz", "--budget", "0s"],
    "fuzz budget empty": lambda f: ["fuzz", "--budget", ""],
    "mutants budget 10x": lambda f: ["mutants", "--budget", "10x"],
    "mutants budget 0s": lambda f: ["mutants", "--budget", "0s"],
    "run unknown mode": lambda f: ["run", "--mode", "eventually"],
    "run unknown sink": lambda f: ["run", "--sink", "kafka"],
    "run unknown mutant": lambda f: ["run", "--mutant", "no-such-bug"],
    "fuzz unknown mode": lambda f: ["fuzz", "--mode", "eventually", "--budget", "1s"],
    "fuzz unknown sink": lambda f: ["fuzz", "--sink", "kafka", "--budget", "1s"],
    "run unknown source": lambda f: ["run", "--source", "kafka"],
    "fuzz unknown source": lambda f: ["fuzz", "--source", "kafka", "--budget", "1s"],
    "fuzz unknown mutant": lambda f: ["fuzz", "--mutant", "no-such-bug", "--budget", "1s"],
    "mutants unknown --only": lambda f: ["mutants", "--only", "no-such-bug", "--budget", "1s"],
    "run negative seed": lambda f: ["run", "--seed", "-1"],
    "run seed not a number": lambda f: ["run", "--seed", "abc"],
    "fuzz zero workers": lambda f: ["fuzz", "--workers", "0", "--budget", "1s"],
    "no command": lambda f: [],
    "unknown command": lambda f: ["explode"],
    "replay malformed token": lambda f: ["replay", "of1.abc"],
    "replay wrong version": lambda f: ["replay", "of9.xyz"],
    "replay garbage": lambda f: ["replay", "this-is-not-a-token"],
    "replay token not base64": lambda f: ["replay", "of1.!!!!"],
    "replay truncated token": lambda f: ["replay", encode_token(Scenario())[:40]],
    "replay token of invalid scenario": lambda f: ["replay", _token_of_json(_bad_scenario_json())],
    "replay token of non-json": lambda f: ["replay", _token_of_json("hello")],
    "shrink malformed token": lambda f: ["shrink", "of1.abc"],
    "shrink wrong version": lambda f: ["shrink", "of9.xyz"],
    "run --scenario malformed token": lambda f: ["run", "--scenario", "of1.abc"],
    "run --scenario garbage": lambda f: ["run", "--scenario", "garbage"],
    "fuzz db is a regular file": lambda f: ["fuzz", "--budget", "1s", "--db", str(f["regular"])],
    "fuzz db below a regular file": lambda f: ["fuzz", "--budget", "1s",
                                               "--db", str(f["regular"] / "db")],
    "replay invalid scenario file": lambda f: ["replay", str(f["bad"])],
    "run --scenario invalid file": lambda f: ["run", "--scenario", str(f["bad"])],
    "shrink invalid scenario file": lambda f: ["shrink", str(f["bad"])],
    "replay file not json": lambda f: ["replay", str(f["notjson"])],
    "replay binary file": lambda f: ["replay", str(f["binary"])],
    "replay missing file": lambda f: ["replay", str(f["missing"])],
    "run --scenario missing file": lambda f: ["run", "--scenario", str(f["missing"])],
    "replay a directory": lambda f: ["replay", str(f["dir"])],
    "bench too few records": lambda f: ["bench", "--records", "10"],
}


@pytest.mark.parametrize("name", list(USAGE_CASES))
def test_bad_input_is_exit_2_with_one_line(name: str, files: dict[str, Path]) -> None:
    one_line_error(cli(*USAGE_CASES[name](files)))


def test_usage_messages_say_what_is_wrong(files: dict[str, Path]) -> None:
    assert "10x" in one_line_error(cli("fuzz", "--budget", "10x"))
    assert "more than zero" in one_line_error(cli("fuzz", "--budget", "0s"))
    assert "of9" in one_line_error(cli("replay", "of9.xyz"))
    assert "parallelism" in one_line_error(cli("replay", str(files["bad"])))
    assert "is a file" in one_line_error(cli("fuzz", "--budget", "1s", "--db",
                                             str(files["regular"])))
    assert "no-such-bug" in one_line_error(cli("mutants", "--only", "no-such-bug"))
    # the regular file given as a corpus was left alone
    assert files["regular"].read_text() == "I am not a directory\n"


# -- run ----------------------------------------------------------------------------------------

RUN_KEYS = {"digest", "status", "mode", "sink", "records_in", "records_out",
            "checkpoints_completed", "savepoints_completed", "faults_fired", "token"}


@pytest.fixture(scope="module")
def busy_seed() -> int:
    """A drawn scenario (correct model, an exactly-once sink: restores give the same
    output) in which faults fire and snapshots complete."""
    for seed in range(200):
        result = run(scenario_from_seed(seed))
        if (result.faults_fired and result.snapshots and result.status == "finished"
                and result.scenario.sink != "append"
                and violation_of(result.scenario) is None):
            return seed
    pytest.fail("no drawn scenario among 200 fires a fault and completes a snapshot")


def test_run_json(busy_seed: int) -> None:
    proc = cli("run", "--seed", str(busy_seed), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json_out(proc)
    assert RUN_KEYS <= set(data), RUN_KEYS - set(data)
    assert "restores" not in data
    scenario = scenario_from_seed(busy_seed)
    result = run(scenario)
    assert data["digest"] == result.digest
    assert data["status"] == result.status == "finished"
    assert data["mode"] == scenario.checkpoints.mode and data["sink"] == scenario.sink
    assert data["records_in"] == scenario.workload.records
    assert isinstance(data["records_out"], int) and data["records_out"] >= 0
    assert data["checkpoints_completed"] + data["savepoints_completed"] == len(result.snapshots)
    assert data["faults_fired"], "the scenario was chosen because faults fire"
    for fault in data["faults_fired"]:
        assert {"kind", "phase", "time"} <= set(fault)
        assert isinstance(fault["kind"], str)
        assert fault["phase"] is None or isinstance(fault["phase"], str)
        assert isinstance(fault["time"], (int, float))
    assert decode_token(data["token"]) == scenario


def test_run_restore_all_json(busy_seed: int) -> None:
    proc = cli("run", "--seed", str(busy_seed), "--restore-all", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json_out(proc)
    assert RUN_KEYS <= set(data)
    assert data["restores"], "every completed snapshot is restored"
    for restore in data["restores"]:
        if restore.get("restore") == "rollback":
            continue  # rollback restores are judged by their own fields
        assert {"snapshot", "kind", "parallelism", "same_output"} <= set(restore)
        assert restore["kind"] in ("checkpoint", "savepoint")
        assert isinstance(restore["snapshot"], int)
        assert restore["parallelism"] is None or restore["parallelism"] >= 1
        assert restore["same_output"] is True, restore  # the correct model
    ids = [r["snapshot"] for r in data["restores"] if r.get("restore") != "rollback"]
    assert len(ids) == len(set(ids))


def test_run_text_output(busy_seed: int) -> None:
    proc = cli("run", "--seed", str(busy_seed))
    assert proc.returncode == 0, proc.stderr
    digest = run(scenario_from_seed(busy_seed)).digest
    assert f"digest: {digest}" in proc.stdout
    assert "token: of1." in proc.stdout
    assert "faults fired:" in proc.stdout


# -- tokens and scenario files round-trip ----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 7, 31])
def test_token_and_file_round_trip(seed: int, tmp_path: Path) -> None:
    ran = json_out(cli("run", "--seed", str(seed), "--json"))
    token = ran["token"]
    replayed = cli("replay", token, "--json")
    data = json_out(replayed)
    assert data["digest"] == ran["digest"]
    assert replayed.returncode == (1 if data["status"] == "violation" else 0)

    scenario = decode_token(token)
    path = tmp_path / "scenario.json"
    path.write_text(scenario.to_json(indent=2))
    from_file = json_out(cli("replay", str(path), "--json"))
    assert from_file["digest"] == ran["digest"]
    rerun = json_out(cli("run", "--scenario", str(path), "--json"))
    assert rerun["digest"] == ran["digest"] and rerun["token"] == token
    # a file holding the token works too
    token_file = tmp_path / "token.txt"
    token_file.write_text(token + "\n")
    assert json_out(cli("replay", str(token_file), "--json"))["digest"] == ran["digest"]


# -- a violation: replay and shrink ---------------------------------------------------------------

@pytest.fixture(scope="module")
def violating() -> Any:
    outcome = fuzz(budget=30, mutants=("unaligned-committables",), seed=1)
    assert outcome.status == "violation" and outcome.finding is not None
    return outcome.finding


def test_replay_of_a_violation(violating: Any) -> None:
    proc = cli("replay", violating.token)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{violating.property} violated: {violating.anomaly}" in out
    assert "replay: onceflow replay of1." in out
    assert f"replay: onceflow replay {violating.token}" in out
    assert f"digest: {violating.digest}" in out
    assert "timeline:" in out


def test_replay_json_of_a_violation(violating: Any) -> None:
    proc = cli("replay", violating.token, "--json")
    assert proc.returncode == 1
    data = json_out(proc)
    assert data["status"] == "violation"
    assert data["digest"] == violating.digest == run(decode_token(violating.token)).digest
    assert data["violation"]["property"] == violating.property
    assert data["violation"]["anomaly"] == violating.anomaly
    assert data["violation"]["token"] == violating.token


@pytest.fixture(scope="module")
def unshrunk_token() -> str:
    for seed in range(300):
        scenario = scenario_from_seed(seed, mutants=("no-final-checkpoint",))
        if scenario.workload.records >= 20 and violation_of(scenario) is not None:
            return encode_token(scenario)
    pytest.fail("no drawn no-final-checkpoint scenario with >= 20 records violates")


def test_shrink_json(unshrunk_token: str) -> None:
    proc = cli("shrink", unshrunk_token, "--json")
    assert proc.returncode == 1, proc.stderr
    data = json_out(proc)
    assert data["status"] == "violation"
    before, after = data["size_before"], data["size_after"]
    assert set(before) == set(after)
    assert all(after[k] <= before[k] for k in before), (before, after)
    assert after != before
    assert before == decode_token(unshrunk_token).size
    assert decode_token(data["token"]).size == after
    # the shrunk token still fails the same property
    replayed = json_out(cli("replay", data["token"], "--json"))
    assert replayed["status"] == "violation"
    assert replayed["violation"]["property"] == data["property"]


def test_shrink_of_a_clean_scenario() -> None:
    token = encode_token(Scenario())
    proc = cli("shrink", token, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_out(proc)["status"] == "clean"


# -- fuzz ---------------------------------------------------------------------------------------

FUZZ_KEYS = {"status", "scenarios", "restores_checked", "phases_hit", "elapsed_s"}
VIOLATION_KEYS = {"property", "anomaly", "token", "digest", "faults", "records"}


def test_fuzz_correct_model_is_clean(tmp_path: Path) -> None:
    db = tmp_path / "db"
    started = time.monotonic()
    # a fixed seed: the run is the same every time (random fuzzing is `onceflow fuzz`'s job)
    proc = cli("fuzz", "--budget", "3s", "--json", "--db", str(db), "--seed", "0")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    data = json_out(proc)
    assert FUZZ_KEYS <= set(data)
    assert data["status"] == "clean"
    assert "violation" not in data
    assert data["scenarios"] > 10
    assert data["restores_checked"] > 0
    assert isinstance(data["phases_hit"], dict) and data["phases_hit"]
    assert 2.5 <= data["elapsed_s"] < 10
    assert time.monotonic() - started < 20
    assert db.is_dir()


def _check_violation_report(data: dict[str, Any]) -> dict[str, Any]:
    assert FUZZ_KEYS <= set(data)
    assert data["status"] == "violation"
    v = data["violation"]
    assert VIOLATION_KEYS <= set(v), VIOLATION_KEYS - set(v)
    assert v["property"] == "no_loss" and v["anomaly"] == "lost"
    assert v["token"].startswith("of1.")
    assert v["digest"] == run(decode_token(v["token"])).digest
    assert isinstance(v["faults"], list)
    assert v["records"] and all({"id", "expected", "committed"} <= set(r) for r in v["records"])
    return v


def test_fuzz_finds_a_mutant_and_the_corpus_replays_it(tmp_path: Path) -> None:
    db = tmp_path / "db"
    args = ("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--json",
            "--db", str(db))
    first = cli(*args)
    assert first.returncode == 1, first.stderr
    v1 = _check_violation_report(json_out(first))
    assert any(db.iterdir()), "the failure is saved in the corpus"

    second = cli(*args)
    assert second.returncode == 1, second.stderr
    data = json_out(second)
    v2 = _check_violation_report(data)
    # replayed from the corpus: found among the very first scenarios
    assert v2["scenarios_to_first"] is not None and v2["scenarios_to_first"] <= 3, v2
    assert v2["seconds_to_first"] < 2.0
    assert v2["property"] == v1["property"]
    assert v2["size_after"] == v1["size_after"]


def test_fuzz_text_report_of_a_violation(tmp_path: Path) -> None:
    proc = cli("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s",
               "--db", str(tmp_path / "db"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "no_loss violated: lost" in proc.stdout
    assert "replay: onceflow replay of1." in proc.stdout
    assert "digest: " in proc.stdout
    assert "shrunk counterexample" in proc.stdout


def test_fuzz_with_a_seed_keeps_the_corpus(tmp_path: Path) -> None:
    """`--seed` makes the batches reproducible; the failure still goes into `--db`."""
    db = tmp_path / "db"
    args = ("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--json",
            "--db", str(db), "--seed", "5")
    first = cli(*args)
    assert first.returncode == 1, first.stderr
    saved = [p for p in db.rglob("*") if p.is_file()]
    assert saved, "a violation found with --seed is not saved in the --db corpus"


def test_fuzz_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "db"
    proc = subprocess.Popen([*ONCEFLOW, "fuzz", "--budget", "60s", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        time.sleep(3)
        assert proc.poll() is None, "the fuzzer ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail("the fuzzer did not stop within 10 s of one SIGINT (Ctrl-C); "
                        f"stderr: {err[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130, (proc.returncode, out[-2000:], err[-2000:])
    assert "scenarios" in out
    assert "interrupted" in out
    assert "Traceback" not in out + err, err
    assert db.is_dir()
    # the corpus is intact: the next run uses it
    again = cli("fuzz", "--budget", "2s", "--json", "--db", str(db))
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-2000:])
    assert json_out(again)["status"] == "clean"


def test_fuzz_survives_garbage_in_the_corpus(tmp_path: Path) -> None:
    db = tmp_path / "db"
    # no --seed: a seeded run does not use the corpus
    mutant = ("fuzz", "--mutant", "no-final-checkpoint", "--budget", "30s", "--json",
              "--db", str(db))
    assert cli(*mutant).returncode == 1  # creates real key directories
    keys = [p for p in db.iterdir() if p.is_dir()]
    assert keys
    corpus_key = getattr(onceflow.fuzz, "_corpus_key", None)
    if corpus_key is not None:  # the correct model's own key directory
        keys.append(db / hashlib.sha384(corpus_key(None, None, ())).hexdigest()[:16])
    keys.append(db / "0123456789abcdef")
    junk = [os.urandom(n) for n in (0, 1, 7, 64, 4096)]
    for key in keys:
        key.mkdir(exist_ok=True)
        for i, blob in enumerate(junk):
            (key / f"{hashlib.sha384(blob + bytes([i])).hexdigest()[:16]}").write_bytes(blob)
    (db / "stray-file").write_bytes(os.urandom(100))

    clean = cli("fuzz", "--budget", "2s", "--json", "--db", str(db))
    assert clean.returncode == 0, (clean.stdout[-2000:], clean.stderr[-2000:])
    assert json_out(clean)["status"] == "clean"
    found = cli(*mutant)
    assert found.returncode == 1, found.stderr
    v = _check_violation_report(json_out(found))
    assert v["scenarios_to_first"] is not None and v["scenarios_to_first"] <= 3, v


# -- mutants ----------------------------------------------------------------------------------

def test_mutants_json() -> None:
    proc = cli("mutants", "--only", "no-final-checkpoint", "--budget", "20s", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json_out(proc)
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert {"name", "found", "seconds", "scenarios", "property", "anomaly", "shrunk",
            "token"} <= set(row)
    assert row["name"] == "no-final-checkpoint"
    assert row["found"] is True
    assert row["seconds"] is not None and 0 <= row["seconds"] < 20
    assert row["scenarios"] >= 1
    assert row["property"] == "no_loss" and row["anomaly"] == "lost"
    assert {"records", "faults", "parallelism"} <= set(row["shrunk"])
    assert row["shrunk"]["parallelism"] == 1
    assert row["token"].startswith("of1.")
    assert "no-final-checkpoint" in decode_token(row["token"]).mutants
