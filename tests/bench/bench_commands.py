"""Commands per second through the running command service, against two baselines.

Run by hand: ``python tests/bench/bench_commands.py [--runs N] [--rounds R]``.

64 concurrent clients (a separate process) each drive whole runs: create, start,
4 x usage.record (priced), succeed. In the same run, against:

(a) a raw nats-py responder doing the same JetStream append per request
    (JSON decode, one append with a msg id and the OCC header, a reply), both as a
    plain subscription callback (sequential, how nats-py runs callbacks) and with a
    task per request (concurrent, the stronger baseline);
(b) the same command mix on an ``eventsourcing`` Application with SQLite in a
    file, in-process (no network), sequential and with 8 threads.

Rounds alternate the contenders so machine noise hits all of them alike.
Targets: >= 0.5x (a) and >= 3x (b).

``--durability`` instead runs the service against two servers in the same run, the
default file store and ``RUNLOG_NATS_SYNC=always``, with the CPU per command spent
by the service (this process) and by nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.bootstrap import Instance, serve
from services.settings import Settings
from tests.bench import es_baseline
from tests.bench.common import CpuMeter, private_nats, private_nats_server
from tests.bench.raw_responder import subscribe_raw

LOAD = Path(__file__).with_name("command_load.py")


def run_load(url: str, runs_per_client: int, tag: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(LOAD), url, "--runs", str(runs_per_client),
                          "--tag", tag], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


async def runlog_round(url: str, runs: int, tag: str, data_dir: Path,
                       projectors: bool = False) -> dict[str, float]:
    settings = Settings(nats_url=url, data_dir=data_dir, stream=f"B_{tag}")
    async with serve(settings, url, projectors=projectors) as instance:
        sampler = asyncio.create_task(sample_lag(instance)) if projectors else None
        result = await asyncio.to_thread(run_load, url, runs, tag)
        if sampler is not None:
            result |= await catch_up(instance, sampler)
        await instance.store.js.delete_stream(settings.stream)
    return result


async def sample_lag(instance: Instance) -> list[int]:
    """Stream head minus projector position, every 50 ms, until cancelled."""
    read_side = instance.read_side
    assert read_side is not None
    lags: list[int] = []
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            lags.append(await instance.store.last_seq() - read_side.position)
            await asyncio.sleep(0.05)
    return lags


async def catch_up(instance: Instance, sampler: asyncio.Task[list[int]]) -> dict[str, float]:
    """Peak lag during the load, and how long the projectors took to finish after it."""
    assert instance.read_side is not None
    head = await instance.store.last_seq()
    started = time.perf_counter()
    await instance.read_side.wait_for_seq(head, timeout_s=120)
    caught_up_s = time.perf_counter() - started
    sampler.cancel()
    lags = await sampler
    return {"max_lag_events": max(lags, default=0), "catch_up_s": caught_up_s}


async def raw_round(url: str, runs: int, tag: str, concurrent: bool) -> dict[str, float]:
    nc = await nats.connect(url)
    await subscribe_raw(nc, f"R_{tag}", concurrent)
    try:
        return await asyncio.to_thread(run_load, url, runs, tag)
    finally:
        await nc.jetstream().delete_stream(f"R_{tag}")
        await nc.close()


def show(name: str, result: dict[str, float]) -> None:
    print(f"  {name:<28} {result['commands_per_s']:>8,.0f} commands/s   "
          f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms"
          f"{'   FAILURES ' + str(result['failures']) if result['failures'] else ''}")


async def projector_lag(runs: int) -> None:
    """(b) of the read side: do the live projectors keep up with this load?"""
    with private_nats() as url, tempfile.TemporaryDirectory() as data:
        result = await runlog_round(url, runs, "lag", Path(data), projectors=True)
    show("runlog + live projectors", result)
    print(f"  projector lag during the load: max {result['max_lag_events']:.0f} events; "
          f"caught up {result['catch_up_s'] * 1000:.0f} ms after the last reply")


async def main(runs: int, rounds: int) -> None:
    best: dict[str, dict[str, float]] = {}
    with private_nats() as url, tempfile.TemporaryDirectory() as data:
        for n in range(rounds):
            print(f"round {n + 1}")
            results = {
                "runlog": await runlog_round(url, runs, f"s{n}", Path(data) / f"s{n}"),
                "raw nats-py (sequential)": await raw_round(url, runs, f"q{n}", False),
                "raw nats-py (concurrent)": await raw_round(url, runs, f"c{n}", True),
            }
            for name, result in results.items():
                show(name, result)
                if result["commands_per_s"] > best.get(name, {}).get("commands_per_s", 0):
                    best[name] = result
    es_runs = runs * 64 // 4
    es = {"eventsourcing+SQLite (1 thread)": es_baseline.measure(es_runs, 1),
          "eventsourcing+SQLite (8 threads)": es_baseline.measure(es_runs, 8)}
    summarize(best, es)


def summarize(best: dict[str, dict[str, float]], es: dict[str, float]) -> None:
    ours = best["runlog"]["commands_per_s"]
    print(f"\nbest of rounds ({best['runlog']['commands']:.0f} commands each):")
    for name, result in best.items():
        show(name, result)
    for name, rate in es.items():
        print(f"  {name:<28} {rate:>8,.0f} commands/s")
    seq, conc = (best[f"raw nats-py ({k})"]["commands_per_s"] for k in ("sequential", "concurrent"))
    es_best = max(es.values())
    print(f"\nratio vs raw responder: {ours / seq:.2f}x sequential, {ours / conc:.2f}x concurrent"
          f" (target >= 0.5)\nratio vs eventsourcing+SQLite: {ours / es_best:.2f}x (target >= 3)")


async def durability(runs: int, rounds: int) -> None:
    """The service's commands/s with the default sync and with ``sync_interval: always``."""
    best: dict[str, dict[str, float]] = {}
    with private_nats_server("default") as default, private_nats_server("always") as always, \
            tempfile.TemporaryDirectory() as data:
        for n in range(rounds):
            print(f"round {n + 1}")
            for mode, server in (("default", default), ("always", always)):
                assert server.process is not None
                with CpuMeter(server.process.pid) as cpu:
                    result = await runlog_round(server.url, runs, f"{mode}{n}",
                                                Path(data) / f"{mode}{n}")
                show(f"runlog, sync {mode}", result)
                print(f"  {'':<28} {cpu.per_op_us(int(result['commands']))}")
                if result["commands_per_s"] > best.get(mode, {}).get("commands_per_s", 0):
                    best[mode] = result
    ratio = best["always"]["commands_per_s"] / best["default"]["commands_per_s"]
    print(f"\nbest of {rounds}: default {best['default']['commands_per_s']:,.0f}/s, always "
          f"{best['always']['commands_per_s']:,.0f}/s, ratio always/default {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=12, help="runs per client (7 commands each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--with-projectors", action="store_true",
                        help="instead: one round with the live projectors, reporting their lag")
    parser.add_argument("--durability", action="store_true",
                        help="instead: the service with the default sync against sync always")
    options = parser.parse_args()
    if options.with_projectors:
        asyncio.run(projector_lag(options.runs))
    elif options.durability:
        asyncio.run(durability(options.runs, options.rounds))
    else:
        asyncio.run(main(options.runs, options.rounds))
