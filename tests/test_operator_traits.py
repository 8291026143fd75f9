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
    "filter": {"ids": "drop", "param_bounds": (1, 1_000_000), "param_name": "modulus"},
    "flat_map": {"ids": "multiply", "param_bounds": (1, 8), "param_name": "fan-out",
                 "output_bound": lambda records, param, keys: records * max(param, 1)},
    "reduce": {"keyed": True, "ids": "keep", "aggregate": "max"},
    "window": {"keyed": True, "ids": "replace", "aggregate": "sum",
               "order_dependent_state": True,
               "state_view": lambda value: None if tuple(value[:3]) == (0, 0, 0)
               else tuple(value[:3]),
               "param_bounds": (1, 1_000_000), "param_name": "size in records",
               "output_bound": lambda records, param, keys: min(records,
                                                                records // max(param, 1) + keys)},
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
            if trait not in ("state_view", "output_bound"):
                assert getattr(spec, trait) == value, (name, trait)
        assert (spec.state_view is not None) == ("state_view" in traits)
        assert (spec.output_bound is not None) == ("output_bound" in traits)


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


def test_a_user_operator_declaring_a_builtins_traits_is_costed_like_it() -> None:
    from onceflow.cost import estimate  # noqa: PLC0415
    from onceflow.scenario import record_visits  # noqa: PLC0415

    for seed in range(40):
        scenario = scenario_from_seed(seed)
        mine = _as_user(scenario)
        assert estimate(mine) == estimate(scenario), seed
        assert (record_visits(mine.topology, 1000)
                == record_visits(scenario.topology, 1000)), seed
    for chain in (["flat_map", "window"], ["window", "flat_map"]):
        scenario = scenario_from_seed(3, operators=chain)
        assert estimate(_as_user(scenario)) == estimate(scenario)


@pytest.mark.parametrize("kind, param", [("filter", 0), ("flat_map", 0), ("flat_map", 9),
                                         ("window", 0)])
def test_a_user_operator_declaring_a_builtins_params_is_validated_like_it(kind: str,
                                                                           param: int) -> None:
    with pytest.raises(onceflow.ScenarioError) as builtin:
        onceflow.Vertex("op", kind, 1, "hash", param)
    with pytest.raises(onceflow.ScenarioError) as mine:
        onceflow.Vertex("op", f"my_{kind}", 1, "hash", param)
    assert str(mine.value).replace(f"my_{kind}", kind) == str(builtin.value)
    assert OPERATORS[kind].param_name in str(builtin.value)


def test_an_operator_that_emits_more_than_it_reads_is_costed_by_its_declaration() -> None:
    spec = OPERATORS["map"]
    register_operator("my_tenfold", factory=spec.factory, fold=spec.fold, ids="multiply",
                      output_bound=lambda records, param, keys: 10 * records)
    try:
        base = Scenario()
        vertices = base.topology.vertices
        tenfold = attrs.evolve(vertices[1], kind="my_tenfold")
        plain = Scenario(topology=Topology((vertices[0], attrs.evolve(vertices[1], kind="map"))
                                           + vertices[2:]))
        loud = Scenario(topology=Topology((vertices[0], tenfold) + vertices[2:]))
        from onceflow.cost import estimate  # noqa: PLC0415

        assert estimate(loud).record_visits > 5 * estimate(plain).record_visits
    finally:
        OPERATORS.pop("my_tenfold", None)


@pytest.mark.parametrize("traits, fix", [
    ({"param_bounds": (5, 2)}, "param_bounds must be"),
    ({"params": (0, 3), "param_bounds": (1, 8)}, "param_bounds must be"),
    ({"param_name": ""}, "param_name must be"),
    ({"output_bound": 3}, "output_bound must be a callable"),
])
def test_a_bad_param_declaration_is_refused_with_the_fix(traits: dict[str, Any], fix: str) -> None:
    spec = OPERATORS["map"]
    with pytest.raises(RegistrationError, match=fix):
        register_operator("bad_params", factory=spec.factory, fold=spec.fold, **traits)
    assert "bad_params" not in OPERATORS


def test_an_output_bound_that_raises_is_named() -> None:
    spec = OPERATORS["map"]
    register_operator("my_raising", factory=spec.factory, fold=spec.fold,
                      output_bound=lambda records, param, keys: 1 // 0)
    try:
        vertices = Scenario().topology.vertices
        with pytest.raises(RegistrationError, match="my_raising.*output_bound.*ZeroDivision"):
            Scenario(topology=Topology((vertices[0], attrs.evolve(vertices[1], kind="my_raising"))
                                       + vertices[2:]))
    finally:
        OPERATORS.pop("my_raising", None)
