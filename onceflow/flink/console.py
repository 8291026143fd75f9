"""The `onceflow flink` and `onceflow conformance` commands (thin: parse, call, print)."""

from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from typing import Any, Iterator

from onceflow.flink.compare import Comparison, compare

__all__ = ["print_comparison", "sigterm_interrupts"]


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP behave as Ctrl-C while a Flink job runs (so the JVM's process
    group is killed on the way out)."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _fault_lines(c: Comparison) -> list[str]:
    lines = []
    for i, fault in enumerate(c.scenario.faults):
        fired = "fired" if i in c.faults_fired else "did not fire"
        lines.append(f"  faults[{i}] {fault!r}: on Flink it {fired}")
    return lines


def _short(value: Any, width: int = 36) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[:width - 3] + "..."


def _first_difference(ours: Any, theirs: Any) -> str:
    """Where one key's canonical outputs first differ."""
    if isinstance(ours, list) and isinstance(theirs, list):
        i = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y),
                 min(len(ours), len(theirs)))
        show = lambda rs: _short(rs[i:i + 2], 30) if i < len(rs) else "(ends)"  # noqa: E731
        return (f"{len(ours)} vs {len(theirs)} records, first difference at #{i}: "
                f"onceflow {show(ours)}, flink {show(theirs)}")
    return f"onceflow {_short(ours)}, flink {_short(theirs)}"


def print_comparison(c: Comparison, describe: str) -> None:
    print(f"scenario: {describe}")
    for line in _fault_lines(c):
        print(line)
    for e in c.events:
        if e.get("event") in ("savepoint", "stopped", "stop_failed", "savepoint_failed",
                              "savepoint_skipped", "restored_ended"):
            rest = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "path"))
            print(f"  flink: {e['event']}{' (' + rest + ')' if rest else ''}")
    a, b = c.onceflow, c.flink
    rows = [("status", a.status, b.status), ("records out", a.records_out, b.records_out),
            ("duplicates", a.duplicates, b.duplicates), ("lost", a.lost, b.lost),
            ("outcome", a.outcome, b.outcome), ("verdict", a.verdict, b.verdict)]
    print(f"{'':14}{'onceflow (model)':40}flink {'(real)'}")
    for label, x, y in rows:
        mark = "" if x == y else "   <- differs"
        print(f"{label:14}{str(x):40}{y}{mark}")
    keys = sorted(set(a.output) | set(b.output))
    differing = [k for k in keys if a.output.get(k) != b.output.get(k)]
    print(f"output (canonical, per key): {len(keys)} keys, {len(differing)} differ")
    for k in differing[:3]:
        print(f"  key {k}: {_first_difference(a.output.get(k), b.output.get(k))}")
    how = "yes" if c.same_outcome else "yes (at-least-once: duplicates differ with timing)"
    print(f"agree: {how if c.agree else 'NO'} (flink {c.flink_seconds:.1f} s, compile "
          f"{'cached' if c.cached else f'{c.compile_seconds:.1f} s'})")


def run_one(scenario: Any, describe: str, *, as_json: bool, time_limit: float,
            cache: str | None, keep: str | None) -> int:
    with sigterm_interrupts():
        c = compare(scenario, time_limit=time_limit, cache=cache, keep=keep)
    if as_json:
        print(json.dumps(c.to_data(), sort_keys=True))
    else:
        print_comparison(c, describe)
    return 0 if c.agree else 1
