"""Fault plans as data: bad faults are refused naming the field, good ones round-trip.

A fault naming an unknown subtask, phase, effect or checkpoint, or a negative
time, raises `onceflow.ScenarioError` whose field is the fault's path
(`faults[0].target`), whether the fault is built in Python inside `Scenario(...)`
or read with `Scenario.from_json`.  Every fault kind survives
`Scenario.from_json(s.to_json()) == s`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest

import onceflow
from onceflow import (CheckpointConfig, Scenario, ScenarioError, Timing, Topology, Vertex,
                      Workload, run)
from onceflow.cost import horizon
from onceflow.faults import unfired
from onceflow.faults.plan import (CRASH_PHASES, FAULT_KINDS, NOTIFY_MESSAGES, CoordinatorCrash,
                                  Crash, LatencySpike, NotifyFault, PhaseCrash, ProgressCrash,
                                  ProgressLostTransaction, SlowSubtask,
                                  StorageFault, StoreFault, WorkerCrash, max_checkpoint_id)

# 8 subtasks at 4 slots a worker: workers 0 and 1
TOPOLOGY = Topology((
    Vertex("source", "source", 2),
    Vertex("map", "map", 2, "forward", 1),
    Vertex("reduce", "reduce", 2, "hash"),
    Vertex("sink", "sink", 2, "forward"),
), max_parallelism=8)


def scenario(*faults: Any) -> Scenario:
    return Scenario(topology=TOPOLOGY, workload=Workload(records=60, keys=4, splits=2),
                    checkpoints=CheckpointConfig(interval=8.0),
                    timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                    faults=faults)


def fault_data(fault: Any) -> dict[str, Any]:
    """A fault's JSON form, built independently of the scenario's serializer (a field
    added later, declared `omit_default`, is left out at its default)."""
    data = attrs.asdict(fault)
    for f in attrs.fields(type(fault)):
        if f.metadata.get("omit_default") and data[f.name] == f.default:
            del data[f.name]
    return {"kind": type(fault).kind_name, **data}


def json_with_faults(faults: list[Any]) -> str:
    data = scenario().to_data()
    data["faults"] = faults
    return json.dumps(data)


# -- bad faults --------------------------------------------------------------------------------

#: (name, fault, field of the fault that is wrong)
BAD: list[tuple[str, Any, str]] = [
    # unknown subtasks
    ("crash of an unknown vertex", Crash(1.0, "nosuch[0]"), "target"),
    ("crash of a subtask beyond the parallelism", Crash(1.0, "map[2]"), "target"),
    ("crash of a vertex without subtask index", Crash(1.0, "map"), "target"),
    ("crash of every subtask", Crash(1.0, "*"), "target"),
    ("crash target not a string", Crash(1.0, 3), "target"),
    ("phase crash of an unknown vertex", PhaseCrash("alignment", "join[0]"), "target"),
    ("phase crash of a subtask beyond the parallelism", PhaseCrash("pre_commit", "sink[7]"),
     "target"),
    ("notification to an unknown subtask", NotifyFault("lose", 1, "sink[2]"), "target"),
    ("storage fault of an unknown vertex", StorageFault("fail_write", 1, "window[0]"), "target"),
    ("latency spike of an unknown subtask", LatencySpike(1.0, "source[5]"), "target"),
    ("slow unknown subtask", SlowSubtask(1.0, "reduce[-1]"), "target"),
    ("crash of an unknown worker", WorkerCrash(1.0, 2), "worker"),
    ("crash of a negative worker", WorkerCrash(1.0, -1), "worker"),
    # unknown phases and effects
    ("unknown phase", PhaseCrash("before_everything", "map[0]"), "phase"),
    ("phase with wrong case", PhaseCrash("Alignment", "map[0]"), "phase"),
    ("unknown notification effect", NotifyFault("corrupt", 1), "effect"),
    ("unknown storage effect", StorageFault("corrupt", 1), "effect"),
    ("unknown store effect", StoreFault("outage", 1.0), "effect"),
    ("unknown notification message", NotifyFault("lose", 1, "*", 0.0, "declined"), "message"),
    ("notification message with wrong case", NotifyFault("lose", 1, "*", 0.0, "Aborted"),
     "message"),
    # unknown checkpoints
    ("negative checkpoint", PhaseCrash("alignment", "reduce[0]", -1), "checkpoint"),
    ("checkpoint beyond any run", PhaseCrash("alignment", "reduce[0]", 10_001), "checkpoint"),
    # this job's horizon holds at most a few hundred snapshots (see test_checkpoint_bound...)
    ("checkpoint this run never reaches", PhaseCrash("alignment", "reduce[0]", 9999),
     "checkpoint"),
    ("notification of a checkpoint this run never reaches", NotifyFault("lose", 9999),
     "checkpoint"),
    ("storage fault of a checkpoint this run never reaches",
     StorageFault("fail_write", 9999, "map[0]"), "checkpoint"),
    ("fractional checkpoint", PhaseCrash("alignment", "reduce[0]", 1.5), "checkpoint"),
    ("boolean checkpoint", PhaseCrash("alignment", "reduce[0]", True), "checkpoint"),
    ("notification of a negative checkpoint", NotifyFault("delay", -2, "*", 1.0), "checkpoint"),
    ("storage fault of a negative checkpoint", StorageFault("slow_upload", -1), "checkpoint"),
    # negative (or otherwise impossible) times
    ("negative crash time", Crash(-1.0, "map[0]"), "at"),
    ("negative integer crash time", Crash(-5, "map[0]"), "at"),
    ("NaN crash time", Crash(math.nan, "map[0]"), "at"),
    ("infinite crash time", Crash(math.inf, "map[0]"), "at"),
    ("string crash time", Crash("soon", "map[0]"), "at"),
    ("negative worker crash time", WorkerCrash(-0.5, 0), "at"),
    ("negative coordinator crash time", CoordinatorCrash(-1.0), "at"),
    ("negative notification delay", NotifyFault("delay", 1, "*", -3.0), "delay"),
    ("negative upload delay", StorageFault("slow_upload", 1, "*", -1.0), "delay"),
    ("negative store fault time", StoreFault("commit_failure", -2.0), "at"),
    ("no failures", StoreFault("commit_failure", 1.0, 0), "times"),
    ("too many failures", StoreFault("commit_failure", 1.0, 11), "times"),
    ("negative spike time", LatencySpike(-1.0, "map[0]"), "at"),
    ("negative spike duration", LatencySpike(1.0, "map[0]", -10.0), "duration"),
    ("negative spike latency", LatencySpike(1.0, "map[0]", 10.0, -5.0), "extra"),
    ("negative slowdown time", SlowSubtask(-1.0, "map[0]"), "at"),
    ("negative slowdown duration", SlowSubtask(1.0, "map[0]", -10.0), "duration"),
    ("speed-up instead of slowdown", SlowSubtask(1.0, "map[0]", 10.0, 0.5), "factor"),
]

#: Bad faults that look almost valid.  A target like "map[01]" parses as subtask 1, but
#: the injector matches subtask names exactly ("map[1]"), so such a fault is a dead fault:
#: accepted, and it never fires.  Booleans are not integers anywhere else in a scenario.
ALMOST: list[tuple[str, Any, str]] = [
    ("crash target with a leading zero", Crash(1.0, "map[01]"), "target"),
    ("phase crash target with a leading zero", PhaseCrash("alignment", "reduce[00]"), "target"),
    ("crash target with a trailing newline", Crash(1.0, "map[0]\n"), "target"),
    ("boolean worker", WorkerCrash(1.0, True), "worker"),
    ("boolean failure count", StoreFault("commit_failure", 1.0, True), "times"),
]

IDS = [name for name, _, _ in BAD]


def assert_names(info: pytest.ExceptionInfo[ScenarioError], field: str) -> None:
    err = info.value
    assert err.field == field
    assert field in str(err)
    assert isinstance(err, onceflow.OnceflowError) and isinstance(err, ValueError)


@pytest.mark.parametrize("fault,field", [(f, x) for _, f, x in BAD], ids=IDS)
def test_bad_fault_in_python_raises_scenario_error_naming_the_field(fault: Any,
                                                                    field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(fault)
    assert_names(info, f"faults[0].{field}")


@pytest.mark.parametrize("fault,field", [(f, x) for _, f, x in BAD], ids=IDS)
def test_bad_fault_after_a_good_one_is_named_by_its_index(fault: Any, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(Crash(1.0, "map[0]"), CoordinatorCrash(2.0), fault)
    assert_names(info, f"faults[2].{field}")


@pytest.mark.parametrize("fault,field", [(f, x) for _, f, x in BAD], ids=IDS)
def test_bad_fault_in_json_raises_scenario_error_naming_the_field(fault: Any, field: str) -> None:
    text = json_with_faults([fault_data(Crash(1.0, "map[0]")), fault_data(fault)])
    with pytest.raises(ScenarioError) as info:
        Scenario.from_json(text)
    assert_names(info, f"faults[1].{field}")


@pytest.mark.parametrize("via", ["python", "json"])
@pytest.mark.parametrize("fault,field", [(f, x) for _, f, x in ALMOST],
                         ids=[name for name, _, _ in ALMOST])
def test_almost_valid_fault_raises_scenario_error_naming_the_field(fault: Any, field: str,
                                                                   via: str) -> None:
    with pytest.raises(ScenarioError) as info:
        if via == "python":
            scenario(fault)
        else:
            Scenario.from_json(json_with_faults([fault_data(fault)]))
    assert_names(info, f"faults[0].{field}")


JSON_BAD: list[tuple[str, Any, str]] = [
    ("negative integer time", {"kind": "crash", "at": -1, "target": "map[0]"}, "faults[0].at"),
    ("negative time as a string", {"kind": "crash", "at": "-1", "target": "map[0]"},
     "faults[0].at"),
    ("unknown subtask", {"kind": "crash", "at": 1, "target": "map[9]"}, "faults[0].target"),
    ("unknown phase", {"kind": "phase_crash", "phase": "commit", "target": "sink[0]"},
     "faults[0].phase"),
    ("checkpoint as a string",
     {"kind": "phase_crash", "phase": "pre_commit", "target": "sink[0]", "checkpoint": "2"},
     "faults[0].checkpoint"),
    ("null checkpoint", {"kind": "notify", "effect": "lose", "checkpoint": None},
     "faults[0].checkpoint"),
    ("unknown kind", {"kind": "meteor", "at": 1}, "faults[0].kind"),
    ("kind missing", {"at": 1, "target": "map[0]"}, "faults[0]"),
    ("not an object", "crash", "faults[0]"),
    ("unknown field", {"kind": "crash", "at": 1, "target": "map[0]", "when": 2},
     "faults[0].when"),
    ("missing target", {"kind": "crash", "at": 1}, "faults[0]"),
]


@pytest.mark.parametrize("data,field", [(d, f) for _, d, f in JSON_BAD],
                         ids=[n for n, _, _ in JSON_BAD])
def test_bad_fault_json_raises_scenario_error_naming_the_field(data: Any, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_json(json_with_faults([data]))
    assert_names(info, field)


def test_faults_must_be_a_json_list() -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_json(json_with_faults({"kind": "crash"}))  # type: ignore[arg-type]
    assert_names(info, "faults")


def test_not_a_fault_value_is_refused() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(Crash(1.0, "map[0]"), {"kind": "crash", "at": 1.0, "target": "map[0]"})
    assert_names(info, "faults[1]")


def test_every_valid_target_and_phase_is_accepted() -> None:
    """The other side of the validation: nothing legal is refused."""
    targets = [f"{v.uid}[{i}]" for v in TOPOLOGY.vertices for i in range(v.parallelism)]
    faults = [PhaseCrash(phase, target, cp) for phase in CRASH_PHASES
              for target, cp in zip(targets, range(8))
              if phase != "end_of_input" or cp == 0]
    faults += [Crash(0, t) for t in targets] + [WorkerCrash(1e5, w) for w in (0, 1)]
    for start in range(0, len(faults), 30):
        scenario(*faults[start:start + 30])
    last = max_checkpoint_id(scenario())
    for effect in ("lose", "delay", "duplicate", "reorder"):
        for message in NOTIFY_MESSAGES:
            scenario(NotifyFault(effect, last, "*", 0, message),
                     NotifyFault(effect, 0, "sink[1]", 1e9, message))
    scenario(PhaseCrash("pre_commit", "sink[0]", last), StorageFault("slow_upload", last))


# -- checkpoint ids a run can reach --------------------------------------------------------------

def test_checkpoint_bound_follows_the_horizon_and_names_the_limit() -> None:
    """A fault may name any checkpoint up to the most the run can trigger, not one more;
    the message says how many that is.  A later timed fault extends the horizon, and so
    the bound."""
    s = scenario(PhaseCrash("alignment", "reduce[0]"))  # a crash lengthens the horizon
    last = max_checkpoint_id(s)
    # one tick per 8 ms until the horizon, plus one final checkpoint for each of the
    # 1 + 3 attempts
    assert last == int(horizon(s) // 8) + 4
    scenario(PhaseCrash("alignment", "reduce[0]", last))
    with pytest.raises(ScenarioError) as info:
        scenario(PhaseCrash("alignment", "reduce[0]", last + 1))
    assert info.value.field == "faults[0].checkpoint"
    assert f"checkpoint {last + 1} is never reached" in str(info.value)
    assert f"at most {last} snapshots" in str(info.value)
    # a crash at 800 ms keeps the run going longer (800 ms, a restart, a replay): more ticks
    later = max_checkpoint_id(scenario(Crash(800.0, "map[0]"), PhaseCrash("alignment", "reduce[0]")))
    assert later >= last + 100
    scenario(Crash(800.0, "map[0]"), PhaseCrash("alignment", "reduce[0]", later))
    with pytest.raises(ScenarioError) as info:
        scenario(Crash(800.0, "map[0]"), PhaseCrash("alignment", "reduce[0]", later + 1))
    assert info.value.field == "faults[1].checkpoint"


def test_checkpoint_bound_holds_for_a_run_that_ticks_until_its_horizon(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose sinks never hear of a completed checkpoint never finishes: the timer
    triggers a checkpoint every interval until the horizon.  The ids it reaches stay
    within the bound, which is close to them."""
    from onceflow.model.task import Task

    monkeypatch.setattr(Task, "notify_complete", lambda self, checkpoint_id, stop: None)
    s = Scenario(topology=Topology((Vertex("source", "source", 1),
                                    Vertex("sink", "sink", 1, "forward"))),
                 workload=Workload(records=50, keys=2),
                 checkpoints=CheckpointConfig(interval=6.0, timeout=5.5,
                                              tolerable_failed_checkpoints=2**31 - 1),
                 timing=Timing(record_cost=0.2), sink="two_phase")
    result = run(s)
    assert result.status == "stuck"
    reached = max(d[0] for _, kind, _, d in result.trace.events if kind == "trigger")
    assert reached <= max_checkpoint_id(s) <= reached + 1 + s.restart.attempts + 1


def test_generated_faults_name_reachable_checkpoints() -> None:
    from onceflow.strategies import scenario_from_seed

    for seed in range(300):
        s = scenario_from_seed(seed)
        limit = max_checkpoint_id(s)
        assert all(getattr(f, "checkpoint", 0) <= limit for f in s.faults), seed


def test_a_fault_that_never_fires_is_listed_by_unfired() -> None:
    """Valid but aimed at nothing that happens (a checkpoint after the job finished, a
    crash after the end, a notify-aborted when nothing aborts): accepted, listed by
    `unfired`, absent from `faults_fired`."""
    faults = (PhaseCrash("pre_commit", "sink[0]", 200),  # the job ends long before
              Crash(1e6, "map[0]"),  # after the job finished
              NotifyFault("lose", 1, "*", 0.0, "aborted"),  # checkpoint 1 completes
              NotifyFault("lose", 1, "sink[1]", 0.0, "complete"))  # this one fires
    s = Scenario(topology=TOPOLOGY, workload=Workload(records=60, keys=4, splits=2),
                 checkpoints=CheckpointConfig(interval=8.0),
                 timing=Timing(latency=1.0, record_cost=0.2, buffer_records=4),
                 sink="two_phase", faults=faults)
    result = run(s)
    assert result.status == "finished"
    assert [f["index"] for f in result.faults_fired] == [3]
    assert unfired(result) == tuple(enumerate(faults))[:3]
    onceflow.check(result)


def test_end_of_input_is_not_tied_to_a_checkpoint() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(PhaseCrash("end_of_input", "map[0]", 2))
    assert info.value.field == "faults[0].checkpoint"


# -- round trip --------------------------------------------------------------------------------

ALL_KINDS: tuple[Any, ...] = (
    Crash(12.5, "reduce[1]"),
    WorkerCrash(30, 1),
    CoordinatorCrash(40.25),
    PhaseCrash("alignment", "reduce[0]", 2),
    PhaseCrash("end_of_input", "map[1]"),
    ProgressCrash("map[0]", 17, 2),
    StorageFault("fail_write", 0, "sink[1]", snapshot="savepoint"),
    NotifyFault("lose", 1),
    NotifyFault("delay", 2, "sink[0]", 3.5),
    NotifyFault("duplicate", 0, "*", 1),
    NotifyFault("reorder", 3, "source[1]"),
    NotifyFault("lose", 2, "sink[1]", 0, "aborted"),
    NotifyFault("duplicate", 0, "*", 2.5, "complete"),
    StorageFault("fail_write", 1, "map[0]"),
    StorageFault("slow_upload", 0, "*", 25),
    StoreFault("commit_failure", 5.0, 3),
    StoreFault("slow_commit", 1.0, 2, "*", 5.0, "not_committed"),
    ProgressLostTransaction("sink[1]", 9, 1),
    LatencySpike(2, "source[0]", 20, 7.5),
    SlowSubtask(3.0, "sink[1]", 15.0, 4),
)


def assert_round_trip(s: Scenario) -> None:
    text = s.to_json()
    back = Scenario.from_json(text)
    assert back == s
    assert back.faults == s.faults
    assert [type(f) for f in back.faults] == [type(f) for f in s.faults]
    assert back.to_json() == text
    assert Scenario.from_json(s.to_json(indent=2)) == s
    assert Scenario.from_json(text.encode()) == s
    assert Scenario.from_data(json.loads(text)) == s


def test_round_trip_sample_has_every_fault_kind() -> None:
    assert {type(f).kind_name for f in ALL_KINDS} == set(FAULT_KINDS)


@pytest.mark.parametrize("fault", ALL_KINDS, ids=[repr(f) for f in ALL_KINDS])
def test_fault_json_round_trip(fault: Any) -> None:
    s = scenario(fault)
    assert_round_trip(s)
    data = json.loads(s.to_json())["faults"]
    assert data == [fault_data(fault)]
    assert data[0]["kind"] == type(fault).kind_name


def test_scenario_with_every_fault_kind_round_trips_and_replays_identically() -> None:
    s = scenario(*ALL_KINDS)
    assert_round_trip(s)
    # integer times are stored as floats, so the JSON form is stable
    assert all(isinstance(getattr(f, name), float) for f in s.faults
               for name in ("at", "delay", "duration", "extra", "factor") if hasattr(f, name))
    # the replayed scenario is the same run
    assert run(Scenario.from_json(s.to_json())).digest == run(s).digest


def test_notify_fault_without_message_reads_as_any() -> None:
    """Scenarios written before `message` existed replay as they did: their notification
    faults intercept notify-complete and notify-aborted alike."""
    data = {"kind": "notify", "effect": "lose", "checkpoint": 1, "target": "*", "delay": 0.0}
    s = Scenario.from_json(json_with_faults([data]))
    assert s.faults == (NotifyFault("lose", 1),)
    assert s.faults[0].message == "any"
    assert json.loads(s.to_json())["faults"][0]["message"] == "any"


def test_generated_fault_plans_round_trip() -> None:
    from onceflow.strategies import scenario_from_seed

    kinds: set[str] = set()
    for seed in range(300):
        s = scenario_from_seed(seed)
        kinds |= {type(f).kind_name for f in s.faults}
        assert Scenario.from_json(s.to_json()) == s, seed
    assert kinds == set(FAULT_KINDS)
