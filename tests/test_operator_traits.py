"""An operator is judged by the traits it declares, never by its name: a user operator
declaring a built-in's traits is judged exactly like that built-in."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import onceflow
from onceflow import Scenario, Topology
from onceflow.errors import RegistrationError
from onceflow.properties.oracle import canonical, expected_output
from onceflow.registry import OPERATORS, register_operator
from onceflow.strategies import scenario_from_seed

BUILTINS = ("map", "filter", "flat_map", "reduce", "window")
#: what each built-in declares, spelled out as a user would
TRAITS: dict[str, dict[str, Any]] = {
    "map": {"ids": "keep"},
    "filter": {"ids": "drop"},
    "flat_map": {"ids": "multiply"},
    "reduce": {"keyed": True, "ids": "keep", "aggregate": "max"},
    "window": {"keyed": True, "ids": "replace", "aggregate": "sum",
               "order_dependent_state": True,
               "state_view": lambda value: None if tuple(value[:3]) == (0, 0, 0)
               else tuple(value[:3])},
}


@pytest.fixture(autouse=True)
def lookalikes() -> Any:
    """`my_<builtin>`: the built-in's code and oracle, registered as a user operator
    that declares the built-in's traits."""
    for name in BUILTINS:
        spec = OPERATORS[name]
        register_operator(f"my_{name}", factory=spec.factory, fold=spec.fold, flush=spec.flush,
                          params=spec.params, **TRAITS[name])
    yield
    for name in BUILTINS:
        OPERATORS.pop(f"my_{name}", None)


def _as_user(scenario: Scenario) -> Scenario:
    vertices = tuple(attrs.evolve(v, kind=f"my_{v.kind}") if v.kind in BUILTINS else v
                     for v in scenario.topology.vertices)
    return attrs.evolve(scenario, topology=Topology(vertices))


def _verdict(scenario: Scenario) -> tuple[Any, ...]:
    """The run's status and verdict.  (Not its records: a run's timing is drawn from a
    seed derived from the whole scenario, operator names included.)"""
    result = onceflow.run(scenario)
    try:
        onceflow.check(result)
    except onceflow.Violation as v:
        return (result.status, str(v).splitlines()[0][:80])
    return (result.status, None)


def test_the_builtins_declare_their_traits() -> None:
    for name, traits in TRAITS.items():
        spec = OPERATORS[name]
        for trait, value in traits.items():
            if trait != "state_view":
                assert getattr(spec, trait) == value, (name, trait)
        assert (spec.state_view is not None) == ("state_view" in traits)


@pytest.mark.parametrize("mode", [None, "at_least_once"])
def test_a_user_operator_declaring_a_builtins_traits_is_judged_like_it(mode: str | None) -> None:
    kinds_seen: set[str] = set()
    for seed in range(40):
        scenario = scenario_from_seed(seed, mode=mode, max_records=60)
        kinds_seen.update(v.kind for v in scenario.topology.vertices)
        mine = _as_user(scenario)
        assert _verdict(mine) == _verdict(scenario), seed
        records = [r for rs in expected_output(scenario).values() for r in rs]
        assert canonical(records, mine.topology) == canonical(records, scenario.topology)
    assert set(BUILTINS) <= kinds_seen  # every trait was exercised
    for seed in range(12):  # keyed state judged downstream, records fed out of order
        for chain in (["reduce", "filter"], ["window", "flat_map"], ["map", "window"]):
            scenario = scenario_from_seed(seed, mode=mode, operators=chain, max_records=60)
            assert _verdict(_as_user(scenario)) == _verdict(scenario), (seed, chain)


@pytest.mark.parametrize("pinned", [["reduce"], ["window"], ["reduce", "filter"],
                                    ["flat_map", "window"], ["map", "reduce", "flat_map"],
                                    ["map", "reduce", "filter"]])
def test_the_generator_places_a_user_operator_as_it_places_the_builtin(pinned: list[str]) -> None:
    for seed in range(30):
        builtin = scenario_from_seed(seed, operators=pinned)
        mine = scenario_from_seed(seed, operators=[f"my_{n}" for n in pinned])
        assert [(v.edge, v.parallelism, v.param) for v in mine.topology.vertices] == [
            (v.edge, v.parallelism, v.param) for v in builtin.topology.vertices]


def test_an_undeclared_keyed_operator_is_never_fed_out_of_order() -> None:
    spec = OPERATORS["reduce"]
    register_operator("my_plain", factory=spec.factory, fold=spec.fold, keyed=True)
    try:
        for seed in range(30):
            topology = scenario_from_seed(seed, operators=["map", "my_plain"]).topology
            assert all(v.edge in ("forward", "hash") for v in topology.vertices[1:3])
    finally:
        OPERATORS.pop("my_plain", None)


@pytest.mark.parametrize("traits, fix", [
    ({"ids": "some"}, "declare one of keep, drop, multiply, replace"),
    ({"keyed": True, "aggregate": "avg"}, "declare one of max, sum"),
    ({"aggregate": "max"}, "register it with keyed=True"),
    ({"state_view": len}, "register it with keyed=True"),
    ({"order_dependent_state": True}, "register it with keyed=True"),
    ({"keyed": True, "order_dependent_state": "yes"}, "must be True or False"),
    ({"keyed": True, "state_view": 3}, "must be a callable"),
])
def test_a_bad_trait_is_refused_with_the_fix(traits: dict[str, Any], fix: str) -> None:
    spec = OPERATORS["reduce"]
    with pytest.raises(RegistrationError, match=fix):
        register_operator("bad_traits", factory=spec.factory, fold=spec.fold, **traits)
    assert "bad_traits" not in OPERATORS
