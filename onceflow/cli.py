"""The `onceflow` command: run, replay, shrink, fuzz, mutants, bench, flink, conformance.

Exit codes: 0 clean, 1 a property was violated, 2 a usage or input error
(one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from attrs import evolve

from onceflow.errors import OnceflowError, OperatorError
from onceflow.mutants import MUTANTS
from onceflow.registry import STORES
from onceflow.scenario import BARRIER_MODES, Scenario

__all__ = ["main", "parse_budget"]

USAGE, VIOLATION, INTERRUPTED = 2, 1, 130


class UsageError(OnceflowError):
    """A bad flag value or input; reported in one line with exit status 2."""


def parse_budget(text: str) -> float:
    """'90' or '90s', '10m', '1h', '500ms' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text or "")
    if m is None:
        raise UsageError(f"bad budget {text!r}: use a number with an optional unit, e.g. 90s, 10m, 1h")
    value = float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m[2]]
    if value <= 0:
        raise UsageError(f"bad budget {text!r}: it must be more than zero")
    return value


# -- loading scenarios ---------------------------------------------------------------------

_MAX_SCENARIO_BYTES = 1_000_000


def load_scenario(source: str) -> Scenario:
    """A scenario from a token (`of1.`...) or a JSON file."""
    return load_replay(source)[0]


def load_replay(source: str) -> tuple[Scenario, Any]:
    """A scenario and the timeline of it to judge (a `TimelineSpec`; the original run
    unless the token or file names another with its "timeline" key)."""
    try:
        return _load_scenario(source)
    except RecursionError:  # hostile input nested deeper than the parser allows
        raise UsageError(f"{source[:40]!r}: the scenario is nested too deeply") from None


def _load_scenario(source: str) -> tuple[Scenario, Any]:
    from onceflow.token import decode_timeline as decode  # noqa: PLC0415
    from onceflow.token import split_timeline  # noqa: PLC0415

    if not source.strip():
        raise UsageError("the scenario is empty: give a replay token (of1....) or a JSON file")
    path = Path(source)
    try:
        exists = path.exists()
    except OSError:  # e.g. a token longer than a file name may be
        exists = False
    if source.startswith("of") and not exists:
        return decode(source)
    if not exists:
        raise UsageError(f"{_show_name(source)} is neither a replay token (of1....) nor an existing file")
    if path.is_dir():
        raise UsageError(f"{_show_name(source)} is a directory; give a scenario JSON file or a token")
    try:
        data = _read_bounded(path)
        if len(data) > _MAX_SCENARIO_BYTES:
            raise UsageError(f"{_show_name(source)} is larger than 1 MB; a scenario file is a "
                             "few KB")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {_show_name(source)}: not UTF-8 text; give a scenario "
                         "JSON file or a token") from None
    except OSError as exc:
        raise UsageError(f"cannot read {_show_name(source)}: {exc.strerror or exc}") from None
    if not text.strip():
        raise UsageError(f"{_show_name(source)} is empty: give a scenario JSON file or a token")
    if text.lstrip().startswith("of"):
        return decode(text.strip())
    return split_timeline(text)


#: How long a scenario read from a pipe or device may take (a FIFO with no writer
#: would block forever).
_READ_SECONDS = 5.0


def _read_bounded(path: Path) -> bytes:
    """At most `_MAX_SCENARIO_BYTES + 1` bytes of `path`, within `_READ_SECONDS` for a
    pipe, socket or device (opened without blocking, read as data arrives)."""
    import select  # noqa: PLC0415
    import stat  # noqa: PLC0415
    import time  # noqa: PLC0415

    limit = _MAX_SCENARIO_BYTES + 1
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            chunks, size = [], 0
            while size < limit:
                chunk = os.read(fd, limit - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        deadline = time.monotonic() + _READ_SECONDS
        chunks, size = [], 0
        while size < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UsageError(f"{_show_name(str(path))}: no complete scenario within "
                                 f"{_READ_SECONDS:g} s (a pipe with no writer, or a device "
                                 "that never ends?); give a scenario JSON file or a token")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, min(65536, limit - size))
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _show_name(source: str) -> str:
    """A file name or token as a message shows it: bounded and on one line."""
    return _one_line(repr(source) if not source.isprintable() else source, 80)


def _scenario_from_args(args: argparse.Namespace) -> Scenario:
    from onceflow.strategies import scenario_from_seed  # noqa: PLC0415

    mutants = tuple(args.mutant or ())
    if args.scenario is not None:
        scenario = load_scenario(args.scenario)
        if mutants:
            scenario = evolve(scenario, mutants=mutants)
        return _with_store(scenario, args)
    _check_keep(args, args.store or "memory")
    return scenario_from_seed(args.seed, mode=args.mode, sink=args.sink,
                              operators=_operators(args), mutants=mutants,
                              store=args.store or "memory", source=args.source)


def _operators(args: argparse.Namespace) -> tuple[str, ...] | None:
    return tuple(args.operator) if getattr(args, "operator", None) else None


def _with_store(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """`--store NAME` overrides the store a loaded scenario names."""
    store = getattr(args, "store", None)
    if store is not None and store != scenario.store:
        scenario = evolve(scenario, store=store)
    _check_keep(args, scenario.store)
    return scenario


def _check_keep(args: argparse.Namespace, store: str) -> None:
    """--keep-store needs a store that declares it keeps files (`keeps_files`)."""
    if getattr(args, "keep_store", None) is None:
        return
    spec = STORES.get(store)
    if spec is not None and not spec.keeps_files:
        keepers = " or --store ".join(sorted(n for n, s in STORES.items() if s.keeps_files))
        raise UsageError(f"--keep-store keeps database files, and the {store} store keeps "
                         f"none; add --store {keepers}")


def describe(scenario: Scenario) -> str:
    chain = " -> ".join(f"{v.uid}(p={v.parallelism}{'' if i == 0 else ', ' + v.edge})"
                        for i, v in enumerate(scenario.topology.vertices))
    return (f"{scenario.checkpoints.mode} barriers, {scenario.sink} sink, "
            f"{scenario.workload.records} records over {scenario.workload.keys} keys: {chain}")


def _fault_line(f: dict[str, Any]) -> str:
    phase = f" at {f['phase']}" if f.get("phase") else ""
    ckpt = f" of checkpoint {f['checkpoint']}" if f.get("checkpoint") else ""
    target = f" on {f['target']}" if f.get("target") else ""
    effect = f" {f['effect']}" if f.get("effect") else ""
    return f"t={f['time']:g} {f['kind']}{effect}{phase}{ckpt}{target}"


def _faults_json(result: Any) -> list[dict[str, Any]]:
    return [{"kind": f["kind"], "phase": f["phase"], "time": f["time"], "target": f["target"],
             "checkpoint": f["checkpoint"], "effect": f.get("effect")}
            for f in result.faults_fired]


# -- commands ------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from onceflow.faults.injector import unfired  # noqa: PLC0415
    from onceflow.model.simulation import restore, run, timeline_of  # noqa: PLC0415
    from onceflow.plugins import plugins_for, reproduce_command  # noqa: PLC0415
    from onceflow.properties.checks import check, exactly_once, restores_of  # noqa: PLC0415
    from onceflow.properties.guarantees import EXACTLY_ONCE, guarantee  # noqa: PLC0415
    from onceflow.properties.rollback import rollbacks_of  # noqa: PLC0415
    from onceflow.properties.violation import Violation  # noqa: PLC0415
    from onceflow.token import encode  # noqa: PLC0415

    scenario = _scenario_from_args(args)
    # the uninterrupted baseline first: with --keep-store, the run's own files are kept
    baseline = run(evolve(scenario, faults=(), savepoints=())) if args.restore_all else None
    result = run(scenario)
    _raise_component_error(result)
    summary = result.summary()
    summary["faults_fired"] = _faults_json(result)
    plan = scenario.to_data()["faults"]
    never = [dict(plan[i], index=i) for i, _ in unfired(result)]
    summary["faults_unfired"] = never
    summary["token"] = encode(scenario)
    summary["replay"] = reproduce_command(summary["token"], plugins_for(scenario))
    promised = guarantee(scenario) == EXACTLY_ONCE
    summary["guarantee"] = guarantee(scenario)
    finding = None
    try:
        check(result)
    except Violation as violation:
        finding = violation.finding
    summary["verdict"] = "violation" if finding else "clean"
    summary["violation"] = finding.to_data() if finding else None
    restores: list[dict[str, Any]] = []
    differs = False
    if args.restore_all:
        for snapshot, parallelism in restores_of(result):
            restored = restore(result, snapshot, parallelism)
            _raise_component_error(restored)
            try:
                exactly_once(restored)  # the oracle's output for that timeline
                same = True
            except Violation:
                same = False
            differs = differs or (promised and not same)
            restores.append({
                "snapshot": snapshot.id, "kind": snapshot.kind, "parallelism": parallelism,
                "restore": "fork", "status": restored.status, "same_output": same,
                "token": encode(scenario, timeline_of(restored))})
        for snapshot, parallelism, at in rollbacks_of(result):
            restored = restore(result, snapshot, parallelism, into="rollback", at=at)
            _raise_component_error(restored)
            verdict = _rollback_verdict(restored)
            differs = differs or not verdict["holds"]
            restores.append({
                "snapshot": snapshot.id, "kind": snapshot.kind, "parallelism": parallelism,
                "restore": "rollback", "status": restored.status,
                "into_store_at": restored.started, **verdict,
                "token": encode(scenario, timeline_of(restored))})
        summary["restores"] = restores
    status = VIOLATION if finding is not None or differs else 0
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return status
    print(f"scenario: {describe(scenario)}")
    print(f"status: {result.status} at t={result.end_time:g} ms, restarts: {result.restarts}")
    print(f"records in: {summary['records_in']}, records out (read-committed): "
          f"{summary['records_out']}")
    print(f"checkpoints completed: {summary['checkpoints_completed']}, "
          f"savepoints completed: {summary['savepoints_completed']}")
    print("faults fired:" + ("" if result.faults_fired else " none"))
    for f in result.faults_fired:
        print(f"  {_fault_line(f)}")
    if never:
        print("faults that never fired (they changed nothing in this run):")
        for f in never:
            print("  " + ", ".join(f"{k}={v}" for k, v in f.items() if k != "index"))
    for r in restores:
        where = f" at parallelism {r['parallelism']}" if r["parallelism"] else ""
        if r["restore"] == "rollback":
            verdict = ("nothing lost, duplicates only of records committed after it"
                       if r["holds"] else f"VIOLATED: {r['anomaly']}")
            print(f"rollback to {r['kind']} {r['snapshot']}{where} into the store as of "
                  f"t={r['into_store_at']:g}: {r['status']}, {verdict}")
            continue
        verdict = "same output" if r["same_output"] else "DIFFERENT output"
        print(f"restore from {r['kind']} {r['snapshot']}{where}: {r['status']}, {verdict}")
    if differs:
        print("verdict: a restored timeline's output differs from the oracle's where "
              "exactly-once is promised")
    if finding is None:
        print(f"verdict: every property holds ({summary['guarantee'].replace('_', '-')} "
              "promised)")
    else:
        print("verdict: " + _render(finding))
    print(f"digest: {result.digest}")
    print(f"token: {summary['token']}")
    if finding is None:
        print(f"replay: {summary['replay']}")
    return status


def _raise_component_error(result: Any) -> None:
    if result.error is not None:
        where = f" (restored from {result.restored_from.label})" if result.restored_from else ""
        raise OperatorError(f"{result.error}{where}: a bug in that component, not an "
                            "exactly-once violation", component=result.error_component,
                            traceback=result.error_traceback)


def _rollback_verdict(restored: Any) -> dict[str, Any]:
    """Whether a rollback restore kept its promises (no loss; duplicates only of records
    committed after the snapshot; the restored job exactly-once)."""
    from onceflow.properties.checks import no_loss  # noqa: PLC0415
    from onceflow.properties.guarantees import EXACTLY_ONCE, guarantee  # noqa: PLC0415
    from onceflow.properties.rollback import rollback_effects  # noqa: PLC0415
    from onceflow.properties.violation import Violation  # noqa: PLC0415

    try:
        no_loss(restored)
        if guarantee(restored.scenario) == EXACTLY_ONCE:
            rollback_effects(restored)
    except Violation as v:
        return {"holds": False, "anomaly": v.finding.anomaly}
    return {"holds": True, "anomaly": None}


def cmd_replay(args: argparse.Namespace) -> int:
    from onceflow.model.simulation import follow, run  # noqa: PLC0415
    from onceflow.properties.checks import check, determinism, judge_timeline  # noqa: PLC0415
    from onceflow.properties.violation import Violation  # noqa: PLC0415

    if args.html is not None:
        _check_output_path(args.html, "--html")
    scenario, spec = load_replay(args.source)
    scenario = _with_store(scenario, args)
    result = run(scenario)
    finding = None
    if spec.original:
        shown = result
        try:
            check(result)
        except Violation as violation:
            finding = violation.finding
    else:
        # the finding's own timeline, restored exactly as check() restored it, judged
        # by the properties check() judged it with (the original run and the other
        # restores are not judged again)
        _raise_component_error(result)
        shown = follow(result, spec)
        try:
            try:
                judge_timeline(shown)
            except Violation as violation:
                determinism(result, failed=violation)  # as check() does before reporting
                raise
        except Violation as violation:
            finding = violation.finding
    if finding is not None and spec.original:
        from onceflow.report import violating_timeline  # noqa: PLC0415

        shown = violating_timeline(result, finding)
    timeline = None
    if finding is not None or args.timeline:
        from onceflow.report import text_timeline  # noqa: PLC0415

        timeline = text_timeline(shown, finding)
    if args.html:
        from onceflow.report import write_html  # noqa: PLC0415

        write_html(shown, args.html, finding)
    if args.json:
        print(json.dumps({"status": "violation" if finding else "clean", "digest": result.digest,
                          "violation": finding.to_data() if finding else None,
                          "faults": _faults_json(result), "timeline": spec.to_data(),
                          "timeline_digest": shown.digest}, sort_keys=True))
    else:
        print(f"scenario: {describe(scenario)}")
        if not spec.original:
            print(f"replays the timeline: {spec.label}")
        if finding is None:
            print("every property holds" + ("" if spec.original else " on this timeline"))
        else:
            print(_render(finding))
        if timeline:
            print("\ntimeline:")
            print(timeline)
        print(f"digest: {result.digest}")
        if not spec.original:
            print(f"timeline digest: {shown.digest}")
        if args.html:
            print(f"diagram: {args.html}")
    return VIOLATION if finding else 0


def _check_output_path(path: str, flag: str) -> None:
    """Fail before the run, not after it, on a path that cannot be written."""
    if not path or not path.strip():
        raise OnceflowError(f"{flag} needs a file name, e.g. {flag} out.html")
    if not path.isprintable():
        raise OnceflowError(f"{flag} {_show_name(path)}: the file name holds a control "
                            f"character; give a plain name, e.g. {flag} out.html")
    target = Path(path)
    if target.is_dir():
        raise OnceflowError(f"{flag} {path} is a directory; give a file name inside it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OnceflowError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OnceflowError(f"{flag} {path}: directory {parent} is not writable")
    existed = target.exists()
    try:  # some directories (/proc, /sys) pass the checks above and refuse every file
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o644)
        os.close(fd)
        if not existed:
            target.unlink()
    except OSError as exc:
        raise OnceflowError(f"{flag} {path}: cannot write there ({exc.strerror or exc}); "
                            "give a path in a writable directory") from None


def _render(finding: Any) -> str:
    return finding.render()


def cmd_shrink(args: argparse.Namespace) -> int:
    from onceflow.shrinking import shrink  # noqa: PLC0415
    from onceflow.token import encode  # noqa: PLC0415

    scenario, timeline = load_replay(args.source)
    scenario = _with_store(scenario, args)
    keep = tuple(args.operator or ())
    kinds = {v.kind for v in scenario.topology.vertices[1:-1]}
    for name in keep:
        if name not in kinds:
            raise UsageError(f"--operator {name!r}: the scenario has no such operator (it "
                             f"has: {', '.join(sorted(kinds)) or 'none'}); drop the pin")
    outcome = shrink(scenario, keep=keep, timeline=timeline)
    if outcome is None:
        if args.json:
            print(json.dumps({"status": "clean", "token": encode(scenario)}))
        else:
            print("the scenario passes every property: nothing to shrink")
        return 0
    data = {"status": "violation", "property": outcome.finding.property,
            "anomaly": outcome.finding.anomaly, "size_before": scenario.size,
            "size_after": outcome.scenario.size, "steps": outcome.steps,
            "tried": outcome.tried, "token": outcome.finding.token,
            "digest": outcome.finding.digest, "replay": outcome.finding.replay}
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        if outcome.finding.property == "determinism" and not outcome.steps:
            print("not shrunk: two runs of the scenario differ, so no smaller one can be "
                  "judged")
        else:
            print(f"shrunk in {outcome.steps} steps ({outcome.tried} candidates tried)")
        print(f"  before: {_size(scenario.size)}")
        print(f"  after:  {_size(outcome.scenario.size)}")
        print(outcome.finding.render())
    return VIOLATION


def _size(size: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in size.items())


def cmd_fuzz(args: argparse.Namespace) -> int:
    from onceflow.console import run_fuzz  # noqa: PLC0415

    _check_keep(args, args.store or "memory")
    return run_fuzz(budget=parse_budget(args.budget), mode=args.mode, sink=args.sink,
                    operators=_operators(args),
                    mutants=tuple(args.mutant or ()), db=args.db, seed=args.seed,
                    workers=args.workers, as_json=args.json, store=args.store or "memory",
                    corpus_name=args.corpus_name, fallback=args.fallback_db,
                    stop_on_first=args.stop_on_first, worker=args.worker_name,
                    source=args.source)


def cmd_mutants(args: argparse.Namespace) -> int:
    from onceflow.console import run_mutants  # noqa: PLC0415

    _check_keep(args, args.store or "memory")
    if args.only:
        for name in args.only:
            if name not in MUTANTS:
                raise UsageError(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")
    return run_mutants(budget=parse_budget(args.budget), only=tuple(args.only or ()),
                       as_json=args.json, baseline=not args.no_baseline, seed=args.seed,
                       store=args.store or "memory", db=args.db, corpus_name=args.corpus_name,
                       mode=args.mode, sink=args.sink, operators=_operators(args),
                       source=args.source)


def cmd_store(args: argparse.Namespace) -> int:
    """What a kept SQLite database holds: transactions by state, what a read-committed
    reader sees at the end, the metadata sinks kept (read only; the file is not changed)."""
    from onceflow.stores.sqlite import SQLiteStore  # noqa: PLC0415

    store = SQLiteStore.open_file(args.file, txn_timeout=float("inf"))
    try:
        summary = store.summary()
    finally:
        store.close()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary["transactions"].items())) or "none"
    print(f"{args.file}: {summary['rows']} rows written, {summary['upserts']} by key")
    print(f"  transactions: {states}")
    print(f"  read-committed at t={summary['end']:g}: {summary['committed']} records "
          f"({summary['distinct']} distinct ids)")
    if summary["blocking"]:
        print(f"  held back by open transaction {summary['blocking']}")
    for owner, values in sorted(summary["metadata"].items()):
        print(f"  metadata of {owner}: {json.dumps(values, sort_keys=True)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from onceflow.search.corpus import connect, default_corpus_name, is_redis_url, redact  # noqa: PLC0415
    from onceflow.search.corpus import validate_corpus_name  # noqa: PLC0415
    from onceflow.search.fleet import fleet_status, render_status  # noqa: PLC0415

    if args.db and "://" in args.db and not is_redis_url(args.db):
        raise UsageError(f"--db {redact(args.db)!r}: unknown scheme; give redis://HOST:PORT/N "
                         "(rediss:// for TLS)")
    if not args.db or not is_redis_url(args.db):
        raise UsageError("onceflow status reads a fleet's progress from Redis: give "
                         "--db redis://HOST:PORT/N (or set ONCEFLOW_DB)")
    name = validate_corpus_name(args.corpus_name) if args.corpus_name else default_corpus_name()
    client = connect(args.db)
    import redis  # noqa: PLC0415

    import time  # noqa: PLC0415

    while True:
        try:
            data = fleet_status(client, name)
        except redis.RedisError as exc:
            raise UsageError(f"Redis at {redact(args.db)}: "
                             f"{str(exc).splitlines()[0][:200]}") from None
        print(json.dumps(data, sort_keys=True) if args.json else render_status(data), flush=True)
        if args.watch is None:
            return 0
        time.sleep(args.watch)
        if not args.json:
            print()


def cmd_report_merge(args: argparse.Namespace) -> int:
    from onceflow.report.merge import load_report, merge_reports, render_merged  # noqa: PLC0415

    merged = merge_reports([(path, load_report(path)) for path in args.reports])
    print(json.dumps(merged, sort_keys=True) if args.json else render_merged(merged))
    return VIOLATION if merged["violations"] else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from onceflow.bench import bench, format_report  # noqa: PLC0415

    if args.records < 100 or args.repeat < 1:
        raise UsageError("--records must be at least 100 and --repeat at least 1")
    result = bench(records=args.records, repeat=args.repeat)
    print(json.dumps(result, sort_keys=True, default=str) if args.json else format_report(result))
    return 0


def _flink_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--time-limit", type=_positive, default=180, metavar="SECONDS",
                   help="per Flink job; a job still running then is killed (exit 2)")
    p.add_argument("--cache", metavar="DIR", help="compiled jobs (default $ONCEFLOW_FLINK_CACHE "
                                                  "or ~/.cache/onceflow/flink)")
    p.add_argument("--keep", metavar="DIR", help="run the job in DIR and keep its files")


def cmd_flink(args: argparse.Namespace) -> int:
    from onceflow.flink.console import run_one  # noqa: PLC0415

    scenario = _scenario_from_args(args)
    if args.drop_untranslatable:
        from onceflow.flink.translate import translatable  # noqa: PLC0415

        scenario, dropped = translatable(scenario)
        for line in dropped:
            print(f"onceflow: dropped {line}", file=sys.stderr)
    return run_one(scenario, describe(scenario), as_json=args.json,
                   time_limit=float(args.time_limit), cache=args.cache, keep=args.keep)


def cmd_conformance(args: argparse.Namespace) -> int:
    from onceflow.flink.conformance import run_suite  # noqa: PLC0415

    return run_suite(count=args.count, as_json=args.json, time_limit=float(args.time_limit),
                     cache=args.cache, keep=args.keep)


# -- parser -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE, _one_line(f"{self.prog}: error: {message} (see {self.prog} --help)")
                  + "\n")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number >= 1")
    return value


MAX_WORKERS = 64


def _worker_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}", text):
        raise argparse.ArgumentTypeError(
            f"bad worker name {text[:40]!r}: use 1-100 letters, digits or ._:/@+- "
            "(e.g. --worker-name shard-3)")
    return text


def _corpus_name(text: str) -> str:
    from onceflow.search.corpus import CorpusError, validate_corpus_name  # noqa: PLC0415

    try:
        return validate_corpus_name(text)
    except CorpusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _watch_every(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected 1 to 3600 seconds")
    return value


def _workers(text: str) -> int:
    value = _positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_WORKERS} worker processes (this machine has {os.cpu_count()} CPUs; "
            "one per CPU is the useful maximum)")
    return value


def build_parser() -> argparse.ArgumentParser:
    from onceflow import __version__  # noqa: PLC0415

    parser = _Parser(prog="onceflow", description="Exactly-once harness for Flink-style stream "
                                                  "processors: simulate, inject faults, check.")
    parser.add_argument("--version", action="version", version=f"onceflow {__version__}")
    parser.add_argument("--plugin", action="append", metavar="MODULE",
                        help="import MODULE first (it registers sources, operators and sinks); "
                             "repeatable, before or after the command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def stores(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", choices=sorted(STORES), help="the external system the sink "
                       "writes to (default: the scenario's, memory when drawn)")
        p.add_argument("--keep-store", metavar="DIR", help="keep every timeline's SQLite "
                       "database as a file in DIR (open it with the sqlite3 shell)")

    def fleet(p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus-name", default=None, metavar="NAME", type=_corpus_name,
                       help="namespace of the corpus in a shared Redis (default: the "
                            "[project] name in the nearest pyproject.toml)")

    def pins(p: argparse.ArgumentParser, *, mutant: bool = True) -> None:
        p.add_argument("--mode", choices=BARRIER_MODES, help="pin the barrier mode")
        p.add_argument("--sink", metavar="NAME",
                       help="pin the sink: a built-in (two_phase, two_phase_global, idempotent, "
                            "append) or a registered one")
        p.add_argument("--source", metavar="NAME",
                       help="pin the source: the built-in log or a registered one")
        p.add_argument("--operator", action="append", metavar="NAME",
                       help="place this registered operator (repeatable, in pipeline order)")
        if mutant:
            p.add_argument("--mutant", action="append", choices=sorted(MUTANTS),
                           metavar="NAME", help="switch on a mutant (repeatable): "
                           + ", ".join(sorted(MUTANTS)))

    def plugin(p: argparse.ArgumentParser) -> None:
        # loaded before parsing (see _plugin_args); accepted after the command too
        p.add_argument("--plugin", action="append", metavar="MODULE", dest="plugin_after",
                       help="import MODULE first (repeatable)")

    p = sub.add_parser("run", help="draw (or load) one scenario, run it, print what happened")
    p.add_argument("--seed", type=_non_negative, default=0, help="draw the scenario from this seed")
    p.add_argument("--scenario", metavar="FILE|TOKEN", help="load the scenario instead")
    pins(p)
    p.add_argument("--restore-all", action="store_true",
                   help="restore from every snapshot and compare with the uninterrupted run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    stores(p)
    plugin(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", help="re-run a scenario from a token or JSON file and judge it "
                                      "(on the restored timeline the token names, if it does)")
    p.add_argument("source", metavar="TOKEN|FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="OUT.html", help="write a space-time diagram")
    p.add_argument("--timeline", action="store_true", help="print the timeline even if it passes")
    stores(p)
    plugin(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("shrink", help="shrink a failing token or file to a minimal scenario")
    p.add_argument("source", metavar="TOKEN|FILE")
    p.add_argument("--operator", action="append", metavar="NAME",
                   help="keep this operator in the counterexample (repeatable; operators "
                        "you registered are always kept)")
    p.add_argument("--json", action="store_true")
    stores(p)
    plugin(p)
    p.set_defaults(func=cmd_shrink)

    p = sub.add_parser("fuzz", help="fuzz until the budget is spent or a property fails")
    p.add_argument("--budget", default="10m", help="e.g. 60s, 10m, 1h (default 10m)")
    pins(p)
    p.add_argument("--workers", type=_workers, default=1,
                   help="processes sharing the corpus (one per CPU is the useful maximum)")
    p.add_argument("--db", default=os.environ.get("ONCEFLOW_DB") or ".onceflow/db",
                   help="failure corpus: a directory, or redis://HOST:PORT/N (rediss:// for "
                        "TLS) shared by a fleet of workers (default $ONCEFLOW_DB or .onceflow/db)")
    fleet(p)
    p.add_argument("--fallback-db", metavar="DIR", default=None,
                   help="where a Redis corpus is kept while Redis is away "
                        "(default .onceflow/fallback/<corpus name>)")
    p.add_argument("--stop-on-first", action="store_true",
                   help="stop when any worker of the fleet finds a violation")
    p.add_argument("--worker-name", default=None, metavar="NAME", type=_worker_name,
                   help="this worker's name in `onceflow status` (default host-pid)")
    p.add_argument("--seed", type=_non_negative, default=None, help="reproducible batch seeds")
    p.add_argument("--json", action="store_true")
    stores(p)
    plugin(p)
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("mutants", help="how fast the fuzzer finds each re-created real bug")
    p.add_argument("--budget", default="60s", help="per mutant (default 60s)")
    p.add_argument("--only", action="append", metavar="NAME", help="only this mutant (repeatable)")
    p.add_argument("--no-baseline", action="store_true", help="skip the random-seed baseline")
    pins(p, mutant=False)
    p.add_argument("--seed", type=_non_negative, default=None)
    p.add_argument("--db", default=None,
                   help="a corpus to share (directory or redis://HOST:PORT/N); default none, "
                        "so that each time to first violation is measured from scratch")
    fleet(p)
    p.add_argument("--json", action="store_true")
    stores(p)
    plugin(p)
    p.set_defaults(func=cmd_mutants)

    p = sub.add_parser("status", help="a fuzzing fleet's progress, read from its shared Redis")
    p.add_argument("--db", default=os.environ.get("ONCEFLOW_DB"),
                   help="redis://HOST:PORT/N the workers share (default $ONCEFLOW_DB)")
    fleet(p)
    p.add_argument("--watch", type=_watch_every, default=None, metavar="SECONDS",
                   help="print the status again every SECONDS (1-3600) until Ctrl-C")
    p.add_argument("--json", action="store_true", help="one JSON object (a line per --watch)")
    plugin(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("store", help="what a database kept by --keep-store holds (read only)")
    p.add_argument("file", metavar="FILE.sqlite", help="a file `--keep-store DIR` wrote")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("report", help="combine reports")
    plugin(p)
    reports = p.add_subparsers(dest="report_command", metavar="ACTION", parser_class=_Parser)
    reports.required = True
    q = reports.add_parser("merge", help="one report from many `onceflow fuzz --json` reports")
    q.add_argument("reports", nargs="+", metavar="REPORT.json")
    q.add_argument("--json", action="store_true")
    plugin(q)
    q.set_defaults(func=cmd_report_merge)

    p = sub.add_parser("flink", help="run one scenario on real Apache Flink too and compare "
                                     "(needs Java 17+ and pip install 'onceflow[flink]')")
    p.add_argument("--seed", type=_non_negative, default=0, help="draw the scenario from this seed")
    p.add_argument("--scenario", metavar="FILE|TOKEN", help="load the scenario instead")
    pins(p)
    p.add_argument("--drop-untranslatable", action="store_true",
                   help="run without the faults and mutants Flink cannot reproduce (each "
                        "dropped one is named on stderr) instead of refusing the scenario")
    _flink_options(p)
    plugin(p)
    p.set_defaults(func=cmd_flink, store=None, keep_store=None)

    p = sub.add_parser("conformance", help="a fixed suite of scenarios on the model and on real "
                                           "Flink: which agree, and how long each took")
    p.add_argument("--count", type=_positive, default=None,
                   help="run only the first N scenarios of the suite")
    _flink_options(p)
    plugin(p)
    p.set_defaults(func=cmd_conformance)

    p = sub.add_parser("bench", help="simulated events per second against a bare event loop")
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    plugin(p)
    p.set_defaults(func=cmd_bench)
    return parser


def _plugin_args(argv: list[str]) -> list[str]:
    """The `--plugin MODULE` values anywhere on the command line (before or after the
    command): they load before parsing, so that their names are valid choices."""
    names = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--plugin" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            names.append(arg.split("=", 1)[1])
    return names


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except OnceflowError as exc:
        _error(str(exc))
        return USAGE
    except KeyboardInterrupt:
        if "--json" not in argv:
            # stopped before the command could say so itself (loading plugins, parsing,
            # importing): say it where its summary would have been
            print("onceflow: interrupted", flush=True)
        print("onceflow: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return 0
    except (OverflowError, RecursionError, MemoryError, UnicodeError, OSError) as exc:
        _error(f"cannot handle this input: {type(exc).__name__}: {exc}")
        return USAGE
    except Exception as exc:  # a bug in onceflow: still one line, never a traceback
        if os.environ.get("ONCEFLOW_DEBUG"):
            raise
        _error(f"internal error {type(exc).__name__}: {exc} (a bug in onceflow; set "
               "ONCEFLOW_DEBUG=1 for the traceback)")
        return USAGE


MAX_MESSAGE = 280


def _one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message on one bounded line: control characters escaped (a newline in an
    echoed value can never start a line of its own)."""
    from onceflow.model.usercode import text  # noqa: PLC0415

    return text(message, limit)


def _error(message: str) -> None:
    print(_one_line(f"onceflow: error: {message}"), file=sys.stderr)


def _report_component_error(exc: Any, *, as_json: bool) -> None:
    """User code failed: its folded traceback on stdout, one line on stderr."""
    frames = list(getattr(exc, "traceback", ()))
    scenario = getattr(exc, "scenario", None)
    replay = None
    if scenario is not None:  # found by a search: the command that makes it crash again
        from onceflow.plugins import plugins_for, reproduce_command  # noqa: PLC0415
        from onceflow.token import encode  # noqa: PLC0415

        replay = reproduce_command(encode(scenario), plugins_for(scenario))
    if as_json:
        data = {"status": "error", "error": _one_line(str(exc), 2000),
                "component": getattr(exc, "component", ""), "traceback": frames}
        if replay is not None:
            data.update(replay=replay, scenario=describe(scenario))
        print(json.dumps(data, sort_keys=True))
    else:
        if frames:
            print("user code traceback (innermost last):")
            for frame in frames:
                print("  " + _one_line(frame, 200))
        if replay is not None:
            print(f"scenario: {describe(scenario)}")
            print(_one_line(str(exc), 2000))
            print(f"replay: {replay}")
    _error(str(exc))


def _main(argv: list[str]) -> int:
    from onceflow.plugins import load_configured  # noqa: PLC0415

    if not any(a in ("--version", "-h", "--help") for a in argv[:1]):
        load_configured(_plugin_args(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from onceflow.stores.sqlite import keep_store  # noqa: PLC0415

        with keep_store(getattr(args, "keep_store", None)):
            return int(args.func(args))
    except OperatorError as exc:
        _report_component_error(exc, as_json=bool(getattr(args, "json", False)))
        return USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
