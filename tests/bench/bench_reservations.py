"""Reserve + settle pairs on one hot shared budget against plain ``usage.record``, same run.

Run by hand: ``python tests/bench/bench_reservations.py [--rounds N] [--replicas 2]
[--clients 64] [--pairs 20]``.

``runlog up`` replicas (everything on: projectors and policies) serve a private
nats-server. A load process (its CPU is not the service's) alternates two workloads,
round by round, so machine noise hits both alike:

- plain: every client records ``usage.record`` (no reservation, post-hoc) on its own run,
  all runs drawing on one shared budget;
- pairs: every client loops ``budget.reserve`` -> ``usage.record`` with the reservation
  id on the same budget (a hot shared budget, a daily token budget on top).

It prints pairs/s against plain usage/s, latency, the service's CPU per command (all its
processes, user + system, from /proc) and every refusal by code: no ``conflict`` may
reach a client (target: >= 200 pairs/s from 64 clients on 2 replicas).
"""

from __future__ import annotations

import argparse
import asyncio
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

import nats

from tests.bench.bench_claims import start_service
from tests.bench.claim_load import Driver, report
from tests.bench.common import private_nats, process_tree_cpu_s

_PRICE = {"model": "bench-m", "provider": "bench", "input_usd_per_mtok": 1.0,
          "output_usd_per_mtok": 2.0, "effective_from": "2020-01-01T00:00:00Z"}


async def set_up(driver: Driver, tag: str, clients: int) -> None:
    """The price, the hot budget and one running run per client (untimed)."""
    await driver.send("model.register", _PRICE, timed=False)
    await driver.send("budget.create", {"budget_id": "hot", "name": "hot",
                                        "max_cost_usd": 1_000_000.0}, timed=False)
    await driver.send("budget.create", {"budget_id": "daily", "name": "daily", "scope": "day",
                                        "max_tokens": 10**12}, timed=False)
    await asyncio.gather(*(driver.send("run.create", {
        "run_id": f"{tag}-r{n}", "name": "bench", "budget_id": "hot"}, timed=False)
        for n in range(clients)))
    await asyncio.gather(*(driver.send("run.start", {"run_id": f"{tag}-r{n}"}, timed=False)
                           for n in range(clients)))


def _usage(run_id: str, reservation_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"run_id": run_id, "model": "bench-m", "tokens_in": 300,
                            "tokens_out": 100}
    return body | ({"reservation_id": reservation_id} if reservation_id else {})


async def run_load(url: str, mode: str, tag: str, clients: int, pairs: int) -> dict[str, Any]:
    """One round of ``mode``; prints nothing, returns the figures."""
    nc = await nats.connect(url)
    driver = Driver(nc)
    await set_up(driver, tag, clients)

    async def client(n: int) -> None:
        run_id = f"{tag}-r{n}"
        for _ in range(pairs):
            if mode == "plain":
                await driver.send("usage.record", _usage(run_id))
                continue
            reserved = await driver.send("budget.reserve", {
                "run_id": run_id, "estimate_tokens": 800, "estimate_cost_usd": "0.002"})
            if reserved.get("ok"):
                await driver.send("usage.record", _usage(run_id, reserved["reservation_id"]))

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    await nc.close()
    figures = report(driver, elapsed)
    units = clients * pairs
    return figures | {"units_per_s": units / elapsed, "set_up_commands": 3 + 2 * clients}


def measured(url: str, mode: str, tag: str, pids: list[int], clients: int, pairs: int
             ) -> dict[str, Any]:
    before = sum(process_tree_cpu_s(pid) for pid in pids)
    out = subprocess.run([sys.executable, "-m", "tests.bench.bench_reservations", "--load",
                          mode, "--url", url, "--tag", tag, "--clients", str(clients),
                          "--pairs", str(pairs)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    result: dict[str, Any] = json.loads(out.stdout)
    used = sum(process_tree_cpu_s(pid) for pid in pids) - before
    result["cpu_us_per_command"] = used / (result["commands"] + result["set_up_commands"]) * 1e6
    return result


def main(rounds: int, replicas: int, clients: int, pairs: int) -> None:
    with private_nats() as url, tempfile.TemporaryDirectory() as tmp:
        services = [start_service(url, Path(tmp) / f"replica-{n}", "BENCH_RESERVATIONS")
                    for n in range(replicas)]
        pids = [p.pid for p in services]
        results: dict[str, list[dict[str, Any]]] = {"plain": [], "pairs": []}
        try:
            for n in range(rounds):
                for mode in results:
                    results[mode].append(measured(url, mode, f"{mode}{n}", pids, clients,
                                                  pairs))
                    time.sleep(0.5)
        finally:
            for process in services:
                process.terminate()
                process.wait(timeout=60)
    print_report(results, replicas, clients, pairs)


def print_report(results: dict[str, list[dict[str, Any]]], replicas: int, clients: int,
                 pairs: int) -> None:
    print(f"runlog up x{replicas} (projectors and policies on), {clients} clients x {pairs}, "
          "one hot shared budget")
    unit = {"plain": "usage/s", "pairs": "pairs/s"}
    for mode, rounds in results.items():
        for r in rounds:
            by_subject = {k: round(v, 1) for k, v in r["p99_ms_by_subject"].items()}
            print(f"  {mode:6s} {r['units_per_s']:7.0f} {unit[mode]}  {r['commands_per_s']:6.0f} "
                  f"cmd/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                  f"CPU {r['cpu_us_per_command']:5.0f} us/cmd  refusals {r['failures']}  "
                  f"p99 by subject {json.dumps(by_subject)}")
    plain = statistics.median(r["units_per_s"] for r in results["plain"])
    paired = statistics.median(r["units_per_s"] for r in results["pairs"])
    conflicts = sum(v for r in results["pairs"] + results["plain"]
                    for k, v in r["failures"].items() if k.endswith(":conflict"))
    print(f"median: plain usage.record {plain:.0f}/s, reserve+settle {paired:.0f} pairs/s, "
          f"ratio {paired / plain:.2f}; conflicts reaching a client: {conflicts} "
          "(target >= 200 pairs/s, 0 conflicts)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=20, help="per client and round")
    parser.add_argument("--load", choices=["plain", "pairs"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="b", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(run_load(args.url, args.load, args.tag, args.clients,
                                              args.pairs))))
    else:
        main(args.rounds, args.replicas, args.clients, args.pairs)
