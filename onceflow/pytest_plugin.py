"""The pytest plugin (entry point `pytest11`): scenario property tests and one-line replays.

- `onceflow.scenario_test(...)` turns a scenario strategy into a property test:
  each drawn scenario is run, every promised property is checked, and the
  test function gets the `RunResult` for assertions of its own.
- `--onceflow-replay TOKEN` re-runs every such test on exactly that scenario.
- A failure report carries a "reproduce" section with the replay command.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from onceflow.errors import OnceflowError
from onceflow.model.simulation import RunResult, run
from onceflow.properties.checks import check
from onceflow.properties.violation import Violation
from onceflow.scenario import Scenario
from onceflow.strategies import scenarios
from onceflow.token import decode, encode

__all__ = ["scenario_test"]

_REPLAY: dict[str, str | None] = {"token": None}
_PREVIOUS_PROFILE = pytest.StashKey[str]()


def scenario_test(strategy: st.SearchStrategy[Scenario] | None = None, *,
                  check_properties: bool = True,
                  **pins: Any) -> Callable[[Callable[[RunResult], None]], Callable[[], None]]:
    """Decorate `def test_x(result): ...` into a Hypothesis property test over scenarios.

    `strategy` defaults to `onceflow.strategies.scenarios(**pins)`; with
    `check_properties` every property the guarantee matrix promises is
    checked before the test body runs.
    """
    drawn = strategy if strategy is not None else scenarios(**pins)

    def decorate(fn: Callable[[RunResult], None]) -> Callable[[], None]:
        # under --onceflow-replay every scenario test runs exactly the replayed scenario
        token = _REPLAY["token"]
        source = st.just(decode(token)) if token else drawn

        def test(scenario: Scenario) -> None:
            note(f"replay: onceflow replay {encode(scenario)}")
            result = run(scenario)
            for fired in result.faults_fired:
                event(f"fault {fired['kind']}" + (f" at {fired['phase']}" if fired["phase"] else ""))
            if check_properties:
                check(result)
            fn(result)

        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(test, attr, getattr(fn, attr))
        return given(source)(test)

    return decorate


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
    _use_database(config)
    token = config.getoption("--onceflow-replay", default=None)
    if token:
        try:
            decode(token)  # a bad token is a usage error before any test runs
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


def pytest_report_header(config: pytest.Config) -> str | None:
    token = config.getoption("--onceflow-replay", default=None)
    return f"onceflow: replaying {token[:24]}..." if token else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not report.failed:
        return
    violation = _find_violation(call.excinfo.value)
    if violation is not None:
        token = violation.finding.token
        report.sections.append((
            "onceflow reproduce",
            f"onceflow replay {token}\npytest '{item.nodeid}' --onceflow-replay {token}"))


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
