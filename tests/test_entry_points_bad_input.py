"""Generated bad input at every entry point a user feeds, beyond tokens and scenario
files (tests/test_cli_bad_input_property.py): `onceflow store FILE`, `report merge`,
`--db` URLs and corpus folders, `--plugin` modules that fail or register broken
components, and the public Python factories.  Each ends with exit 2 and one line that
says what to do (a specific OnceflowError in Python), in bounded time.  The examples
under `# regression` are the gaps this pass found, each fixed."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import onceflow
from onceflow import Scenario, ScenarioError, TokenError, Workload
from onceflow.errors import OnceflowError, RestoreError
from onceflow.plugins import LOADED
from onceflow.registry import (OPERATORS, SINKS, SOURCES, STORES, register_operator,
                               register_sink, register_source, register_store)
from onceflow.strategies import scenario_from_seed, scenarios
from tests.test_cli_bad_input_property import assert_clean_answer, invoke, json_values
from tests.test_hostile_input import token_of_json

SETTINGS = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
_COUNTER = itertools.count()

# values a user may pass by mistake: wrong types, out of range, huge, hostile text
bad_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["\n", "Traceback (most recent call last):", "x" * 5000, [], {}, [[]],
                     ("a",), b"bytes", object()]),
    st.lists(st.integers(), max_size=3))


@pytest.fixture()
def registries() -> Iterator[None]:
    """Whatever a generated plugin registers (and the modules loaded by name, which
    every later replay command would name) is forgotten after the test."""
    saved = [(r, dict(r)) for r in (OPERATORS, SINKS, SOURCES, STORES)]
    loaded = list(LOADED)
    try:
        yield
    finally:
        for registry, before in saved:
            registry.clear()
            registry.update(before)
        LOADED[:] = loaded


# -- `onceflow store FILE`: directories, junk, not SQLite ---------------------------------------

@SETTINGS
@given(content=st.binary(max_size=2000) | st.sampled_from([b"", b"SQLite format 3\x00" + b"\x00" * 80,
                                                           b"SQLite format 3\x00" + b"\xff" * 4000]),
       as_dir=st.booleans())
def test_store_files_that_are_not_kept_databases(tmp_path_factory: Any, content: bytes,
                                                 as_dir: bool) -> None:
    root = tmp_path_factory.mktemp("store")
    path = root / "kept.sqlite"
    if as_dir:
        path.mkdir()
        (path / "junk").write_bytes(content)
    else:
        path.write_bytes(content)
    assert_clean_answer(["store", str(path)], must_fail=True)


# -- `onceflow report merge`: files that are not fuzz reports -----------------------------------

@SETTINGS
@given(data=json_values)
def test_report_merge_of_generated_json(tmp_path_factory: Any, data: Any) -> None:
    path = tmp_path_factory.mktemp("r") / "report.json"
    path.write_text(json.dumps(data))
    assert_clean_answer(["report", "merge", str(path)], must_fail=True)


# -- `--db` URLs and corpus folders ---------------------------------------------------------------

url_parts = st.text(alphabet="abcxyz0123456789:@/?=&%.-_ \n", max_size=20)


@SETTINGS
@given(scheme=st.sampled_from(["redis://", "rediss://", "http://", "ftp://", "unix://", "://"]),
       host=st.sampled_from(["", "127.0.0.1", "127.0.0.1:1", "[::1]:1", ":@", "127.0.0.1:99999999",
                             "127.0.0.1:-1", "127.0.0.1:port"]),
       rest=url_parts, command=st.sampled_from(["status", "fuzz", "mutants"]))
@example(scheme="redis://", host="127.0.0.1:1", rest="/x", command="status")
def test_bad_db_urls(scheme: str, host: str, rest: str, command: str) -> None:
    url = scheme + host + rest
    # only URLs that reach no server: port 1 (nothing listens), or no usable host
    assume(scheme.startswith("redis") is False or host not in ("127.0.0.1", "[::1]:1")
           or "127.0.0.1:1" in url)
    argv = {"status": ["status", "--db", url],
            "fuzz": ["fuzz", "--db", url, "--budget", "1s"],
            "mutants": ["mutants", "--db", url, "--budget", "1s", "--only",
                        "no-final-checkpoint", "--no-baseline"]}[command]
    assert_clean_answer(argv, must_fail=True)


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(files=st.dictionaries(st.text(alphabet="abc01/", min_size=1, max_size=12)
                             .filter(lambda p: not p.startswith("/") and "//" not in p
                                     and not p.endswith("/")),
                             st.binary(max_size=300), max_size=6))
def test_a_corpus_folder_full_of_junk_is_read_past(tmp_path_factory: Any,
                                                   files: dict[str, bytes]) -> None:
    db = tmp_path_factory.mktemp("corpus")
    for name, content in files.items():
        target = db / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            continue
    code, out, err, _ = invoke(["fuzz", "--db", str(db), "--budget", "1s", "--seed", "1",
                                "--json"])
    # junk is no finding and no error: the run goes on (or refuses in one line)
    assert code in (0, 2), (code, err[-500:])
    assert "Traceback" not in out + err
    if code == 0:
        assert json.loads(out)["status"] == "clean"


# -- `--plugin`: modules that do not import, raise at import, or register broken parts -------------

def _plugin(root: Path, body: str) -> str:
    name = f"gen_plugin_{next(_COUNTER)}"
    (root / f"{name}.py").write_text(textwrap.dedent(body))
    return name


import_failures = st.one_of(
    st.builds(lambda m: f"raise RuntimeError({m!r})\n", st.text(max_size=60)),
    st.builds(lambda m: f"raise SystemExit({m!r})\n", st.one_of(st.integers(-3, 300), st.text(max_size=10))),
    st.builds(lambda m: f"raise KeyError({m!r})\n", st.text(max_size=10)),
    st.sampled_from(["def (:\n", "import no_such_module_anywhere\n", "x = 1 / 0\n",
                     "def f():\n    return f()\nf()\n", "raise MemoryError\n",
                     "import sys\nsys.modules.clear\nraise ValueError('\\n' * 50)\n"]))


@SETTINGS
@given(body=import_failures)
def test_plugins_that_fail_to_import(tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch,
                                     registries: None, body: str) -> None:
    root = tmp_path_factory.mktemp("plug")
    monkeypatch.chdir(root)
    name = _plugin(root, body)
    try:
        for argv in (["--plugin", name, "run"], ["replay", "of1.x", "--plugin", name]):
            assert_clean_answer(argv, must_fail=True)
    finally:
        sys.modules.pop(name, None)


REGISTER = {
    "operator": ("register_operator", {"name": "'gen_op'", "factory": "lambda p: None",
                                       "fold": "lambda p, r, s: r"}),
    "sink": ("register_sink", {"name": "'gen_sink'", "factory": "lambda: None",
                               "kind": "'append'"}),
    "source": ("register_source", {"name": "'gen_source'", "factory": "lambda: None"}),
    "store": ("register_store", {"name": "'gen_store'", "factory": "lambda **kw: None"}),
}


@SETTINGS
@given(what=st.sampled_from(sorted(REGISTER)), data=st.data())
def test_plugins_that_register_contradictory_components(
        tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch, registries: None,
        what: str, data: Any) -> None:
    function, base = REGISTER[what]
    keyword = data.draw(st.sampled_from(sorted(base) + ["keyed", "ids", "params", "kind",
                                                        "exactly_once", "enumerator",
                                                        "keeps_files", "no_such_keyword"]))
    value = data.draw(json_values)
    kwargs = dict(base, **{keyword: repr(value)})
    root = tmp_path_factory.mktemp("plug")
    monkeypatch.chdir(root)
    name = _plugin(root, f"from onceflow.registry import {function}\n"
                         f"{function}({', '.join(f'{k}={v}' for k, v in kwargs.items())})\n")
    try:
        assert_clean_answer(["--plugin", name, "status"], must_fail=True)
    finally:
        sys.modules.pop(name, None)


built = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                  st.sampled_from(["object()", "type('X', (), {'state_kind': 'weird', "
                                   "'process': lambda self, r, o: None})()",
                                   "type('X', (), {'state_kind': None})()"]).map(
                                       lambda src: ("code", src)))


def _source_of(value: Any) -> str:
    return value[1] if isinstance(value, tuple) else repr(value)


@SETTINGS
@given(what=st.sampled_from(["operator", "sink", "source", "store"]), value=built)
def test_plugins_whose_factories_build_something_else(
        tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch, registries: None,
        what: str, value: Any) -> None:
    src = _source_of(value)
    body = {
        "operator": f"register_operator('gen_op', factory=lambda p: {src}, "
                    "fold=lambda p, r, s: list(r), ids='keep')",
        "sink": f"register_sink('gen_sink', factory=lambda: {src}, kind='append')",
        "source": f"register_source('gen_source', factory=lambda: {src})",
        "store": f"register_store('gen_store', factory=lambda **kw: {src})",
    }[what]
    pin = {"operator": ["--operator", "gen_op"], "sink": ["--sink", "gen_sink"],
           "source": ["--source", "gen_source"], "store": ["--store", "gen_store"]}[what]
    root = tmp_path_factory.mktemp("plug")
    monkeypatch.chdir(root)
    name = _plugin(root, "from onceflow.registry import register_operator, register_sink, "
                         f"register_source, register_store\n{body}\n")
    try:
        assert_clean_answer(["--plugin", name, "run", "--seed", "3", *pin], must_fail=True)
    finally:
        sys.modules.pop(name, None)


# -- the public Python factories: keyword-only, validated eagerly ---------------------------------

FACTORIES = {
    "scenarios": (scenarios, ["mode", "sink", "operators", "max_records", "max_faults",
                              "max_parallelism", "mutants", "store", "source"]),
    "scenario_from_seed": (lambda **kw: scenario_from_seed(kw.pop("seed", 1), **kw),
                           ["seed", "mode", "sink", "operators", "max_records", "max_faults",
                            "max_parallelism", "mutants", "store", "source"]),
    "scenario_test": (lambda **kw: onceflow.scenario_test(**kw),
                      ["mode", "sink", "max_records", "max_faults", "store", "source"]),
    "register_operator": (lambda **kw: register_operator(**{
        "name": "probe_op", "factory": lambda p: None, "fold": lambda p, r, s: r, **kw}),
        ["name", "factory", "fold", "keyed", "flush", "params", "ids", "aggregate",
         "order_dependent_state", "state_view", "param_bounds", "param_name", "output_bound"]),
    "register_sink": (lambda **kw: register_sink(**{"name": "probe_sink",
                                                    "factory": lambda: None, **kw}),
                      ["name", "factory", "kind", "exactly_once", "global_committer"]),
    "register_source": (lambda **kw: register_source(**{"name": "probe_src",
                                                        "factory": lambda: None, **kw}),
                        ["name", "factory", "enumerator"]),
    "register_store": (lambda **kw: register_store(**{"name": "probe_store",
                                                      "factory": lambda **k: None, **kw}),
                       ["name", "factory", "keeps_files"]),
    "decode_token": (lambda **kw: onceflow.decode_token(kw["token"]), ["token"]),
    "encode_token": (lambda **kw: onceflow.encode_token(kw["scenario"]), ["scenario"]),
}


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(FACTORIES)), data=st.data())
@example(name="scenarios", data=None).via("regression: sink=[] was a TypeError")
def test_public_factories_refuse_bad_values_with_onceflow_errors(
        registries: None, name: str, data: Any) -> None:
    factory, keywords = FACTORIES[name]
    if data is None:
        keyword, value = "sink", []
    else:
        keyword = data.draw(st.sampled_from(keywords))
        value = data.draw(bad_values)
    try:
        factory(**{keyword: value})
    except OnceflowError as exc:
        text = str(exc)
        assert "\n" not in text and len(text) < 1000, text
    # a value that happens to be valid (e.g. max_faults=0) is accepted


def test_the_factories_are_keyword_only() -> None:
    for fn in (scenarios, register_operator, register_sink, register_source, register_store):
        with pytest.raises(TypeError):
            fn("positional")  # type: ignore[misc]


# regression ------------------------------------------------------------------------------------

def test_regression_a_factory_that_builds_no_operator_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registries: None) -> None:
    monkeypatch.chdir(tmp_path)
    name = _plugin(tmp_path, "from onceflow.registry import register_operator, register_sink\n"
                             "register_operator('gen_op', factory=lambda p: 42, "
                             "fold=lambda p, r, s: list(r), ids='keep')\n"
                             "register_sink('gen_sink', factory=lambda: 42, kind='append')\n")
    try:
        for pin in (["--operator", "gen_op"], ["--sink", "gen_sink"]):
            code, _, err, _ = invoke(["--plugin", name, "run", *pin])
            # was: internal error AttributeError: 'int' object has no attribute 'state_kind'
            assert code == 2 and "internal error" not in err, err
            assert "not an operator (missing state_kind, process)" in err, err
    finally:
        sys.modules.pop(name, None)


def test_regression_pins_of_the_wrong_type_are_scenario_errors() -> None:
    for kwargs in ({"sink": []}, {"store": []}, {"mutants": None}, {"mode": []}):
        with pytest.raises(ScenarioError):
            scenarios(**kwargs)
        with pytest.raises(ScenarioError):
            scenario_from_seed(1, **kwargs)


def test_regression_restore_and_encode_of_the_wrong_thing() -> None:
    with pytest.raises(RestoreError, match="RunResult"):
        onceflow.restore(None, None)  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="Scenario"):
        onceflow.encode_token(None)  # type: ignore[arg-type]


def test_regression_a_number_of_thousands_of_digits_says_what_to_fix() -> None:
    token = token_of_json('{"workload":{"records":' + "9" * 5000 + "}}")
    code, _, err, _ = invoke(["replay", token])
    assert code == 2 and "thousands of digits" in err and "set_int_max_str_digits" not in err, err
    with pytest.raises(ScenarioError, match="thousands of digits"):
        Scenario.from_json('{"seed": ' + "1" * 5000 + "}")


def test_regression_an_empty_corpus_name_is_refused(tmp_path: Path) -> None:
    # was: accepted with a directory corpus, and the run went on
    assert_clean_answer(["fuzz", "--corpus-name", "", "--db", str(tmp_path / "db"),
                         "--budget", "1s"], must_fail=True)


def test_a_million_deep_scenario_file_and_a_billion_record_token(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 1_000_000)
    assert_clean_answer(["replay", str(path)], must_fail=True)
    big = token_of_json(json.dumps({"workload": {"records": 10**9}}))
    assert_clean_answer(["replay", big], must_fail=True)
    with pytest.raises(ScenarioError):
        Scenario(workload=Workload(records=10**9))
