"""Claim cycles against single-event commands, in the same ``runlog up``.

Run by hand: ``python tests/bench/bench_claims.py [--rounds N] [--replicas 2] [--scale]``.

``--scale``: 10,000 queued tasks and 200 workers, cycles without limits against cycles
whose tasks share 50 concurrency keys (limit 2 each), claims/s side by side.

``runlog up`` (everything on: projectors and policies) serves a private nats-server.
A load process alternates two workloads on it, round by round, so that machine noise
hits both alike:

- singles: 32 clients drive run lifecycles (create, start, 4 x usage.record, succeed),
  single-event commands only;
- cycles: 32 workers each loop claim -> start -> succeed over 400 queued tasks.

It prints commands/s, latency and the service's CPU per command (all its processes,
user + system, read from /proc) for each, and the ratio cycles/singles (target >= 0.5).
Every task must be done exactly once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import private_nats, process_tree_cpu_s
from tests.e2e.cli import runlog_env, wait_for_instance


def start_service(url: str, data_dir: Path, stream: str) -> subprocess.Popen[str]:
    """``runlog up`` on the private NATS, everything on."""
    # Load workers do not send worker heartbeats: a long set-up must not get them marked lost.
    env = runlog_env(data_dir) | {"RUNLOG_NATS_URL": url, "RUNLOG_STREAM": stream,
                                  "RUNLOG_WORKER_TIMEOUT_S": "3600"}
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_instance(data_dir, process)
    return process


def load(mode: str, url: str, tag: str, extra: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "tests.bench.claim_load", mode, url, "--tag", tag,
                          *extra],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def measured(mode: str, url: str, tag: str, pids: list[int], extra: list[str]
             ) -> dict[str, Any]:
    before = sum(process_tree_cpu_s(pid) for pid in pids)
    result = load(mode, url, tag, extra)
    used = sum(process_tree_cpu_s(pid) for pid in pids) - before
    # The cycles' untimed set-up is in the CPU figure: count its commands too.
    set_up = (int(extra[extra.index("--workers") + 1]) + int(extra[extra.index("--tasks") + 1])
              + 2) if mode == "cycles" else 0
    result["cpu_us_per_command"] = used / (result["commands"] + set_up) * 1e6
    return result


def scale(rounds: int, replicas: int, workers: int, tasks: int, keys: int) -> None:
    """Claims/s with ``tasks`` queued and ``workers`` workers, with and without ``keys``."""
    with private_nats() as url, tempfile.TemporaryDirectory() as tmp:
        services = [start_service(url, Path(tmp) / f"replica-{n}", "BENCH_SCALE")
                    for n in range(replicas)]
        pids = [p.pid for p in services]
        results: dict[str, list[dict[str, Any]]] = {"no limits": [], f"{keys} keys": []}
        try:
            for n in range(rounds):
                for name, key_count in (("no limits", 0), (f"{keys} keys", keys)):
                    results[name].append(measured("cycles", url, f"x{n}{key_count}", pids, [
                        "--workers", str(workers), "--tasks", str(tasks),
                        "--keys", str(key_count)]))
        finally:
            for process in services:
                process.terminate()
                process.wait(timeout=60)
    print(f"runlog up x{replicas}, {workers} workers, {tasks} queued tasks; keys of limit 2")
    for name, rounds_done in results.items():
        for r in rounds_done:
            print(f"  {name:10s} {r['claims_per_s']:7.0f} claims/s  {r['commands_per_s']:7.0f} "
                  f"cmd/s  p99 {r['p99_ms']:7.1f} ms  CPU {r['cpu_us_per_command']:6.0f} us/cmd"
                  f"  done {r['tasks_done']} twice {r['done_twice']} failures {r['failures']}")
    base, keyed = (statistics.median(r["claims_per_s"] for r in v) for v in results.values())
    print(f"median claims/s: no limits {base:.0f}, {keys} keys {keyed:.0f}, "
          f"ratio {keyed / base:.2f}")


def main(rounds: int, replicas: int, workers: int, tasks: int) -> None:
    with private_nats() as url, tempfile.TemporaryDirectory() as tmp:
        services = [start_service(url, Path(tmp) / f"replica-{n}", "BENCH_CLAIMS")
                    for n in range(replicas)]
        pids = [p.pid for p in services]
        results: dict[str, list[dict[str, Any]]] = {"singles": [], "cycles": []}
        try:
            for n in range(rounds):
                results["singles"].append(measured(
                    "singles", url, f"s{n}", pids, ["--clients", str(workers)]))
                results["cycles"].append(measured(
                    "cycles", url, f"c{n}", pids, ["--workers", str(workers),
                                                   "--tasks", str(tasks)]))
                time.sleep(0.5)
        finally:
            for process in services:
                process.terminate()
                process.wait(timeout=30)
    print_report(results, replicas, workers, tasks)


def print_report(results: dict[str, list[dict[str, Any]]], replicas: int, workers: int,
                 tasks: int) -> None:
    print(f"runlog up x{replicas} (projectors and policies on), {workers} clients/workers, "
          f"{tasks} tasks per cycles round")
    for mode, rounds in results.items():
        for r in rounds:
            extra = (f", tasks done {r['tasks_done']}, done twice {r['done_twice']}"
                     if mode == "cycles" else "")
            print(f"  {mode:8s} {r['commands_per_s']:8.0f} cmd/s  p50 {r['p50_ms']:6.1f} ms  "
                  f"p99 {r['p99_ms']:7.1f} ms  CPU {r['cpu_us_per_command']:6.0f} us/cmd  "
                  f"failures {r['failures']}{extra}")
    singles = statistics.median(r["commands_per_s"] for r in results["singles"])
    cycles = statistics.median(r["commands_per_s"] for r in results["cycles"])
    print(f"median: singles {singles:.0f} cmd/s, cycles {cycles:.0f} cmd/s, "
          f"ratio cycles/singles {cycles / singles:.2f} (target >= 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--scale", action="store_true",
                        help="10,000 queued tasks, 200 workers, with and without 50 keys")
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    if args.scale:
        scale(args.rounds, args.replicas, 200, 10_000, args.keys)
    else:
        main(args.rounds, args.replicas, args.workers, args.tasks)
