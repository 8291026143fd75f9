"""Time-boxed fuzzing: Hypothesis draws scenarios, `check` judges them, failures shrink.

The fuzzer uses settings of its own (never the `ci` profile Hypothesis loads
when `CI` is set): random, not derandomized, with a directory example
database as the failure corpus, so a failure found in one run is replayed
first in the next.  It runs in batches so that a time budget can end it
between examples; `--seed` makes the batch seeds reproducible.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from attrs import define, field, frozen
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase

from onceflow.stores import StoreError
from onceflow.errors import OnceflowError, OperatorError
from onceflow.model.simulation import RunResult, run
from onceflow.properties.checks import check
from onceflow.properties.violation import Finding, Violation
from onceflow.scenario import Scenario
from onceflow.search.corpus import open_corpus as _open_corpus
from onceflow.shrinking import shrink as greedy_shrink
from onceflow.shrinking import shrink_crash as greedy_shrink_crash
from onceflow.strategies import scenario_from_seed, scenarios

__all__ = ["FuzzOutcome", "FuzzStats", "baseline", "fuzz", "open_corpus"]

BATCH = 60
PROGRESS_EVERY = 0.5
POLISH_SECONDS = 30.0


@define
class FuzzStats:
    """Running counters of a fuzz run."""

    scenarios: int = 0
    events: int = 0
    restores: int = 0
    violations: int = 0
    phases: Counter[str] = field(factory=Counter)
    started: float = field(factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, result: RunResult) -> None:
        self.scenarios += 1
        self.events += len(result.trace)
        for fired in result.faults_fired:
            self.phases[f"{fired['kind']}:{fired['phase']}" if fired["phase"] else str(fired["kind"])] += 1

    def merge(self, other: "FuzzStats") -> None:
        self.scenarios += other.scenarios
        self.events += other.events
        self.restores += other.restores
        self.violations += other.violations
        self.phases.update(other.phases)


@frozen
class FuzzOutcome:
    """How a fuzz run ended: clean, violation or interrupted."""

    status: str
    stats: FuzzStats
    elapsed: float
    finding: Finding | None = None
    scenario: Scenario | None = None
    first_size: dict[str, int] | None = None
    first_seconds: float | None = None
    first_scenarios: int | None = None
    shrink_seconds: float | None = None
    #: a stop request (Ctrl-C, SIGTERM, a fleet's stop) ended the shrinking of `finding`
    #: early: it is the smallest counterexample found so far, and the corpus holds it
    interrupted: bool = False

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "scenarios": self.stats.scenarios,
            "events": self.stats.events,
            "restores_checked": self.stats.restores,
            "phases_hit": dict(sorted(self.stats.phases.items())),
            "elapsed_s": round(self.elapsed, 3),
        }
        if self.finding is not None and self.scenario is not None:
            f = self.finding
            if self.interrupted:
                data["interrupted"] = True
            data["violation"] = {
                "property": f.property, "anomaly": f.anomaly, "summary": f.summary,
                "timeline": f.timeline, "snapshot": f.snapshot, "token": f.token,
                "digest": f.digest, "faults": list(f.faults), "replay": f.replay,
                "plugins": list(f.plugins),
                "records": [r.to_data() for r in f.records],
                "size_before": self.first_size, "size_after": self.scenario.size,
                "seconds_to_first": self.first_seconds,
                "scenarios_to_first": self.first_scenarios,
                "shrink_seconds": self.shrink_seconds,
            }
        return data


def open_corpus(path: str | Path | None, *, name: str | None = None,
                fallback: str | Path | None = None) -> ExampleDatabase | None:
    """The failure corpus at `path`: a directory (created if missing), a `redis://` URL
    (see `onceflow.search.corpus`), or None for no corpus."""
    return _open_corpus(path, name=name, fallback=fallback)


def _corpus_key(mode: str | None, sink: str | None, mutants: tuple[str, ...],
                store: str = "memory", operators: tuple[str, ...] | None = None,
                source: str | None = None) -> bytes:
    extra = "" if store == "memory" else f"|{store}"
    ops = "" if operators is None else "|ops=" + ",".join(operators)
    ops += "" if source is None else f"|source={source}"
    return f"onceflow-fuzz-v1|{mode}|{sink}|{','.join(mutants)}{extra}{ops}".encode()


def _mixed(mode: str | None, sink: str | None, mutants: tuple[str, ...],
           store: str = "memory", operators: tuple[str, ...] | None = None,
           source: str | None = None) -> Any:
    """Hypothesis's structured draws, mixed with whole scenarios from plain seeds.

    Hypothesis biases every integer towards small and boundary values, which
    starves windows that need middling ones (a savepoint mid-run, a crash a few
    ms after it); scenarios drawn from a seed keep the generator's own
    distribution.  Either kind is shrunk afterwards by the greedy pass.
    """
    structured = scenarios(mode=mode, sink=sink, operators=operators, mutants=mutants,
                           store=store, source=source)  # validates the pins
    seeded = st.integers(0, 2**31 - 1).map(
        lambda n: scenario_from_seed(n, mode=mode, sink=sink, operators=operators,
                                     mutants=mutants, store=store, source=source))
    return st.one_of(structured, seeded)


class _StopShrinking(KeyboardInterrupt):
    """Raised through Hypothesis when a stop is requested while a finding is shrunk:
    Hypothesis has already saved each smaller failing example to the corpus."""


def fuzz(*, budget: float, mode: str | None = None, sink: str | None = None,
         operators: tuple[str, ...] | None = None, mutants: tuple[str, ...] = (),
         db: str | Path | ExampleDatabase | None = None,
         seed: int | None = None, shrink: bool = True,
         on_progress: Callable[[FuzzStats], None] | None = None,
         should_stop: Callable[[], bool] | None = None, store: str = "memory",
         corpus_name: str | None = None, fallback: str | Path | None = None,
         source: str | None = None) -> FuzzOutcome:
    """Fuzz for `budget` seconds or until a violation; shrink it and return the outcome.

    `store` names the external system every scenario writes to (e.g. "sqlite"); `db` is
    the corpus: a directory, a `redis://` URL (namespaced by `corpus_name`, kept in
    `fallback` while Redis is away) or an open Hypothesis database; `operators` pins the
    operators between source and sink, `source` the registered source.

    Nothing found is lost: a stop request (`should_stop()`, a KeyboardInterrupt) while
    a violation is being shrunk ends the shrinking and returns the smallest one found
    so far (`FuzzOutcome.interrupted`); the corpus holds it too."""
    strategy = _mixed(mode, sink, mutants, store, operators, source)
    corpus = db if isinstance(db, ExampleDatabase) else open_corpus(db, name=corpus_name,
                                                                    fallback=fallback)
    stats = FuzzStats()
    deadline = stats.started + budget
    state: dict[str, Any] = {"first": None, "last": None, "tick": 0.0, "store_error": None,
                             "crashed": False, "crash": None}

    def body(scenario: Scenario) -> None:
        failing = state["first"] is not None or state["crashed"]
        if failing and should_stop is not None and should_stop():
            raise _StopShrinking
        if state["store_error"] is not None or (
                not failing and (time.monotonic() > deadline or (should_stop and should_stop()))):
            return
        try:
            result = run(scenario)
        except StoreError as exc:
            # the external system failed, not the job: stop without a verdict on this
            # scenario (and keep it out of the corpus); what was found stays found
            state["store_error"] = exc
            return
        if not failing:
            stats.add(result)

        def counted(_: RunResult) -> None:
            if not failing:
                stats.restores += 1
        try:
            check(result, on_restore=counted)
        except StoreError as exc:
            state["store_error"] = exc
            return
        except OperatorError as exc:
            # a user component crashed: Hypothesis shrinks the scenario that makes it
            # crash as it shrinks a violation; the report replays the one it keeps
            state["crashed"] = True
            exc.scenario = scenario
            state["crash"] = exc
            raise
        except Violation as violation:
            if state["first"] is None:
                state["first"] = (scenario.size, stats.elapsed, stats.scenarios, time.monotonic())
                stats.violations += 1
            state["last"] = (scenario, violation)
            raise
        finally:
            now = time.monotonic()
            if on_progress is not None and now - state["tick"] >= PROGRESS_EVERY:
                state["tick"] = now
                on_progress(stats)

    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    batch = 0
    try:
        while (time.monotonic() < deadline and not (should_stop and should_stop())
               and state["store_error"] is None):
            config = settings(database=corpus, max_examples=BATCH, deadline=None,
                              derandomize=False, suppress_health_check=list(HealthCheck),
                              print_blob=False, phases=phases, report_multiple_bugs=False,
                              verbosity=Verbosity.quiet)
            def example(scenario: Scenario) -> None:
                body(scenario)
            test = given(strategy)(config(example))
            test._hypothesis_internal_database_key = _corpus_key(mode, sink, mutants, store, operators, source)  # type: ignore[attr-defined]
            if seed is not None:
                # what @hypothesis.seed sets, without the `database=None` it adds:
                # a seeded fuzz run keeps its corpus too
                test._hypothesis_internal_use_seed = seed * 100_003 + batch  # type: ignore[attr-defined]
            batch += 1
            test()
    except KeyboardInterrupt:
        # stopped while shrinking: report what was found so far, unpolished
        if state["last"] is not None:
            return _violation_outcome(stats, state, state["last"][1], polish=False,
                                      interrupted=True)
        if state["crash"] is not None:
            raise state["crash"] from None
        return FuzzOutcome("interrupted", stats, stats.elapsed)
    except OperatorError as exc:
        # Hypothesis keeps the crash with the fewest draws; simplify the scenario itself
        if shrink and exc.scenario is not None:
            raise greedy_shrink_crash(exc, max_seconds=POLISH_SECONDS,
                                      keep=tuple(operators or ())) from None
        raise
    except Violation as violation:
        return _violation_outcome(stats, state, violation, polish=shrink,
                                  keep=tuple(operators or ()), should_stop=should_stop)
    except BaseExceptionGroup as group:  # several distinct failures: report the first
        found = next((e for e in _leaves(group) if isinstance(e, Violation)), None)
        if found is None:
            raise
        return _violation_outcome(stats, state, found, polish=shrink,
                                  keep=tuple(operators or ()), should_stop=should_stop)
    if state["last"] is not None:  # found, and the store failed while shrinking it
        return _violation_outcome(stats, state, state["last"][1], polish=False)
    if state["store_error"] is not None:
        raise state["store_error"]
    if on_progress is not None:
        on_progress(stats)
    stopped = should_stop is not None and should_stop()
    return FuzzOutcome("interrupted" if stopped else "clean", stats, stats.elapsed)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


def _violation_outcome(stats: FuzzStats, state: dict[str, Any], violation: Violation, *,
                       polish: bool, keep: tuple[str, ...] = (),
                       should_stop: Callable[[], bool] | None = None,
                       interrupted: bool = False) -> FuzzOutcome:
    size, first_s, first_n, first_t = state["first"] or (None, None, None, time.monotonic())
    scenario = state["last"][0] if state["last"] else None
    finding = violation.finding
    stopped = interrupted or (should_stop is not None and should_stop())
    if (polish and not stopped and scenario is not None
            and state["last"][1].finding.token == finding.token):
        # Hypothesis shrinks the draws; the greedy pass then simplifies the scenario
        # itself (it can trade time for records, which no single draw does)
        try:
            polished = greedy_shrink(scenario, finding=finding, max_seconds=POLISH_SECONDS,
                                     keep=keep, should_stop=should_stop)
        except StoreError:
            polished = None  # the store failed while polishing: keep what Hypothesis shrank
        except KeyboardInterrupt:
            polished, stopped = None, True  # a second Ctrl-C: keep what Hypothesis shrank
        if polished is not None:
            scenario, finding = polished.scenario, polished.finding
        stopped = stopped or (should_stop is not None and should_stop())
    return FuzzOutcome("violation", stats, stats.elapsed, finding=finding,
                       scenario=scenario, first_size=size, first_seconds=first_s,
                       first_scenarios=first_n, shrink_seconds=time.monotonic() - first_t,
                       interrupted=stopped)


def baseline(*, budget: float, mutants: tuple[str, ...] = (), mode: str | None = None,
             sink: str | None = None, operators: tuple[str, ...] | None = None,
             start: int = 0, source: str | None = None) -> FuzzOutcome:
    """The same generator driven by plain random seeds: no database, no shrinking."""
    stats = FuzzStats()
    deadline = stats.started + budget
    n = start
    while time.monotonic() < deadline:
        scenario = scenario_from_seed(n, mode=mode, sink=sink, operators=operators,
                                      mutants=mutants, source=source)
        n += 1
        result = run(scenario)
        stats.add(result)
        try:
            check(result, on_restore=lambda _r: setattr(stats, "restores", stats.restores + 1))
        except Violation as violation:
            stats.violations += 1
            return FuzzOutcome("violation", stats, stats.elapsed, finding=violation.finding,
                               scenario=scenario, first_size=scenario.size,
                               first_seconds=stats.elapsed, first_scenarios=stats.scenarios,
                               shrink_seconds=0.0)
    return FuzzOutcome("clean", stats, stats.elapsed)
