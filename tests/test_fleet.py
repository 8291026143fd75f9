"""Fuzzing fleets against a real redis-server: shared corpus, fleet progress, bad URLs, faults.

Each test starts its own redis-server on a free loopback port (tests/redis_server.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from onceflow.errors import OnceflowError
from onceflow.fuzz import fuzz
from onceflow.search.corpus import (SharedCorpus, default_corpus_name, open_corpus,
                                    validate_corpus_name)
from onceflow.search.fleet import FleetPublisher, fleet_status
from tests.redis_server import RedisServer, redis_server
from tests.test_cli import ONCEFLOW, cli

pytest_plugins = ["pytester"]

MUTANT = "no-final-checkpoint"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as srv:
        yield srv


def report(proc: subprocess.CompletedProcess[str] | tuple[str, str, int]) -> dict[str, Any]:
    out, err = (proc.stdout, proc.stderr) if not isinstance(proc, tuple) else proc[:2]
    assert "Traceback" not in err, err[-2000:]
    return json.loads(out)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- the shared corpus ---------------------------------------------------------------------

def test_a_failure_found_by_one_worker_is_replayed_first_by_another(server: RedisServer,
                                                                     tmp_path: Path) -> None:
    """Two `onceflow fuzz` processes, on two "machines" (own working directories), one Redis."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    common = ["fuzz", "--db", server.url, "--corpus-name", "shop", "--mutant", MUTANT, "--json"]
    first = cli(*common, "--budget", "90s", "--seed", "1", "--worker-name", "a", cwd=a_dir)
    assert first.returncode == 1, first.stderr[-2000:]
    found = report(first)["violation"]
    # the second worker draws from another seed, yet its very first scenario fails:
    # the shrunk counterexample, fetched from Redis
    second = cli(*common, "--budget", "90s", "--seed", "2", "--worker-name", "b", cwd=b_dir)
    assert second.returncode == 1, second.stderr[-2000:]
    replayed = report(second)
    assert replayed["violation"]["scenarios_to_first"] == 1
    assert replayed["violation"]["digest"] == found["digest"]
    assert replayed["corpus"]["name"] == "shop" and not replayed["corpus"]["redis_away"]
    # no local directory corpus was written on either machine
    assert not (a_dir / ".onceflow" / "db").exists() and not (b_dir / ".onceflow").exists()
    # every key lives under the project's namespace
    keys = [k.decode() for k in server.client().keys("*")]
    assert keys and all(k.startswith("onceflow:shop:") for k in keys), keys
    # the fleet lists the violation once, with its replay command
    status = report(cli("status", "--db", server.url, "--corpus-name", "shop", "--json"))
    assert [v["digest"] for v in status["violations"]] == [found["digest"]]
    assert status["violations"][0]["replay"] == f"onceflow replay {found['token']}"
    assert {w["worker"] for w in status["worker_list"]} == {"a", "b"}
    # another project on the same Redis sees neither corpus nor fleet
    other = report(cli("status", "--db", server.url, "--corpus-name", "other", "--json"))
    assert other["workers"] == 0 and other["violations"] == []


def test_status_shows_two_running_workers_combined(server: RedisServer, tmp_path: Path) -> None:
    procs = [subprocess.Popen([*ONCEFLOW, "fuzz", "--db", server.url, "--corpus-name", "live",
                               "--budget", "40s", "--worker-name", name, "--json"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for name in ("w1", "w2")]
    try:
        seen = None
        deadline = time.monotonic() + 35
        while time.monotonic() < deadline:
            status = report(cli("status", "--db", server.url, "--corpus-name", "live", "--json"))
            running = [w for w in status["worker_list"] if w["status"] == "running"]
            if len(running) == 2 and all(w["scenarios"] > 0 for w in running):
                seen = status
                break
            time.sleep(0.5)
        assert seen is not None, "two running workers never showed up in onceflow status"
        workers = seen["worker_list"]
        for key, total in (("scenarios", "scenarios"), ("restores", "restores_checked"),
                           ("faults", "faults_fired"), ("events", "events")):
            assert seen[total] == sum(w[key] for w in workers)
        assert seen["running"] == 2 and seen["rate"] > 0
        assert set(seen["crash_phases_hit"]) | set(seen["crash_phases_not_hit"]) == set(
            __import__("onceflow.faults.plan", fromlist=["CRASH_PHASES"]).CRASH_PHASES)
        text = cli("status", "--db", server.url, "--corpus-name", "live")
        assert text.returncode == 0 and "2 workers (2 running)" in text.stdout
        assert "w1: running" in text.stdout and "w2: running" in text.stdout
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        results = [p.communicate(timeout=60) for p in procs]
    for (out, err), p in zip(results, procs):
        assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    final = report(cli("status", "--db", server.url, "--corpus-name", "live", "--json"))
    assert {w["status"] for w in final["worker_list"]} == {"interrupted"}
    assert final["scenarios"] == sum(json.loads(out)["scenarios"] for out, _ in results)


def test_a_violation_stops_no_other_worker_unless_asked(server: RedisServer, tmp_path: Path) -> None:
    """--stop-on-first: a worker stops when another publishes a violation; without it, it goes on."""
    def start(budget: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*ONCEFLOW, "fuzz", "--db", server.url, "--corpus-name", "stops",
                                 "--budget", budget, "--json", *extra], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    finding = fuzz(budget=60, mutants=(MUTANT,), seed=1, shrink=False).finding
    assert finding is not None
    eager = start("90s", "--stop-on-first", "--worker-name", "eager")
    steady = start("12s", "--worker-name", "steady")
    try:
        client = server.client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.zcard("onceflow:stops:fleet:workers") < 2:
            time.sleep(0.2)
        time.sleep(1)  # both have published once and know the fleet's violation count
        other = FleetPublisher(client, name="stops", worker="finder")
        other.found(finding)
        assert other.publish()
        published = time.monotonic()
        out, err = eager.communicate(timeout=90)
        assert eager.returncode == 1, err[-2000:]
        assert json.loads(out)["status"] == "stopped"
        assert time.monotonic() - published < 30  # long before its 90 s budget
        assert "stopped (--stop-on-first): worker finder" in err and finding.token in err
        out, err = steady.communicate(timeout=60)
        assert steady.returncode == 0, err[-2000:]  # the correct model: clean to the end
        assert json.loads(out)["status"] == "clean" and json.loads(out)["elapsed_s"] >= 11
    finally:
        for p in (eager, steady):
            if p.poll() is None:
                p.kill()
                p.communicate()


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("url,message", [
    ("redis://127.0.0.1:notaport/0", "bad Redis URL"),
    ("redis://127.0.0.1:6379/zero", "is not a number"),
    ("redis:///0", "no host"),
    ("redis://127.0.0.1 :6379/0", "contains spaces"),
    ("http://127.0.0.1:6379/0", "unknown scheme"),
    ("redis://127.0.0.1:6379/0?bogus=1", "unexpected keyword argument 'bogus'"),
    ("redis://127.0.0.1:6379/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
    ("rediss://127.0.0.1:99999/0", "Port out of range"),
    ("redis://" + "a" * 300 + ":6379/0", "bad Redis URL"),
    ("redis://h\x01:6379/0", "control characters"),
])
def test_a_malformed_redis_url_is_one_line_exit_2(url: str, message: str) -> None:
    for args in (["fuzz", "--budget", "5s"], ["mutants", "--budget", "1s", "--only", MUTANT],
                 ["status"]):
        line = one_line_error(cli(*args, "--db", url, timeout=60))
        assert message in line, line


def test_an_unreachable_redis_is_one_line_exit_2() -> None:
    from tests.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    line = one_line_error(cli("fuzz", "--db", url, "--budget", "5s", timeout=60))
    assert "cannot reach Redis at" in line and "start it or fix --db" in line
    line = one_line_error(cli("status", "--db", url, timeout=60))
    assert "cannot reach Redis" in line
    line = one_line_error(cli("fuzz", "--db", url.replace("redis", "REDIS"), "--budget", "5s"))
    assert "cannot reach Redis" in line  # the scheme is case-insensitive, as in any URL


def test_a_password_required_but_not_given_is_one_line_exit_2(tmp_path: Path) -> None:
    with redis_server(tmp_path / "r", password="s3cret") as srv:
        bare = f"redis://127.0.0.1:{srv.port}/0"
        line = one_line_error(cli("fuzz", "--db", bare, "--budget", "5s", timeout=60))
        assert "requires a password" in line and "redis://:PASSWORD@" in line
        wrong = f"redis://:nope@127.0.0.1:{srv.port}/0"
        line = one_line_error(cli("fuzz", "--db", wrong, "--budget", "5s", timeout=60))
        assert "refused the password" in line and "nope" not in line  # never echoed
        ok = cli("fuzz", "--db", srv.url, "--budget", "2s", "--corpus-name", "auth", "--json",
                 cwd=tmp_path, timeout=60)
        assert ok.returncode == 0 and report(ok)["corpus"]["url"].startswith("redis://:***@")


def test_a_bad_corpus_name_is_one_line_exit_2(server: RedisServer) -> None:
    line = one_line_error(cli("fuzz", "--db", server.url, "--corpus-name", "a b:c", "--budget", "2s"))
    assert "bad corpus name" in line
    line = one_line_error(cli("fuzz", "--db", server.url, "--worker-name", "a\nb", "--budget", "2s"))
    assert "bad worker name" in line


def test_the_corpus_name_defaults_to_the_pyproject_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My_Kafka.Connector"\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    assert default_corpus_name(tmp_path / "src" / "deep") == "my-kafka-connector"
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert default_corpus_name(tmp_path) in ("default", default_corpus_name(tmp_path.parent))
    with pytest.raises(OnceflowError, match="bad corpus name"):
        validate_corpus_name("x" * 101)


# -- faults ----------------------------------------------------------------------------------

def test_redis_going_away_mid_run_keeps_findings_locally(tmp_path: Path) -> None:
    """What a worker finds while Redis is away is kept in the fallback directory, then pushed."""
    warnings: list[str] = []
    fallback = tmp_path / "fallback"
    with redis_server(tmp_path / "r") as srv:
        port = srv.port
        corpus = open_corpus(srv.url, name="away", fallback=fallback, on_warning=warnings.append)
        assert isinstance(corpus, SharedCorpus)
    # Redis is gone now: fuzzing goes on and finds the mutant's bug
    outcome = fuzz(budget=60, mutants=(MUTANT,), seed=1, db=corpus)
    assert outcome.status == "violation"
    assert corpus.away and corpus.kept_locally > 0
    assert any("lost Redis" in w and str(fallback) in w for w in warnings), warnings
    assert any(fallback.rglob("*")), "nothing was kept in the fallback directory"
    # Redis is back (empty): the next worker with the same fallback replays it first and pushes it
    restarted = RedisServer(tmp_path / "r2", port=port).start()
    try:
        again = open_corpus(restarted.url, name="away", fallback=fallback, on_warning=warnings.append)
        assert isinstance(again, SharedCorpus)
        replay = fuzz(budget=60, mutants=(MUTANT,), seed=2, db=again, shrink=False)
        assert replay.status == "violation" and replay.first_scenarios == 1
        assert again.pushed > 0
        assert restarted.client().keys("onceflow:away:corpus:*")
    finally:
        restarted.stop()


def test_a_worker_keeps_fuzzing_when_redis_dies_mid_run(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path / "r").start()
    proc = subprocess.Popen([*ONCEFLOW, "fuzz", "--db", srv.url, "--corpus-name", "dies",
                             "--budget", "8s", "--json", "--fallback-db", str(tmp_path / "fb")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = srv.client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.zcard("onceflow:dies:fleet:workers") < 1:
            time.sleep(0.1)
        time.sleep(1.0)  # fuzzing with Redis up, then Redis dies
        srv.stop()
        out, err = proc.communicate(timeout=240)  # a violation would be shrunk first
    finally:
        srv.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err
    data = json.loads(out)
    # the correct model: fuzzed to the end of its budget (any violation is a false alarm of
    # the model, reported with its replay line here; `.ci/run`'s fuzz step judges those)
    assert proc.returncode == 0 and data["status"] == "clean", (data.get("violation") or {},
                                                                err[-2000:])
    assert data["elapsed_s"] >= 7.5
    assert "fleet progress not published" in err
    assert data["corpus"]["redis_away"] is True or "lost Redis" in err


def test_a_corrupt_shared_corpus_entry_is_skipped_with_a_warning(server: RedisServer,
                                                                 tmp_path: Path) -> None:
    key = f"onceflow:junk:corpus:onceflow-fuzz-v1|None|None|{MUTANT}"
    client = server.client()
    client.sadd(key, b"\xff\x00 not a choice sequence", b"")
    client.set(key + ".secondary", b"a string where a set belongs")  # WRONGTYPE for SMEMBERS
    proc = cli("fuzz", "--db", server.url, "--corpus-name", "junk", "--mutant", MUTANT,
               "--budget", "60s", "--seed", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    data = report(proc)
    assert data["status"] == "violation" and data["corpus"]["skipped_corrupt"] >= 1
    assert "skipped a corrupt entry of the shared corpus" in proc.stderr
    # the corrupt fleet entries do not break `onceflow status` either
    client.hset("onceflow:junk:fleet:violations", "bad", "{not json")
    client.hset("onceflow:junk:fleet:worker:ghost", mapping={"phases": "[[", "status": "running"})
    client.zadd("onceflow:junk:fleet:workers", {"ghost": time.time()})
    status = cli("status", "--db", server.url, "--corpus-name", "junk", "--json")
    assert status.returncode == 0 and "skipped" in status.stderr
    assert len(report(status)["violations"]) == 1


def test_mutants_share_a_redis_corpus(server: RedisServer, tmp_path: Path) -> None:
    args = ["mutants", "--only", MUTANT, "--budget", "60s", "--seed", "1", "--no-baseline",
            "--db", server.url, "--corpus-name", "zoo", "--json"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    second = json.loads(cli(*args, cwd=tmp_path).stdout)
    assert second[0]["found"] and second[0]["scenarios"] == 1  # replayed from the corpus
    assert server.client().keys("onceflow:zoo:corpus:*")


# -- the pytest plugin -------------------------------------------------------------------------

PLANTED = """
from onceflow import scenario_test

@scenario_test(mutants=("no-final-checkpoint",))
def test_pipeline(result):
    pass
"""


def test_the_pytest_plugin_shares_its_database_through_redis(server: RedisServer,
                                                             pytester: pytest.Pytester) -> None:
    """--onceflow-db: a failure found by one pytest run is in Redis for every other run."""
    pytester.makepyfile(test_planted=PLANTED)
    args = ("-p", "no:cacheprovider", "--onceflow-db", server.url, "--onceflow-corpus-name", "plug")
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(failed=1)
    keys = server.client().keys("onceflow:plug:corpus:*")
    assert keys, "the failing example was not saved in Redis"
    assert all(server.client().type(k) == b"set" for k in keys)
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(failed=1)
    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--onceflow-db",
                                        "redis://127.0.0.1:notaport/0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--onceflow-db: bad Redis URL" in bad.stderr.str()


def test_rediss_reaches_a_tls_redis_and_a_plain_port_is_refused(tmp_path: Path) -> None:
    with redis_server(tmp_path / "tls", tls=True) as srv:
        ok = cli("fuzz", "--db", srv.url, "--corpus-name", "tls", "--budget", "3s", "--json",
                 cwd=tmp_path, timeout=60)
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert report(ok)["corpus"]["url"].startswith("rediss://127.0.0.1")
        assert srv.client().keys("onceflow:tls:fleet:*")
        unverified = f"rediss://127.0.0.1:{srv.port}/0"  # self-signed, no CA given
        line = one_line_error(cli("fuzz", "--db", unverified, "--budget", "3s", timeout=60))
        assert "cannot reach Redis" in line and "CERTIFICATE_VERIFY_FAILED" in line
        plain = f"redis://127.0.0.1:{srv.port}/0"  # plain text to a TLS port
        line = one_line_error(cli("fuzz", "--db", plain, "--budget", "3s", timeout=60))
        assert "Redis at" in line
    with redis_server(tmp_path / "plain") as srv:
        tls_to_plain = f"rediss://127.0.0.1:{srv.port}/0"
        line = one_line_error(cli("fuzz", "--db", tls_to_plain, "--budget", "3s", timeout=60))
        assert "Redis at" in line and "TLS" in line


def test_local_workers_each_publish_to_the_fleet(server: RedisServer, tmp_path: Path) -> None:
    proc = cli("fuzz", "--db", server.url, "--corpus-name", "local", "--workers", "2",
               "--budget", "4s", "--worker-name", "gh", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = report(proc)
    assert data["corpus"]["name"] == "local" and data["corpus"]["kept_locally"] == 0
    status = report(cli("status", "--db", server.url, "--corpus-name", "local", "--json"))
    assert {w["worker"] for w in status["worker_list"]} == {"gh-w0", "gh-w1"}
    assert status["scenarios"] == data["scenarios"]


def test_status_watch_prints_until_interrupted(server: RedisServer) -> None:
    proc = subprocess.Popen([*ONCEFLOW, "status", "--db", server.url, "--corpus-name", "w",
                             "--watch", "1", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) >= 2 and all(line["workers"] == 0 for line in lines)
    for bad in ("0", "x", "99999"):
        assert one_line_error(cli("status", "--db", server.url, "--watch", bad))


def test_a_killed_worker_is_listed_silent_and_still_counts(server: RedisServer) -> None:
    from onceflow.fuzz import FuzzStats

    client = server.client()
    ghost = FleetPublisher(client, name="kill", worker="ghost")
    stats = FuzzStats()
    stats.scenarios, stats.restores = 42, 7
    ghost.update(stats)
    assert ghost.publish()  # then the process dies without finish()
    later = fleet_status(client, "kill", now=time.time() + 60)
    assert later["worker_list"][0]["status"] == "silent" and later["running"] == 0
    assert later["scenarios"] == 42 and later["restores_checked"] == 7 and later["rate"] == 0
    assert 0 < client.ttl("onceflow:kill:fleet:worker:ghost") <= 24 * 3600
