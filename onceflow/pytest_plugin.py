"""The pytest plugin (entry point `pytest11`): scenario property tests and one-line replays.

- `onceflow.scenario_test(...)` turns a scenario strategy into a property test:
  each drawn scenario is run, every promised property is checked, and the
  test function gets the `RunResult` for assertions of its own.
- `--onceflow-replay TOKEN` re-runs every such test on exactly that scenario.
- A failure report carries a "reproduce" section with the replay command.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generator

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from onceflow.errors import OnceflowError, UnknownComponentError
from onceflow.model.simulation import RunResult, run
from onceflow.plugins import load_configured, plugins_for, reproduce_command
from onceflow.properties.checks import check
from onceflow.properties.violation import Violation
from onceflow.scenario import Scenario
from onceflow.strategies import scenarios
from onceflow.token import decode, encode

__all__ = ["PROFILES", "scenario_test"]

_REPLAY: dict[str, str | None] = {"token": None}
_PREVIOUS_PROFILE = pytest.StashKey[str]()

#: Hypothesis profiles for any project that uses onceflow: `--hypothesis-profile NAME`.
#: A simulation's time varies with its scenario, so none has a deadline.
PROFILES: dict[str, dict[str, Any]] = {
    # local work: few examples, the example database on, random
    "onceflow-dev": dict(max_examples=25, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow]),
    # CI: reproducible (derandomized), no database, the failing blob printed
    "onceflow-ci": dict(max_examples=100, deadline=None, derandomize=True, database=None,
                        print_blob=True, suppress_health_check=[HealthCheck.too_slow]),
    # long runs (nightly): many random examples
    "onceflow-fuzz": dict(max_examples=100_000, deadline=None, derandomize=False,
                          suppress_health_check=list(HealthCheck)),
}
for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)


def _result_parameter(params: list[inspect.Parameter], name: str) -> inspect.Parameter:
    for p in params:
        if p.name == "result":
            return p
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise OnceflowError(f"scenario_test {name}: the test needs a parameter `result` "
                            "(the RunResult of the drawn scenario)")
    return positional[0]


def scenario_test(strategy: st.SearchStrategy[Scenario] | None = None, *,
                  check_properties: bool = True,
                  **pins: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate `def test_x(result, <fixtures>...): ...` into a Hypothesis property test.

    `strategy` defaults to `onceflow.strategies.scenarios(**pins)` (pins such as
    `sink="my_sink"`, `operators=["my_op"]`, `source="my_source"`, `mode=`,
    `max_faults=`); with `check_properties` every property the guarantee matrix
    promises is checked before the test body runs.  Parameters other than `result` are pytest
    fixtures (`tmp_path`, ...).  `@hypothesis.example(scenario)` (above the
    decorator) adds an explicit scenario.
    """
    drawn = strategy if strategy is not None else scenarios(**pins)

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        params = list(inspect.signature(fn).parameters.values())
        slot = _result_parameter(params, fn.__name__)
        fixtures = [p.replace(kind=p.KEYWORD_ONLY) if p.kind == p.POSITIONAL_ONLY else p
                    for p in params if p is not slot]
        # under --onceflow-replay every scenario test runs exactly the replayed scenario;
        # it is decoded when drawn, after the test modules registered their components
        source = st.builds(_replayed) if _REPLAY["token"] else drawn

        def test(*args: Any, **kwargs: Any) -> None:
            bound = sig.bind(*args, **kwargs)
            scenario = bound.arguments.pop("scenario")
            reproduce = reproduce_command(encode(scenario), plugins_for(scenario))
            note(f"replay: {reproduce}")
            try:
                result = run(scenario)
                for fired in result.faults_fired:
                    event(f"fault {fired['kind']}"
                          + (f" at {fired['phase']}" if fired["phase"] else ""))
                if check_properties:
                    check(result)
                fn(**{slot.name: result}, **bound.arguments)
            except BaseException as exc:
                if not hasattr(exc, "_onceflow_reproduce"):
                    try:
                        exc._onceflow_reproduce = (encode(scenario), plugins_for(scenario))  # type: ignore[attr-defined]
                    except AttributeError:
                        pass
                raise

        sig = inspect.Signature(
            [p for p in fixtures if p.kind != p.KEYWORD_ONLY]
            + [inspect.Parameter("scenario", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            + [p for p in fixtures if p.kind == p.KEYWORD_ONLY])
        test.__signature__ = sig  # type: ignore[attr-defined]
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(test, attr, getattr(fn, attr))
        wrapped = given(scenario=source)(test)
        wrapped._onceflow_scenario_test = True  # type: ignore[attr-defined]
        return wrapped

    return decorate


def _replayed() -> Scenario:
    token = _REPLAY["token"]
    assert token is not None
    try:
        return decode(token)
    except OnceflowError as exc:
        pytest.fail(f"--onceflow-replay: {exc}", pytrace=False)
        raise


# -- pytest hooks -----------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("onceflow")
    group.addoption("--onceflow-replay", metavar="TOKEN", default=None,
                    help="re-run onceflow scenario tests on exactly this scenario token")
    group.addoption("--onceflow-db", metavar="DIR|URL", default=None,
                    help="Hypothesis example database for the whole run: a directory, or "
                         "redis://HOST:PORT/N (rediss:// for TLS) shared by many machines")
    group.addoption("--onceflow-corpus-name", metavar="NAME", default=None,
                    help="namespace of the corpus in a shared Redis (default: the [project] "
                         "name in the nearest pyproject.toml)")


@pytest.hookimpl(trylast=True)  # after Hypothesis's own plugin has loaded --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    try:
        load_configured(start=config.rootpath)  # entry points, [tool.onceflow] plugins
    except OnceflowError as exc:
        raise pytest.UsageError(f"onceflow: {exc}") from None
    _use_database(config)
    token = config.getoption("--onceflow-replay", default=None)
    if token:
        try:
            decode(token)  # a bad token is a usage error before any test runs
        except UnknownComponentError:
            pass  # the test modules may register it: decoded again when the tests run
        except OnceflowError as exc:
            raise pytest.UsageError(f"--onceflow-replay: {exc}") from None
        except RecursionError:  # hostile input: never an INTERNALERROR
            raise pytest.UsageError("--onceflow-replay: the token is nested too deeply") from None
    _REPLAY["token"] = token


def _use_database(config: pytest.Config) -> None:
    """--onceflow-db: every Hypothesis test of the run uses this database (unless it sets its own)."""
    spec = config.getoption("--onceflow-db", default=None)
    if not spec:
        return
    from hypothesis import settings  # noqa: PLC0415

    from onceflow.search.corpus import open_corpus  # noqa: PLC0415

    try:
        database = open_corpus(spec, name=config.getoption("--onceflow-corpus-name", default=None))
    except OnceflowError as exc:
        raise pytest.UsageError(f"--onceflow-db: {exc}") from None
    config.stash[_PREVIOUS_PROFILE] = settings.get_current_profile_name()
    settings.register_profile("onceflow-db", parent=settings.default, database=database)
    settings.load_profile("onceflow-db")


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_PREVIOUS_PROFILE, None)
    if previous is not None:  # an in-process pytest run (pytester) leaves no profile behind
        from hypothesis import settings  # noqa: PLC0415

        settings.load_profile(previous)


def pytest_itemcollected(item: pytest.Item) -> None:
    """A scenario test's fixtures are set up once and shared by its examples, as with any
    `@given` test; it says so in its docs, so Hypothesis's health check about it is off."""
    fn = getattr(item, "obj", None)
    if not getattr(fn, "_onceflow_scenario_test", False):
        return
    current = getattr(fn, "_hypothesis_internal_use_settings", None) or settings.default
    checks = list(current.suppress_health_check)
    if HealthCheck.function_scoped_fixture not in checks:
        fn._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
            current, suppress_health_check=checks + [HealthCheck.function_scoped_fixture])


def pytest_report_header(config: pytest.Config) -> str | None:
    token = config.getoption("--onceflow-replay", default=None)
    return f"onceflow: replaying {token[:24]}..." if token else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not report.failed:
        return
    found = _find_reproduce(call.excinfo.value)
    if found is not None:
        token, plugins = found
        report.sections.append((
            "onceflow reproduce",
            f"{reproduce_command(token, plugins)}\n"
            f"pytest '{item.nodeid}' --onceflow-replay {token}"))


def _find_reproduce(exc: BaseException | None) -> tuple[str, tuple[str, ...]] | None:
    violation = _find_violation(exc)
    if violation is not None:
        return violation.finding.token, violation.finding.plugins
    seen = 0
    while exc is not None and seen < 10:
        found = getattr(exc, "_onceflow_reproduce", None)
        if found is not None:
            return found
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                got = _find_reproduce(inner)
                if got is not None:
                    return got
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _find_violation(exc: BaseException | None) -> Violation | None:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, Violation):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                found = _find_violation(inner)
                if found is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
