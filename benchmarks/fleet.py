"""Fleet scaling: scenarios/s with 1 and 2 `onceflow fuzz` workers on one Redis, side by side.

    python benchmarks/fleet.py [--seconds 30] [--repeat 3] [--json]

Starts its own redis-server on a free loopback port (stopped at the end) and,
in one run, alternates: one worker with a directory corpus (the baseline),
one worker on Redis, two workers on Redis at once.  Each worker is a real
`onceflow fuzz --budget S --json` process over the correct model (so it runs
its whole budget).  It prints the rates, the 2-worker speed-up against 1, the
Redis overhead against the directory corpus, the Redis traffic (commands per
second per worker and per scenario, from INFO commandstats) and what
redis-benchmark says this Redis can take, hence how many workers it can serve.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).parent / "onceflow"
ONCEFLOW = ([str(_SCRIPT)] if _SCRIPT.exists() else
            [sys.executable, "-c", "import sys; from onceflow.cli import main; sys.exit(main())"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder), "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def workers(n: int, db: str, seconds: float, name: str, cwd: Path, seed: int) -> list[dict[str, Any]]:
    procs = [subprocess.Popen([*ONCEFLOW, "fuzz", "--budget", f"{seconds}s", "--db", db,
                               "--corpus-name", name, "--seed", str(seed * 10 + i), "--json",
                               "--worker-name", f"{name}-{i}"],
                              cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for i in range(n)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"a worker exited {p.returncode} (a violation on the correct model?)")
        out.append(json.loads(stdout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="budget of each fuzz run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, port = start_redis(folder)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis(port=port)
        rows: dict[str, list[float]] = {"dir1": [], "redis1": [], "redis2": [], "speedup": [],
                                        "overhead": [], "cmd_per_s_worker": [],
                                        "cmd_per_scenario": []}
        try:
            for r in range(args.repeat):
                d = workers(1, str(folder / f"db{r}"), args.seconds, f"dir{r}", folder, r)
                rows["dir1"].append(d[0]["scenarios"] / d[0]["elapsed_s"])
                before = commands(client)
                one = workers(1, url, args.seconds, f"one{r}", folder, r)
                two = workers(2, url, args.seconds, f"two{r}", folder, r)
                used = commands(client) - before
                rate1 = one[0]["scenarios"] / one[0]["elapsed_s"]
                rate2 = sum(w["scenarios"] / w["elapsed_s"] for w in two)
                rows["redis1"].append(rate1)
                rows["redis2"].append(rate2)
                rows["speedup"].append(rate2 / rate1)
                rows["overhead"].append(rate1 / rows["dir1"][-1])
                worker_seconds = sum(w["elapsed_s"] for w in one + two)
                rows["cmd_per_s_worker"].append(used / worker_seconds)
                rows["cmd_per_scenario"].append(used / sum(w["scenarios"] for w in one + two))
            bench = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", "50000",
                                    "-t", "hset,sadd,set", "--csv"],
                                   capture_output=True, text=True, timeout=300)
            capacity = [float(line.split(",")[1].strip('"'))
                        for line in bench.stdout.splitlines()[1:] if line.count(",") >= 1]
        finally:
            server.terminate()
            server.wait()
    med = {k: statistics.median(v) for k, v in rows.items()}
    ops = min(capacity) if capacity else float("nan")
    result = {"seconds": args.seconds, "repeat": args.repeat, "runs": rows, "median": med,
              "redis_ops_per_s": ops,
              "workers_per_redis": ops / med["cmd_per_s_worker"] if capacity else None}
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    print(f"{args.repeat} rounds of {args.seconds:g} s per configuration (median, min-max):")
    for key, label in (("dir1", "1 worker, directory corpus"), ("redis1", "1 worker, Redis"),
                       ("redis2", "2 workers, one Redis (sum)")):
        v = rows[key]
        print(f"  {label:30s} {med[key]:7.1f} scenarios/s ({min(v):.1f}-{max(v):.1f})")
    print(f"  speed-up 2 workers / 1 worker:  {med['speedup']:.2f}x "
          f"({min(rows['speedup']):.2f}-{max(rows['speedup']):.2f})")
    print(f"  Redis / directory, 1 worker:    {med['overhead']:.3f}x")
    print(f"  Redis traffic: {med['cmd_per_s_worker']:.2f} commands/s per worker, "
          f"{med['cmd_per_scenario']:.4f} commands per scenario")
    if capacity:
        print(f"  redis-benchmark (hset, sadd, set; same machine): {ops:,.0f} ops/s at least; "
              f"one Redis serves ~{result['workers_per_redis']:,.0f} workers at this traffic")


if __name__ == "__main__":
    main()
