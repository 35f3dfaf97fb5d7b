"""Load generator for bench_claims: workers driving claim cycles, or clients driving runs.

Runs in its own process (its CPU does not count against the service) and prints one
JSON line: commands per second, latency percentiles, and what the workers got.

``cycles``: the run and tasks are set up first (not timed); then every worker loops
claim -> start -> succeed until a claim finds nothing. ``singles``: clients drive run
lifecycles (create, start, 4 x usage.record, succeed): single-event commands only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import nats
from nats.aio.client import Client

from tests.bench.command_load import lifecycle


class Driver:
    """Requests with latency bookkeeping."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.latencies: list[float] = []
        self.by_subject: dict[str, list[float]] = {}
        self.failures: Counter[str] = Counter()

    async def send(self, subject: str, body: dict[str, Any], timed: bool = True
                   ) -> dict[str, Any]:
        started = time.perf_counter()
        msg = await self.nc.request(f"runlog.cmd.{subject}", json.dumps(body).encode(),
                                    timeout=60)
        if timed:
            took = time.perf_counter() - started
            self.latencies.append(took)
            self.by_subject.setdefault(subject, []).append(took)
        reply: dict[str, Any] = json.loads(msg.data)
        if not reply.get("ok"):
            self.failures[f"{subject}:{reply['error']['code']}"] += 1
        return reply


async def set_up(driver: Driver, tag: str, workers: int, tasks: int, keys: int = 0,
                 key_limit: int = 2) -> None:
    """A running run, the workers, and the queued tasks (in parallel, untimed)."""
    run_id = f"{tag}-run"
    await driver.send("run.create", {"run_id": run_id, "name": "claims"}, timed=False)
    await driver.send("run.start", {"run_id": run_id}, timed=False)
    await asyncio.gather(*(driver.send("worker.register", {
        "worker_id": f"{tag}-w{n}", "kinds": ["llm"], "capacity": 1}, timed=False)
        for n in range(workers)))
    def body(n: int) -> dict[str, Any]:
        keyed = {"concurrency_key": f"key-{n % keys}", "max_concurrency": key_limit} \
            if keys else {}
        return {"task_id": f"{tag}-t{n}", "run_id": run_id, "kind": "llm", "priority": n % 10,
                **keyed}

    for start in range(0, tasks, 200):
        await asyncio.gather(*(driver.send("task.submit", body(n), timed=False)
                               for n in range(start, min(tasks, start + 200))))


async def worker_loop(driver: Driver, worker_id: str, done: Counter[str]) -> None:
    """claim -> start -> succeed until the queue is empty."""
    while True:
        claimed = await driver.send("task.claim", {"worker_id": worker_id})
        task = claimed.get("task")
        if not claimed.get("ok") or task is None:
            return
        holder = {"task_id": task["task_id"], "worker_id": worker_id,
                  "lease_epoch": task["lease_epoch"]}
        await driver.send("task.start", holder)
        await driver.send("task.succeed", holder)
        done[task["task_id"]] += 1


async def cycles(url: str, tag: str, workers: int, tasks: int, keys: int = 0
                 ) -> dict[str, Any]:
    nc = await nats.connect(url)
    driver = Driver(nc)
    await set_up(driver, tag, workers, tasks, keys)
    done: Counter[str] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(worker_loop(driver, f"{tag}-w{n}", done) for n in range(workers)))
    elapsed = time.perf_counter() - started
    await nc.close()
    return report(driver, elapsed) | {"tasks_done": len(done),
                                      "done_twice": sum(1 for n in done.values() if n > 1),
                                      "claims_per_s": len(done) / elapsed}


async def singles(url: str, tag: str, clients: int, runs: int) -> dict[str, Any]:
    nc = await nats.connect(url)
    driver = Driver(nc)

    async def client(number: int) -> None:
        for n in range(runs):
            for action, body in lifecycle(number, n, tag):
                await driver.send(action, body)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    await nc.close()
    return report(driver, elapsed)


def report(driver: Driver, elapsed: float) -> dict[str, Any]:
    latencies = sorted(driver.latencies)
    return {"commands": len(latencies), "seconds": elapsed,
            "commands_per_s": len(latencies) / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
            "failures": dict(driver.failures),
            "p99_ms_by_subject": {s: sorted(v)[int(len(v) * 0.99)] * 1e3
                                  for s, v in driver.by_subject.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cycles", "singles"])
    parser.add_argument("url")
    parser.add_argument("--tag", default="b")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--runs", type=int, default=6, help="runs per client (singles)")
    parser.add_argument("--keys", type=int, default=0, help="concurrency keys (cycles)")
    args = parser.parse_args()
    result = (asyncio.run(cycles(args.url, args.tag, args.workers, args.tasks, args.keys))
              if args.mode == "cycles"
              else asyncio.run(singles(args.url, args.tag, args.clients, args.runs)))
    print(json.dumps(result))
