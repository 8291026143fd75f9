"""What `onceflow fuzz` and `onceflow mutants` show: progress while running, tables after.

Progress is a rich live display on a terminal and a plain status line every
few seconds elsewhere (CI logs).
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import statistics
import sys
import threading
import time
from typing import Any, Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from onceflow.faults.plan import CRASH_PHASES
from onceflow.fuzz import FuzzOutcome, FuzzStats, baseline, fuzz, open_corpus
from onceflow.mutants import MUTANTS
from onceflow.strategies import scenarios

__all__ = ["run_fuzz", "run_mutants"]

PLAIN_EVERY = 5.0


def _stdout() -> Console:
    """stdout for tables: as wide as needed when it is a log, not a terminal."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def _status_line(stats: FuzzStats) -> str:
    rate = stats.scenarios / stats.elapsed if stats.elapsed else 0.0
    phases = sum(1 for p in CRASH_PHASES if stats.phases.get(f"phase_crash:{p}"))
    return (f"[{stats.elapsed:6.1f}s] scenarios {stats.scenarios} ({rate:.0f}/s), "
            f"events {stats.events:,}, restores checked {stats.restores}, "
            f"crash phases hit {phases}/{len(CRASH_PHASES)}, violations {stats.violations}")


def _progress_table(stats: FuzzStats) -> Table:
    table = Table(title="onceflow fuzz", show_header=False, box=None)
    rate = stats.scenarios / stats.elapsed if stats.elapsed else 0.0
    for label, value in (("elapsed", f"{stats.elapsed:.1f} s"),
                         ("scenarios", f"{stats.scenarios} ({rate:.0f}/s)"),
                         ("simulated events", f"{stats.events:,}"),
                         ("restores checked", str(stats.restores)),
                         ("violations", str(stats.violations))):
        table.add_row(label, value)
    hits = ", ".join(f"{k} {v}" for k, v in sorted(stats.phases.items())) or "none yet"
    table.add_row("faults fired", hits)
    return table


class _Reporter:
    """Feeds progress to a rich live display (terminal) or plain lines (elsewhere)."""

    def __init__(self, quiet: bool) -> None:
        self.err = Console(stderr=True)
        self.live: Live | None = None
        self.quiet = quiet
        self.last_plain = 0.0
        self.last_violations = 0
        if not quiet and self.err.is_terminal:
            self.live = Live(console=self.err, refresh_per_second=4, transient=True)
            self.live.start()

    def update(self, stats: FuzzStats) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.update(_progress_table(stats))
        elif (time.monotonic() - self.last_plain >= PLAIN_EVERY
              or stats.violations != self.last_violations):  # a find is logged at once
            self.last_plain = time.monotonic()
            self.last_violations = stats.violations
            print(_status_line(stats), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _worker(index: int, kwargs: dict[str, Any], queue: Any, stop: Any) -> None:
    try:
        _work(index, kwargs, queue, stop)
    except KeyboardInterrupt:
        # a stop outside the fuzz loop (while starting or reporting, or the parent ending
        # and terminating it): quietly, since a find is already in the corpus
        return


def _work(index: int, kwargs: dict[str, Any], queue: Any, stop: Any) -> None:
    fleet = kwargs.pop("fleet", None)
    corpus = open_corpus(kwargs.pop("db"), name=kwargs.pop("corpus_name", None),
                         fallback=kwargs.pop("fallback", None))
    publisher = _publisher(corpus, fleet, suffix=f"-w{index}")

    def progress(stats: FuzzStats) -> None:
        queue.put(("progress", index, stats))
        if publisher is not None:
            publisher.update(stats)
    try:
        # Ctrl-C reaches every process of the group, SIGTERM may too: each worker stops
        # as the single fuzzer does, and reports what it found
        with _StopOnInterrupt() as local:
            outcome = fuzz(**kwargs, db=corpus, on_progress=progress,
                           should_stop=_stopper(lambda: stop.is_set() or local.is_set(),
                                                publisher))
    except KeyboardInterrupt:
        return
    outcome = _settle(outcome, publisher, fleet)
    if outcome.status == "violation":
        stop.set()
    if publisher is not None:
        queue.put(("corpus", index, corpus.describe()))
    queue.put(("done", index, outcome))


def _fuzz_parallel(kwargs: dict[str, Any], workers: int,
                   update: Callable[[FuzzStats], None],
                   corpora: dict[int, dict[str, Any]] | None = None) -> FuzzOutcome:
    ctx = multiprocessing.get_context("fork")
    queue, stop = ctx.Queue(), ctx.Event()
    seed = kwargs.pop("seed")
    procs = []
    for w in range(workers):
        args = dict(kwargs, seed=None if seed is None else seed * 1000 + w)
        proc = ctx.Process(target=_worker, args=(w, args, queue, stop), daemon=True)
        proc.start()
        procs.append(proc)
    latest: dict[int, FuzzStats] = {}
    outcomes: dict[int, FuzzOutcome] = {}
    started = time.monotonic()
    interrupted = False

    def take(kind: str, index: int, payload: Any) -> None:
        if kind == "progress":
            latest[index] = payload
        elif kind == "corpus":
            if corpora is not None:
                corpora[index] = payload
        else:
            outcomes[index] = payload
            latest[index] = payload.stats

    # SIGTERM to this process alone (a CI timeout, `kill`) stops the workers as Ctrl-C does
    previous = (signal.signal(signal.SIGTERM, signal.default_int_handler)
                if threading.current_thread() is threading.main_thread() else None)
    try:
        try:
            while len(outcomes) < workers and any(p.is_alive() for p in procs) \
                    or not queue.empty():
                try:
                    kind, index, payload = queue.get(timeout=0.5)
                except Exception:  # queue.Empty
                    continue
                take(kind, index, payload)
                if kind != "corpus":
                    update(_merged(latest, started))
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            # the workers stop (a finding being shrunk is reported as it stands): wait
            # for their outcomes, reading the queue so that none blocks on a full pipe
            try:
                until = time.monotonic() + WORKER_GRACE
                while time.monotonic() < until and (
                        any(p.is_alive() for p in procs) or not queue.empty()):
                    try:
                        take(*queue.get(timeout=0.2))
                    except Exception:  # queue.Empty
                        continue
            except KeyboardInterrupt:
                pass  # asked again: report what has arrived
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for proc in procs:
        proc.join(timeout=5)
    total = _merged(latest, started)
    found = next((o for o in outcomes.values() if o.status == "violation"), None)
    if found is not None:
        return FuzzOutcome("violation", total, total.elapsed, finding=found.finding,
                           scenario=found.scenario, first_size=found.first_size,
                           first_seconds=found.first_seconds,
                           first_scenarios=found.first_scenarios,
                           shrink_seconds=found.shrink_seconds,
                           interrupted=found.interrupted)
    if any(o.status == "stopped" for o in outcomes.values()):
        return FuzzOutcome("stopped", total, total.elapsed)
    return FuzzOutcome("interrupted" if interrupted else "clean", total, total.elapsed)


def _merged(latest: dict[int, FuzzStats], started: float) -> FuzzStats:
    total = FuzzStats(started=started)
    for stats in latest.values():
        total.merge(stats)
    return total


class _StopOnInterrupt:
    """The first Ctrl-C (or SIGTERM) asks the fuzzer to stop between scenarios, or to
    stop shrinking and report what it found; a second one interrupts.

    A KeyboardInterrupt raised at an arbitrary moment can land in a callback
    where Python ignores it (Hypothesis runs code in a gc callback), so the
    first signal only sets a flag the fuzz loop polls.  SIGTERM (a CI runner's
    timeout, `kill`) is handled as Ctrl-C, so that nothing found is lost.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.flag = False
        self.previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        return self.flag

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def __enter__(self) -> "_StopOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        self.previous = {}


def _publisher(corpus: Any, fleet: dict[str, Any] | None, suffix: str = "") -> Any:
    """A started FleetPublisher when the corpus is a shared Redis, else None."""
    from onceflow.search.corpus import SharedCorpus  # noqa: PLC0415
    from onceflow.search.fleet import FleetPublisher, worker_id  # noqa: PLC0415

    if not isinstance(corpus, SharedCorpus) or fleet is None:
        return None
    return FleetPublisher(corpus.remote.redis, name=corpus.name,
                          worker=(fleet.get("worker") or worker_id()) + suffix,
                          pins=fleet.get("pins"), stop_on_first=fleet.get("stop_on_first", False)
                          ).start()


def _stopper(local: Callable[[], bool], publisher: Any) -> Callable[[], bool]:
    if publisher is None:
        return local
    return lambda: local() or publisher.should_stop()


def _settle(outcome: FuzzOutcome, publisher: Any, fleet: dict[str, Any] | None) -> FuzzOutcome:
    """Publish the outcome to the fleet; a run ended by another worker's violation is 'stopped'."""
    if publisher is None:
        return outcome
    from attrs import evolve  # noqa: PLC0415

    if outcome.finding is not None:
        publisher.found(outcome.finding)
    if outcome.status == "interrupted" and publisher.stopped_by is not None:
        outcome = evolve(outcome, status="stopped")
        by = publisher.stopped_by
        print(f"onceflow: stopped (--stop-on-first): worker {by.get('worker')} of the fleet found "
              f"a violation: {by.get('replay')}", file=sys.stderr)
    publisher.update(outcome.stats)
    if not publisher.finish(outcome.status) and publisher.unpublished:
        print("onceflow: warning: Redis is away: the violation was not published to the fleet; "
              "it is in this run's report and in the local fallback corpus", file=sys.stderr)
    return outcome


def _combined(corpora: list[dict[str, Any]]) -> dict[str, Any]:
    """The corpus as seen by several local workers."""
    out = dict(corpora[0])
    for key in ("kept_locally", "pushed", "skipped_corrupt"):
        out[key] = sum(c[key] for c in corpora)
    out["redis_away"] = any(c["redis_away"] for c in corpora)
    return out


#: seconds the workers get to report after a stop request (a second Ctrl-C cuts it short)
WORKER_GRACE = 60.0

EXIT = {"clean": 0, "violation": 1, "stopped": 1, "interrupted": 130}


def run_fuzz(*, budget: float, mode: str | None, sink: str | None, mutants: tuple[str, ...],
             db: str | None, seed: int | None, workers: int, as_json: bool,
             store: str = "memory", operators: tuple[str, ...] | None = None,
             corpus_name: str | None = None, fallback: str | None = None,
             stop_on_first: bool = False, worker: str | None = None,
             source: str | None = None) -> int:
    from onceflow.search.corpus import SharedCorpus  # noqa: PLC0415

    # bad pins fail here
    scenarios(mode=mode, sink=sink, operators=operators, mutants=mutants, store=store,
              source=source)
    corpus = open_corpus(db, name=corpus_name, fallback=fallback)  # a bad --db fails here
    fleet = {"worker": worker, "stop_on_first": stop_on_first,
             "pins": {"mode": mode, "sink": sink, "mutants": list(mutants), "store": store,
                      "operators": list(operators) if operators is not None else None,
                      "source": source}}
    # progress goes to stderr even with --json (stdout then holds only the object)
    reporter = _Reporter(quiet=False)
    kwargs: dict[str, Any] = dict(budget=budget, mode=mode, sink=sink, operators=operators,
                                  source=source,
                                  mutants=mutants, db=db, seed=seed, store=store,
                                  corpus_name=corpus_name,
                                  fallback=fallback)
    described = None
    try:
        if workers == 1:
            publisher = _publisher(corpus, fleet)
            with _StopOnInterrupt() as stop:
                def progress(stats: FuzzStats) -> None:
                    reporter.update(stats)
                    if publisher is not None:
                        publisher.update(stats)
                outcome = fuzz(**dict(kwargs, db=corpus), on_progress=progress,
                               should_stop=_stopper(stop.is_set, publisher))
            outcome = _settle(outcome, publisher, fleet)
            if isinstance(corpus, SharedCorpus):
                described = corpus.describe()
        else:
            corpora: dict[int, dict[str, Any]] = {}
            outcome = _fuzz_parallel(dict(kwargs, fleet=fleet), workers, reporter.update, corpora)
            if corpora:
                described = _combined(list(corpora.values()))
    finally:
        reporter.close()
    if as_json:
        data = outcome.to_data()
        if described is not None:
            data["corpus"] = described
        print(json.dumps(data, sort_keys=True))
        if outcome.finding is not None:
            print(f"replay: {outcome.finding.replay}", file=sys.stderr)
    else:
        _print_summary(outcome, db, described)
    return EXIT[outcome.status]


def _print_summary(outcome: FuzzOutcome, db: str | None,
                   corpus: dict[str, Any] | None = None) -> None:
    out = _stdout()
    stats = outcome.stats
    table = Table(title=f"onceflow fuzz: {outcome.status}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rate = stats.scenarios / outcome.elapsed if outcome.elapsed else 0.0
    table.add_row("scenarios", f"{stats.scenarios} ({rate:.0f}/s)")
    table.add_row("simulated events", f"{stats.events:,}")
    table.add_row("restores checked", str(stats.restores))
    phases = [p for p in CRASH_PHASES if stats.phases.get(f"phase_crash:{p}")]
    table.add_row("crash phases hit", f"{len(phases)}/{len(CRASH_PHASES)}")
    table.add_row("faults fired", str(sum(stats.phases.values())))
    table.add_row("elapsed", f"{outcome.elapsed:.1f} s")
    table.add_row("corpus", (f"{corpus['url']} ({corpus['name']})" if corpus
                             else str(db) if db else "none"))
    out.print(table)
    if corpus is not None and corpus["kept_locally"]:
        out.print(f"Redis went away: {corpus['kept_locally']} corpus entries were kept in "
                  f"{corpus['fallback']}; the next run that reaches Redis pushes them")
    if outcome.status == "interrupted":
        out.print("interrupted: the corpus is intact; run again to continue")
    if outcome.interrupted:
        out.print("interrupted while shrinking: the counterexample below is the smallest "
                  "found so far; the corpus keeps it, and the next run (or onceflow shrink "
                  "TOKEN) goes on shrinking it")
    if outcome.status == "stopped":
        out.print("stopped: another worker of the fleet found a violation (onceflow status "
                  "lists it with its replay command)")
    if outcome.finding is None or outcome.scenario is None:
        return
    before = outcome.first_size or {}
    after = outcome.scenario.size
    sizes = Table(title="shrunk counterexample")
    sizes.add_column("")
    sizes.add_column("found", justify="right")
    sizes.add_column("shrunk", justify="right")
    for key in after:
        sizes.add_row(key, str(before.get(key, "?")), str(after[key]))
    out.print(sizes)
    out.print(f"found after {outcome.first_scenarios} scenarios "
              f"({outcome.first_seconds:.1f} s), shrunk in {outcome.shrink_seconds:.1f} s")
    print(outcome.finding.render())


# -- mutants -------------------------------------------------------------------------------

def _row(name: str, outcome: FuzzOutcome, base: FuzzOutcome | None) -> dict[str, Any]:
    f = outcome.finding
    size = outcome.scenario.size if outcome.scenario is not None else None
    row: dict[str, Any] = {
        "name": name, "source": MUTANTS[name].source, "expected": MUTANTS[name].symptom,
        "found": outcome.status == "violation",
        "seconds": round(outcome.first_seconds, 3) if outcome.first_seconds is not None else None,
        "scenarios": outcome.first_scenarios,
        "property": f.property if f else None, "anomaly": f.anomaly if f else None,
        "shrunk": ({"records": size["records"], "faults": size["faults"],
                    "parallelism": size["parallelism"]} if size else None),
        "shrink_seconds": round(outcome.shrink_seconds, 3) if outcome.shrink_seconds else None,
        "token": f.token if f else None,
        "replay": f.replay if f else None,
    }
    if base is not None:
        bsize = base.scenario.size if base.scenario is not None else None
        row["baseline"] = {
            "found": base.status == "violation",
            "seconds": round(base.first_seconds, 3) if base.first_seconds is not None else None,
            "scenarios": base.first_scenarios,
            "records": bsize["records"] if bsize else None,
            "faults": bsize["faults"] if bsize else None,
        }
    return row


def run_mutants(*, budget: float, only: tuple[str, ...], as_json: bool, baseline: bool,
                seed: int | None, store: str = "memory", db: str | None = None,
                corpus_name: str | None = None, mode: str | None = None,
                sink: str | None = None, operators: tuple[str, ...] | None = None,
                source: str | None = None) -> int:
    """Fuzz each mutant (pinned to `mode`, `sink`, `operators`, `source` when given: do
    the re-created bugs still die with your components in the pipeline?)."""
    pins: dict[str, Any] = {"mode": mode, "sink": sink, "operators": operators,
                            "source": source}
    names = only or tuple(MUTANTS)
    corpus = open_corpus(db, name=corpus_name)  # none by default: each search starts from scratch
    err = Console(stderr=True)
    rows = []
    for i, name in enumerate(names):
        if not as_json:
            err.print(f"[{i + 1}/{len(names)}] {name} ...", highlight=False)
        outcome = fuzz(budget=budget, mutants=(name,), db=corpus,
                       seed=None if seed is None else seed + i, store=store, **pins)
        base = None
        if baseline:
            base = _baseline(budget, name, seed, i, pins)
        row = _row(name, outcome, base)
        row["control"] = _control(outcome)
        if row["control"] is False:
            row["found"] = False  # the counterexample fails without the mutant too
        rows.append(row)
    if as_json:
        print(json.dumps(rows, sort_keys=True))
    else:
        _print_mutants(rows)
    return 0 if all(r["found"] for r in rows) else 1


def _control(outcome: FuzzOutcome) -> bool | None:
    """Does the shrunk counterexample pass with its mutant switched off?  (None: none found.)

    A counterexample that also fails on the correct model is a false alarm of the
    properties, not a detection of the mutant.
    """
    if outcome.scenario is None:
        return None
    from attrs import evolve  # noqa: PLC0415

    from onceflow.model.simulation import run  # noqa: PLC0415
    from onceflow.properties.checks import check  # noqa: PLC0415
    from onceflow.properties.violation import Violation  # noqa: PLC0415

    try:
        check(run(evolve(outcome.scenario, mutants=())))
    except Violation:
        return False
    return True


def _baseline(budget: float, name: str, seed: int | None, i: int,
              pins: dict[str, Any] | None = None) -> FuzzOutcome:
    start = (seed or 0) * 1_000_003 + i * 10_007
    return baseline(budget=budget, mutants=(name,), start=start, **(pins or {}))


def _print_mutants(rows: list[dict[str, Any]]) -> None:
    out = _stdout()
    table = Table(title="onceflow mutants")
    for col in ("mutant", "found", "s to 1st", "scenarios", "property / anomaly",
                "shrunk rec/flt/p", "shrink s", "baseline s", "baseline rec/flt"):
        table.add_column(col)
    for r in rows:
        s = r["shrunk"] or {}
        b = r.get("baseline") or {}
        table.add_row(
            r["name"], "yes" if r["found"] else "NO", _num(r["seconds"]), str(r["scenarios"] or "-"),
            f"{r['property']} / {r['anomaly']}" if r["found"] else "-",
            f"{s.get('records', '-')}/{s.get('faults', '-')}/{s.get('parallelism', '-')}",
            _num(r["shrink_seconds"]),
            _num(b.get("seconds")) if b.get("found") else ("not found" if b else "-"),
            f"{b.get('records', '-')}/{b.get('faults', '-')}" if b.get("found") else "-")
    out.print(table)
    found = [r for r in rows if r["found"]]
    times = [r["seconds"] for r in found if r["seconds"] is not None]
    for r in rows:
        if r.get("control") is False:
            out.print(f"FALSE ALARM: the counterexample of {r['name']} fails without the mutant "
                      f"too: {r.get('replay') or 'onceflow replay ' + str(r['token'])}")
    out.print(f"kill rate {len(found)}/{len(rows)}"
              + (f", median time to first violation {statistics.median(times):.2f} s" if times else ""))


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"
