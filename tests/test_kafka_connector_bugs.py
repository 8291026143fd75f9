"""Kafka-style exactly-once sinks with transactional ids and producer epochs, written as
users write them (tests/kafka_connectors.py): each bug is found by `onceflow fuzz
--plugin kafka_connectors` and shrunk, its fixed version passes, and the memory and
SQLite stores give the same verdicts."""

from __future__ import annotations

from typing import Any

import pytest

import kafka_connectors
import onceflow
from onceflow.cli import main
from onceflow.strategies import scenario_from_seed
from onceflow.token import decode
from verdicts import verdict

kafka_connectors.register()


@pytest.fixture(autouse=True)
def _plugins_loaded_here_stay_here(monkeypatch: Any) -> None:
    """`main(["fuzz", "--plugin", ...])` records the module as loaded for the process;
    other tests' replay commands must not carry it."""
    from onceflow import plugins

    monkeypatch.setattr(plugins, "LOADED", list(plugins.LOADED))


@pytest.mark.parametrize("name, want, records", [
    # the next transaction's init aborts the pre-committed one; "fenced" taken for committed
    ("kafka_one_id", "no_loss violated: lost", 3),
    # a reused id fences the restored committable on every attempt: restarts run out
    ("kafka_fenced_fails", "liveness violated: stuck: the job failed", 3),
    # a crashed attempt's open transaction under an id after the restored ones stays open
    ("kafka_no_abort_lingering", "liveness violated: stuck: transaction", 20),
])
def test_a_kafka_connector_bug_is_found_by_fuzz_shrunk_and_replayable(
        name: str, want: str, records: int, tmp_path: Any, capsys: Any) -> None:
    code = main(["fuzz", "--plugin", "kafka_connectors", "--sink", name, "--budget", "120s",
                 "--seed", "1", "--db", str(tmp_path / "db")])
    out, _ = capsys.readouterr()
    assert code == 1, out[-2000:]
    assert want in out, out[-2000:]
    replay = next(line for line in out.splitlines() if line.strip().startswith("replay: "))
    command = replay.split("replay: ", 1)[1]
    assert command.startswith("onceflow --plugin kafka_connectors replay of1.")
    token = command.rsplit(" ", 1)[1]
    assert decode(token).workload.records <= records  # shrunk
    assert main(["replay", token]) == 1
    assert want in capsys.readouterr().out


@pytest.mark.parametrize("name", ["kafka_one_id_fixed", "kafka_fenced_fails_fixed",
                                  "kafka_no_abort_lingering_fixed"])
def test_the_fixed_kafka_connectors_pass_drawn_scenarios(name: str) -> None:
    for seed in range(30):
        scenario = scenario_from_seed(seed, max_faults=4, sink=name)
        onceflow.check(onceflow.run(scenario), deterministic=False)


@pytest.mark.parametrize("name", ["kafka_one_id", "kafka_fenced_fails_fixed"])
def test_memory_and_sqlite_give_the_same_verdicts_for_a_kafka_sink(name: str) -> None:
    for seed in range(8):
        memory = verdict(scenario_from_seed(seed, max_faults=4, sink=name))
        sqlite = verdict(scenario_from_seed(seed, max_faults=4, sink=name, store="sqlite"))
        assert sqlite[0] == memory[0], (seed, memory, sqlite)


def test_the_store_keeps_the_epochs_the_writer_bumped() -> None:
    result = onceflow.run(scenario_from_seed(0, max_faults=0, sink="kafka_one_id_fixed"))
    epochs = result.store.producers()
    assert epochs and all(isinstance(k, str) and isinstance(v, int) for k, v in epochs.items())
    fenced = [t for t in result.store.txns.values()
              if t.producer is not None and t.producer[1] < epochs[t.producer[0]]]
    assert all(t.state in ("committed", "aborted", "expired") for t in fenced)
