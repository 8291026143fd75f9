"""FLIP-147 finish order and Flink's check of finished operators on restore.

A task's input ends (Flink's END_OF_INPUT) only when EndOfPartition arrived on all its
input channels, and a sender sends it once it finished: no task finishes before the
tasks upstream of it.  So no snapshot the job takes has a finished operator behind
one that had not finished, which Flink's `VertexFinishedStateChecker` refuses to
restore; only a changed job graph (a new running operator in front of a finished
one) meets the refusal, and the restored job then fails before it runs.
"""

from __future__ import annotations

import functools

import pytest
from attrs import evolve

from onceflow import RestoreError, Topology, Vertex
from onceflow.model.finished import (ALL_RUNNING, FULLY_FINISHED, PARTIALLY_FINISHED,
                                     FinishedStateError, check_finished_state, finished_state)
from onceflow.model.simulation import RunResult, restore, run
from onceflow.model.snapshot import Snapshot
from onceflow.properties.checks import job_liveness
from onceflow.strategies import scenario_from_seed

MODES = ("aligned", "unaligned", "at_least_once")


def _senders(topology: Topology, uid: str, subtask: int) -> list[str]:
    vs = topology.vertices
    i = next(i for i, v in enumerate(vs) if v.uid == uid)
    if i == 0:
        return []
    before = vs[i - 1]
    if vs[i].edge == "forward":
        return [f"{before.uid}[{subtask}]"]
    return [f"{before.uid}[{s}]" for s in range(before.parallelism)]


@pytest.mark.parametrize("mode", MODES)
def test_no_task_finishes_before_the_tasks_upstream_of_it(mode: str) -> None:
    checked = 0
    for seed in range(12):
        for faults in (0, 3):
            result = run(scenario_from_seed(seed, mode=mode, max_faults=faults))
            topology = result.scenario.topology
            finished: set[str] = set()  # in the current attempt
            for _, kind, where, detail in result.trace.events:
                if kind == "deploy":
                    finished = set()
                elif kind == "task_finished" and not where.endswith(".global[0]"):
                    if result.stopped_with is not None and where.startswith(
                            topology.vertices[-1].uid + "["):
                        continue  # a stop-with-savepoint ends the job once its sinks committed
                    uid, _, rest = where.rpartition("[")
                    missing = [s for s in _senders(topology, uid, int(rest[:-1]))
                               if s not in finished]
                    assert not missing, (mode, seed, faults, where, missing)
                    finished.add(where)
                    checked += 1
    assert checked > 50


@pytest.mark.parametrize("mode", MODES)
def test_no_snapshot_of_a_job_has_a_finished_operator_behind_a_running_one(mode: str) -> None:
    partial = 0
    for seed in range(40):
        for faults in (0, 3):
            result = run(scenario_from_seed(seed, mode=mode, max_faults=faults))
            for snapshot in result.snapshots:
                check_finished_state(snapshot, result.scenario.topology)
                partial += bool(snapshot.finished)
    assert partial, "no drawn run took a snapshot after a task finished"


def _any_snapshot() -> tuple[RunResult, Snapshot]:
    result = run(scenario_from_seed(1, mode="aligned", max_faults=0))
    return result, result.snapshots[0]


def _topology(*edges: str) -> Topology:
    vs = [Vertex("source", "source", 2)]
    for i, edge in enumerate(edges):
        vs.append(Vertex(f"op{i}", "map" if i < len(edges) - 1 else "sink", 2, edge))
    return Topology(tuple(vs), max_parallelism=16)


def _finished(snapshot: Snapshot, topology: Topology, *names: str) -> Snapshot:
    return evolve(snapshot, parallelism={v.uid: v.parallelism for v in topology.vertices},
                  finished=frozenset(names))


def test_finished_state_counts_subtasks() -> None:
    _, snap = _any_snapshot()
    top = _topology("forward", "hash")
    s = _finished(snap, top, "source[0]", "source[1]", "op0[1]")
    assert finished_state(s, "source") == FULLY_FINISHED
    assert finished_state(s, "op0") == PARTIALLY_FINISHED
    assert finished_state(s, "op1") == ALL_RUNNING
    assert finished_state(s, "new") == ALL_RUNNING  # an operator the snapshot lacks runs


def test_flinks_three_rules() -> None:
    _, snap = _any_snapshot()
    top = _topology("forward", "hash")
    # 1. a fully finished operator behind one not fully finished
    with pytest.raises(FinishedStateError, match="'op0' had fully finished.*'source' is "
                                                 "partially finished.*Illegal JobGraph"):
        check_finished_state(_finished(snap, top, "source[0]", "op0[0]", "op0[1]"), top)
    # 2. partially finished behind an all-to-all edge: its predecessor must be fully finished
    with pytest.raises(FinishedStateError, match="'op1' had partially finished.*all-to-all"):
        check_finished_state(_finished(snap, top, "source[0]", "source[1]", "op0[0]",
                                       "op1[0]"), top)
    # 3. partially finished behind a pointwise edge: its predecessor must have finished partly
    with pytest.raises(FinishedStateError, match="'op0' had partially finished.*pointwise"):
        check_finished_state(_finished(snap, top, "op0[0]"), top)
    # what a job finishing in order leaves behind passes
    for names in ((), ("source[0]",), ("source[0]", "op0[0]"),
                  ("source[0]", "source[1]", "op0[0]", "op0[1]", "op1[1]")):
        check_finished_state(_finished(snap, top, *names), top)
    assert issubclass(FinishedStateError, RestoreError)


@functools.lru_cache(maxsize=1)
def _second_operator_finished() -> tuple[RunResult, Snapshot]:
    """A drawn run with a snapshot in which the operator after the source had fully
    finished (and the sink had not)."""
    for seed in range(120):
        result = run(scenario_from_seed(seed, mode="unaligned", max_faults=0))
        vs = result.scenario.topology.vertices
        if len(vs) < 3:
            continue
        for snap in result.snapshots:
            if snap.fully_finished(vs[1].uid) and not snap.fully_finished(vs[-1].uid):
                return result, snap
    pytest.fail("no drawn run has a snapshot with its second operator fully finished")


def test_a_new_running_operator_before_a_finished_one_is_refused_as_flink_does() -> None:
    result, snap = _second_operator_finished()
    vs = result.scenario.topology.vertices
    new = Vertex("inserted", "map", vs[0].parallelism, "forward", 0)
    upgraded = Topology((vs[0], new, *vs[1:]), max_parallelism=result.scenario.topology.max_parallelism)
    restored = restore(result, snap, topology=upgraded)
    assert restored.status == "failed"
    assert restored.refused is not None and "Illegal JobGraph modification" in restored.refused
    assert f"{vs[1].uid!r} had fully finished" in restored.refused
    assert [e[1] for e in restored.trace.events] == ["restore_refused"]
    assert restored.committed() == result.store.fork(snap.store_version).read_committed(
        snap.completed)  # nothing ran
    job_liveness(restored)  # Flink's own refusal: no violation

    # the same snapshot restores into the job graph it was taken with, rescaled or not
    for parallelism in (None, 1):
        again = restore(result, snap, parallelism)
        assert again.refused is None and again.status == "finished"


#: aligned, two snapshots pending at once: the sink hears that checkpoint 7 aborted before
#: savepoint 6's barrier reaches it.  With the highest aborted id remembered it let that
#: barrier pass and finished, and savepoint 6 would have held window0's state and the sink
#: as finished (a snapshot Flink refuses; the decline in `task_finished` caught it).  With
#: the aborted ids remembered exactly, as Flink does, the sink takes part in savepoint 6.
LET_PASS = ("of1.eNqNUttuozAQ_Rc_WxGXbJryK1GFpmZIvDi25Usoqvj3nYGmDd1dqbwwNjOHc5l3oS6oBu-0TVE076LLAV4Nt"
            "jG5gKJJIaMU9BHDDYxoyt0vKa7w1ipnVQ4BbRJNRVeuo24BRp8tdkKKgAk0l00pRdJXdJk6y2OxK-jsDK6_6UEb7NoNiWq"
            "WoodsuD69EHZOYO-HgDFBSEwVUsKrXyak6NDARNWuoOkIN7yjnbiR_lztnolJF4iVaHowEVcwktl6CGAMGh2vC1-69R9Ns1z"
            "ni93x-KNxm43ZIhDrSAK7bMiiUy1LWciKL5HtqfaHak8HbQc20Hu07B9Zpu2ZZb7mvsfQBlQudCSoJrXqAtaiaRV4UDpNC-v"
            "fmgwJnNFTsXlowEBCqybWUW8_FnsWwtiUaVyUFjVdedU-DJH27I2DruUs_wkzc67eGXeemDYvydbXikBuGJJWuOaC3ZmXpnd"
            "hhMCiB03aGxFdDgrp_D0XPlNFG5T1QyNn9IF1gXj5Ahrp5cb_A1V3oLWxeET6mxUn9ANO3Da_sBtvtv3c_MNiEi8_WRC1s8v"
            "w6MLArrJhA05ky9M9DarL588lqQ-8fnHAcQmISm80r3c5z38A8k82iA")


def test_an_abort_of_a_newer_snapshot_leaves_an_older_pending_one_alone() -> None:
    from onceflow.properties import check
    from onceflow.token import decode

    result = run(decode(LET_PASS))
    events = result.trace.events
    heard = next(i for i, e in enumerate(events)
                 if e[1] == "notified_aborted" and e[2] == "sink[0]" and e[3] == (7,))
    took = next(i for i, e in enumerate(events)
                if e[1] == "snapshot" and e[2] == "sink[0]" and e[3] == (6, "savepoint"))
    assert heard < took  # the abort of 7 came first, and the sink still took part in 6
    assert not [e for e in events if e[1] == "declined" and e[3][0] == 6]
    savepoint = result.snapshot(6)
    assert savepoint.kind == "savepoint" and not savepoint.finished
    for snapshot in result.snapshots:
        check_finished_state(snapshot, result.scenario.topology)
    check(result)
