"""Fleet-wide progress: every fuzz worker publishes its counters to the shared Redis.

Each worker keeps one hash, `onceflow:<name>:fleet:worker:<id>`, refreshed every
`PUBLISH_EVERY` seconds from a background thread (a slow or vanished Redis
never stalls fuzzing); a worker not heard from for `STALE_AFTER` seconds is
listed as silent (its counters still count), and every entry expires a day
after its last update.  Violations go to one hash per corpus, keyed by digest, so
that each distinct one is listed once with its replay command.  `onceflow
status` reads them back: the fleet's totals, its rate, the crash phases no
worker has hit yet, and the violations.

Traffic: 3 commands per worker every `PUBLISH_EVERY` seconds (4 with
--stop-on-first), whatever the worker's speed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from typing import Any, Callable

from onceflow.faults.plan import CRASH_PHASES
from onceflow.search.corpus import CORPUS_TTL, _first_line, corpus_prefix, warn

__all__ = ["FleetPublisher", "fleet_status", "render_status", "replay_command", "worker_id"]

PUBLISH_EVERY = 3.0
FINISHED_TTL = 24 * 3600  # s: a worker stays in `onceflow status` for a day after its last update
STALE_AFTER = 10.0  # s without an update: a running worker is listed as silent (died, or cut off)


def worker_id(suffix: str = "") -> str:
    """host-pid (a pod's or runner's host name tells the machines apart)."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}{suffix}"


def replay_command(finding: Any) -> str:
    command = getattr(finding, "replay", None)
    if isinstance(command, str) and command:
        return command
    return f"onceflow replay {finding.token}"


def _keys(name: str) -> tuple[str, str, str]:
    base = f"{corpus_prefix(name)}fleet:"
    return f"{base}workers", f"{base}worker:", f"{base}violations"


def counters(stats: Any) -> dict[str, Any]:
    """A worker's counters from its FuzzStats (copied: the fuzz loop keeps changing them)."""
    phases = dict(stats.phases)
    return {"scenarios": stats.scenarios, "events": stats.events, "restores": stats.restores,
            "violations": stats.violations, "faults": sum(phases.values()),
            "elapsed": round(stats.elapsed, 3), "phases": phases}


class FleetPublisher:
    """Publishes one worker's counters and findings to the fleet, from a daemon thread."""

    def __init__(self, client: Any, *, name: str, worker: str | None = None,
                 pins: dict[str, Any] | None = None, stop_on_first: bool = False,
                 every: float = PUBLISH_EVERY,
                 on_warning: Callable[[str], None] = warn) -> None:
        self.client = client
        self.name = name
        self.worker = worker or worker_id()
        self.workers_key, worker_prefix, self.violations_key = _keys(name)
        self.worker_key = worker_prefix + self.worker
        self.pins = pins or {}
        self.stop_on_first = stop_on_first
        self.every = every
        self.on_warning = on_warning
        self.started = time.time()
        self.status = "running"
        self._latest: dict[str, Any] = {"scenarios": 0, "events": 0, "restores": 0,
                                        "violations": 0, "faults": 0, "elapsed": 0.0,
                                        "phases": {}}
        self._pending: dict[str, str] = {}  # digest -> violation JSON not yet published
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._known_violations: int | None = None
        self.stopped_by: dict[str, Any] | None = None
        self.away = False
        self.published = 0

    # called from the fuzz loop: cheap, no I/O
    def update(self, stats: Any) -> None:
        snapshot = counters(stats)
        with self._lock:
            self._latest = snapshot

    def found(self, finding: Any, *, pins: dict[str, Any] | None = None) -> None:
        """Queue a violation for the fleet (published with the next update)."""
        data = {"digest": finding.digest, "property": finding.property,
                "anomaly": finding.anomaly, "summary": finding.summary, "token": finding.token,
                "replay": replay_command(finding), "worker": self.worker,
                "found_at": round(time.time(), 3), "pins": pins if pins is not None else self.pins}
        with self._lock:
            self._pending[finding.digest or finding.token] = json.dumps(data, sort_keys=True)

    def should_stop(self) -> bool:
        return self.stopped_by is not None

    def start(self) -> "FleetPublisher":
        self.publish()
        self._thread = threading.Thread(target=self._loop, name="onceflow-fleet", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self.publish()

    def finish(self, status: str) -> bool:
        """Stop publishing; the final counters stay listed for a day.  False if Redis was away."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=COMMAND_JOIN)
        self.status = status
        return self.publish()

    @property
    def unpublished(self) -> int:
        with self._lock:
            return len(self._pending)

    def publish(self) -> bool:
        import redis  # noqa: PLC0415

        with self._lock:
            latest = dict(self._latest)
            pending = dict(self._pending)
        now = time.time()
        fields = {"worker": self.worker, "status": self.status, "started": round(self.started, 3),
                  "updated": round(now, 3), "pins": json.dumps(self.pins, sort_keys=True),
                  "phases": json.dumps(latest.pop("phases"), sort_keys=True),
                  **{k: str(v) for k, v in latest.items()}}
        # a worker killed mid-run keeps its last counters in the totals (listed as silent)
        ttl = FINISHED_TTL
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.worker_key, mapping=fields)
            pipe.expire(self.worker_key, ttl)
            pipe.zadd(self.workers_key, {self.worker: now})
            if self.published % 20 == 0 or self.status != "running":
                pipe.expire(self.workers_key, FINISHED_TTL)
            for digest, data in pending.items():
                pipe.hsetnx(self.violations_key, digest, data)
            if pending:
                pipe.expire(self.violations_key, int(CORPUS_TTL.total_seconds()))
            if self.stop_on_first:
                pipe.hlen(self.violations_key)
            replies = pipe.execute()
        except redis.RedisError as exc:
            if not self.away:
                self.away = True
                self.on_warning(f"fleet progress not published: {_first_line(exc)}; this worker "
                                "keeps fuzzing and publishes again when Redis is back")
            return False
        if self.away:
            self.away = False
            self.on_warning("fleet progress published again")
        self.published += 1
        with self._lock:
            for digest in pending:
                self._pending.pop(digest, None)
        if self.stop_on_first:
            self._watch(int(replies[-1]), len(pending))
        return True

    def _watch(self, violations: int, mine: int) -> None:
        """--stop-on-first: stop when the fleet's violation count grows by someone else's."""
        if self._known_violations is None or mine:
            self._known_violations = violations
            return
        if self.stop_on_first and violations > self._known_violations and self.stopped_by is None:
            try:
                found = [json.loads(v) for v in self.client.hvals(self.violations_key)]
                newest = max(found, key=lambda v: v.get("found_at", 0))
            except Exception:  # noqa: BLE001 - an unreadable entry still means: stop
                newest = {"worker": "another worker", "replay": "onceflow status --db ..."}
            self.stopped_by = newest
        self._known_violations = violations


COMMAND_JOIN = 15.0


# -- reading the fleet back ---------------------------------------------------------------

def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def fleet_status(client: Any, name: str, *, now: float | None = None,
                 on_warning: Callable[[str], None] = warn) -> dict[str, Any]:
    """The fleet's workers, totals, rate, crash phases not yet hit and violations."""
    now = time.time() if now is None else now
    workers_key, worker_prefix, violations_key = _keys(name)
    ids = [_text(w) for w in client.zrange(workers_key, 0, -1)]
    pipe = client.pipeline(transaction=False)
    for w in ids:
        pipe.hgetall(worker_prefix + w)
    rows = pipe.execute() if ids else []
    workers: list[dict[str, Any]] = []
    gone = []
    for w, raw in zip(ids, rows):
        if not raw:
            gone.append(w)
            continue
        data = {_text(k): _text(v) for k, v in raw.items()}
        try:
            phases = {str(k): _int(v) for k, v in json.loads(data.get("phases", "{}")).items()}
            pins = json.loads(data.get("pins", "{}"))
        except (ValueError, AttributeError):
            on_warning(f"skipped the unreadable progress entry of worker {w!r}")
            continue
        status = data.get("status", "running")
        updated = _float(data.get("updated"))
        if status == "running" and now - updated > STALE_AFTER:
            status = "silent"
        elapsed = _float(data.get("elapsed"))
        scenarios = _int(data.get("scenarios"))
        workers.append({"worker": w, "status": status, "scenarios": scenarios,
                        "events": _int(data.get("events")), "restores": _int(data.get("restores")),
                        "violations": _int(data.get("violations")),
                        "faults": _int(data.get("faults")), "elapsed": elapsed,
                        "rate": round(scenarios / elapsed, 2) if elapsed > 0 else 0.0,
                        "updated_ago": round(max(0.0, now - updated), 1), "phases": phases,
                        "pins": pins})
    if gone:
        client.zrem(workers_key, *gone)
    violations = []
    for digest, raw in sorted(client.hgetall(violations_key).items()):
        try:
            entry = json.loads(_text(raw))
            if not isinstance(entry, dict) or "token" not in entry:
                raise ValueError
        except ValueError:
            on_warning(f"skipped an unreadable violation entry {_text(digest)[:40]!r}")
            continue
        violations.append(entry)
    violations.sort(key=lambda v: _float(v.get("found_at")))
    phases: Counter[str] = Counter()
    for w in workers:
        phases.update(w["phases"])
    hit = [p for p in CRASH_PHASES if phases.get(f"phase_crash:{p}")]
    running = [w for w in workers if w["status"] == "running"]
    return {
        "corpus": name,
        "workers": len(workers), "running": len(running),
        "scenarios": sum(w["scenarios"] for w in workers),
        "events": sum(w["events"] for w in workers),
        "restores_checked": sum(w["restores"] for w in workers),
        "faults_fired": sum(w["faults"] for w in workers),
        "violations_seen": sum(w["violations"] for w in workers),
        "rate": round(sum(w["rate"] for w in running), 2),
        "phases_hit": dict(sorted(phases.items())),
        "crash_phases_hit": hit,
        "crash_phases_not_hit": [p for p in CRASH_PHASES if p not in hit],
        "violations": violations,
        "worker_list": workers,
    }


def render_status(data: dict[str, Any]) -> str:
    lines = [f"fleet {data['corpus']}: {data['workers']} workers ({data['running']} running), "
             f"{data['scenarios']:,} scenarios, {data['rate']:.0f} scenarios/s now",
             f"  simulated events {data['events']:,}, restores checked {data['restores_checked']:,}, "
             f"faults fired {data['faults_fired']:,}",
             f"  crash phases hit {len(data['crash_phases_hit'])}/{len(CRASH_PHASES)}"
             + (f"; not yet: {', '.join(data['crash_phases_not_hit'])}"
                if data["crash_phases_not_hit"] else "")]
    for w in data["worker_list"]:
        lines.append(f"  {w['worker']}: {w['status']}, {w['scenarios']:,} scenarios "
                     f"({w['rate']:.0f}/s), restores {w['restores']:,}, faults {w['faults']:,}, "
                     f"violations {w['violations']}, updated {w['updated_ago']:.0f} s ago")
    if not data["violations"]:
        lines.append("violations: none")
    else:
        lines.append(f"violations: {len(data['violations'])} distinct")
        for v in data["violations"]:
            lines.append(f"  {v.get('property')} / {v.get('anomaly')} (worker {v.get('worker')}): "
                         f"{v.get('summary', '')}")
            lines.append(f"    {v.get('replay') or 'onceflow replay ' + str(v.get('token'))}")
    return "\n".join(lines)
