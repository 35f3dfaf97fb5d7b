"""Load generator for bench_commands: 64 clients each driving whole run lifecycles.

Runs in its own process (so its CPU does not slow the service under test) and
prints one JSON line: commands per second and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import nats

MODELS = ("gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "gpt-4.1-mini")


def lifecycle(client: int, n: int, tag: str) -> list[tuple[str, dict[str, object]]]:
    """The command mix of one run: create, start, 4 x usage.record, succeed."""
    run_id = f"{tag}-c{client}-r{n}"
    usage = [("usage.record", {"run_id": run_id, "model": MODELS[i], "tokens_in": 1200 + i,
                               "tokens_out": 300 + i, "latency_ms": 850.0}) for i in range(4)]
    return [("run.create", {"run_id": run_id, "name": f"bench run {n}"}),
            ("run.start", {"run_id": run_id}), *usage, ("run.succeed", {"run_id": run_id})]


async def drive(url: str, clients: int, runs_per_client: int, tag: str) -> dict[str, float]:
    nc = await nats.connect(url)
    latencies: list[float] = []
    failures = 0

    async def client(number: int) -> None:
        nonlocal failures
        for n in range(runs_per_client):
            for action, body in lifecycle(number, n, tag):
                started = time.perf_counter()
                reply = await nc.request(f"runlog.cmd.{action}", json.dumps(body).encode(),
                                         timeout=30)
                latencies.append(time.perf_counter() - started)
                failures += not json.loads(reply.data).get("ok")

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    await nc.close()
    latencies.sort()
    return {"commands_per_s": len(latencies) / elapsed, "commands": len(latencies),
            "failures": failures, "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--runs", type=int, default=10, help="runs per client")
    parser.add_argument("--tag", default="b")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drive(args.url, args.clients, args.runs, args.tag))))
