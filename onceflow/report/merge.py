"""`onceflow report merge`: one report from many machines' `onceflow fuzz --json` reports.

Counters are summed, fault and crash-phase hits are unioned (with their summed
counts), and every distinct violation is listed once, by digest, with the
reports that found it.  A merged report can be merged again.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from onceflow.errors import OnceflowError
from onceflow.faults.plan import CRASH_PHASES

__all__ = ["MergeError", "load_report", "merge_reports", "render_merged"]

MAX_REPORT_BYTES = 20_000_000
STATUSES = ("clean", "violation", "stopped", "interrupted")
MERGED = "onceflow-fuzz-merged-v1"


class MergeError(OnceflowError, ValueError):
    """A report cannot be read or is not an `onceflow fuzz --json` report."""


def load_report(path: str | Path) -> dict[str, Any]:
    """One `fuzz --json` (or merged) report, checked; MergeError naming the file otherwise."""
    p = Path(path)
    if not str(path).strip():
        raise MergeError("an empty file name; give the JSON reports of `onceflow fuzz --json`")
    if p.is_dir():
        raise MergeError(f"{p} is a directory; give the report files (e.g. {p}/*.json)")
    if p.exists() and not p.is_file():  # a FIFO would block, a device never end
        raise MergeError(f"{p} is not a regular file; give the JSON file a fuzz run wrote")
    try:
        with p.open("rb") as stream:  # bounded: a device such as /dev/zero never ends
            raw = stream.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise MergeError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_REPORT_BYTES:
        raise MergeError(f"{p} is larger than {MAX_REPORT_BYTES // 1_000_000} MB; "
                         "a fuzz report is a few KB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise MergeError(f"{p} is not JSON ({reason}); give the output of "
                         "`onceflow fuzz --json`") from None
    if not isinstance(data, dict):
        hint = (" (that looks like `onceflow mutants --json`)" if isinstance(data, list) else "")
        raise MergeError(f"{p} is not an `onceflow fuzz --json` report{hint}")
    for key in ("scenarios", "events", "restores_checked"):
        value = data.get(key, 0 if key != "scenarios" else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MergeError(f"{p} is not an `onceflow fuzz --json` report: {key!r} is "
                             f"{'missing' if value is None else 'not a count'}")
    if data.get("status") not in STATUSES:
        raise MergeError(f"{p}: unknown status {str(data.get('status'))[:40]!r}; expected one "
                         f"of {', '.join(STATUSES)}")
    phases = data.get("phases_hit", {})
    if not isinstance(phases, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in phases.values()):
        raise MergeError(f"{p}: 'phases_hit' is not a mapping of counts")
    elapsed = data.get("elapsed_s", 0)
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) or elapsed < 0:
        raise MergeError(f"{p}: 'elapsed_s' is not a duration in seconds")
    for v in _violations(data):
        if not isinstance(v, dict) or not isinstance(v.get("token", ""), str):
            raise MergeError(f"{p}: a violation entry is malformed")
        seen_in = v.get("found_in", [])
        if not isinstance(seen_in, list) or not all(isinstance(x, str) for x in seen_in):
            raise MergeError(f"{p}: a violation's 'found_in' is not a list of file names")
    if data.get("kind") == MERGED:
        _check_merged(p, data)
    return data


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_merged(p: Path, data: dict[str, Any]) -> None:
    statuses = data.get("statuses", {})
    sources = data.get("sources", [])
    seconds = data.get("worker_seconds", 0)
    if not _count(data.get("reports", 1)) or data.get("reports", 1) < 1:
        raise MergeError(f"{p}: a merged report's 'reports' is not a count")
    if not isinstance(statuses, dict) or not all(
            k in STATUSES and _count(v) for k, v in statuses.items()):
        raise MergeError(f"{p}: a merged report's 'statuses' is not a mapping of counts")
    if not isinstance(sources, list) or not all(isinstance(x, str) for x in sources):
        raise MergeError(f"{p}: a merged report's 'sources' is not a list of file names")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise MergeError(f"{p}: a merged report's 'worker_seconds' is not a duration")


def _violations(data: dict[str, Any]) -> list[Any]:
    if data.get("kind") == MERGED:
        found = data.get("violations", [])
        return found if isinstance(found, list) else [None]
    return [data["violation"]] if data.get("violation") is not None else []


def merge_reports(reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Merge (name, report) pairs into one report."""
    if not reports:
        raise MergeError("no reports given; usage: onceflow report merge A.json B.json ...")
    phases: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    violations: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    total = {"scenarios": 0, "events": 0, "restores_checked": 0}
    elapsed_max, worker_seconds, count = 0.0, 0.0, 0
    for name, data in reports:
        merged = data.get("kind") == MERGED
        count += int(data.get("reports", 1)) if merged else 1
        for key in total:
            total[key] += int(data.get(key, 0))
        phases.update({str(k): int(v) for k, v in data.get("phases_hit", {}).items()})
        if merged:
            statuses.update({str(k): int(v) for k, v in data.get("statuses", {}).items()})
            sources.extend(str(s) for s in data.get("sources", [name]))
            worker_seconds += float(data.get("worker_seconds", 0.0))
        else:
            statuses[data["status"]] += 1
            sources.append(name)
            worker_seconds += float(data.get("elapsed_s", 0.0))
        elapsed_max = max(elapsed_max, float(data.get("elapsed_s", 0.0)))
        for v in _violations(data):
            digest = str(v.get("digest") or v.get("token"))
            seen_in = v.get("found_in", [name]) if merged else [name]
            if digest in violations:
                violations[digest]["found_in"].extend(x for x in seen_in
                                                      if x not in violations[digest]["found_in"])
            else:
                entry = {k: val for k, val in v.items() if k != "found_in"}
                entry["digest"] = digest
                entry["found_in"] = list(seen_in)
                violations[digest] = entry
    hit = [p for p in CRASH_PHASES if phases.get(f"phase_crash:{p}")]
    status = ("violation" if violations else "stopped" if statuses.get("stopped")
              else "interrupted" if statuses.get("interrupted") else "clean")
    return {
        "kind": MERGED, "status": status, "reports": count, "statuses": dict(sorted(statuses.items())),
        **total,
        "phases_hit": dict(sorted(phases.items())),
        "faults_fired": sum(phases.values()),
        "crash_phases_hit": hit,
        "crash_phases_not_hit": [p for p in CRASH_PHASES if p not in hit],
        "elapsed_s": round(elapsed_max, 3), "worker_seconds": round(worker_seconds, 3),
        "rate": round(total["scenarios"] / elapsed_max, 2) if elapsed_max else 0.0,
        "violations": list(violations.values()),
        "sources": sources,
    }


def render_merged(data: dict[str, Any]) -> str:
    statuses = ", ".join(f"{v} {k}" for k, v in data["statuses"].items())
    lines = [f"merged {data['reports']} fuzz reports ({statuses}): {data['status']}",
             f"  scenarios {data['scenarios']:,} in {data['worker_seconds']:.0f} worker-seconds "
             f"({data['rate']:.0f}/s over the longest run, {data['elapsed_s']:.0f} s)",
             f"  simulated events {data['events']:,}, restores checked "
             f"{data['restores_checked']:,}, faults fired {data['faults_fired']:,}",
             f"  crash phases hit {len(data['crash_phases_hit'])}/{len(CRASH_PHASES)}"
             + (f"; not hit: {', '.join(data['crash_phases_not_hit'])}"
                if data["crash_phases_not_hit"] else "")]
    if not data["violations"]:
        lines.append("violations: none")
    else:
        lines.append(f"violations: {len(data['violations'])} distinct")
        for v in data["violations"]:
            where = ", ".join(v["found_in"])
            lines.append(f"  {v.get('property')} / {v.get('anomaly')}: {v.get('summary', '')} "
                         f"(in {where})")
            lines.append(f"    {v.get('replay') or 'onceflow replay ' + str(v.get('token'))}")
    return "\n".join(lines)
