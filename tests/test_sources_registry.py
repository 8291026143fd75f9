"""register_source: validated eagerly, with messages that state the fix."""

from __future__ import annotations

import pytest

from onceflow import Scenario
from onceflow.errors import RegistrationError, ScenarioError
from onceflow.registry import SOURCES, register_source
from onceflow.scenario import StartPosition, Workload


class _Reader:
    def open(self, ctx): ...


@pytest.fixture(autouse=True)
def _clean():
    before = dict(SOURCES)
    yield
    SOURCES.clear()
    SOURCES.update(before)


def test_builtin_log_source_is_registered_like_a_users():
    spec = SOURCES["log"]
    assert spec.builtin and spec.enumerator is None
    assert Scenario().source == "log"


def test_register_source_records_module_and_enumerator():
    def enum(ctx, restored):
        return None

    spec = register_source("my-src", factory=_Reader, enumerator=enum)
    assert SOURCES["my-src"] is spec
    assert spec.module == __name__ and not spec.builtin
    assert Scenario(source="my-src").source == "my-src"


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="Bad Name", factory=_Reader), "bad source name"),
    (dict(name="log", factory=_Reader), "built-in source; register yours under another name"),
    (dict(name="x", factory=3), "factory must be a callable returning a SourceReader"),
    (dict(name="x", factory=_Reader, enumerator="no"), "enumerator must be a callable"),
    (dict(name="x", factory=lambda a, b: None), r"factory must be callable as factory\(\)"),
    (dict(name="x", factory=_Reader, enumerator=lambda: None),
     r"enumerator must be callable as enumerator\(ctx, restored\)"),
])
def test_bad_registrations_say_what_to_do(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(RegistrationError, match=message):
        register_source(name, **kwargs)
    assert name not in SOURCES or SOURCES[name].builtin


def test_unknown_source_names_the_plugin_flag():
    with pytest.raises(ScenarioError, match=r"source: unknown source 'nope'.*--plugin MODULE"):
        Scenario(source="nope")
    with pytest.raises(ScenarioError, match="unknown source"):
        Scenario.from_data({"source": "nope"})


def test_start_position_and_produced_log_validate():
    assert StartPosition("timestamp", 5).timestamp == 5.0
    with pytest.raises(ScenarioError, match="mode"):
        StartPosition("newest")
    with pytest.raises(ScenarioError, match="only mode 'timestamp' takes a timestamp"):
        StartPosition("latest", 3.0)
    with pytest.raises(ScenarioError, match="produce_interval"):
        Workload(produce_interval=-1)
    w = Workload(records=11, produce_interval=2.0, first_produce=-4.0)
    assert w.last_produce == 16.0
    s = Scenario(workload=w, start_position=StartPosition("latest"))
    assert Scenario.from_json(s.to_json()) == s
