"""Appends per second of the event store against raw ``js.publish`` in the same run.

Run by hand: ``python tests/bench/bench_append.py [--appends N] [--rounds R] [--durability]``.
64 concurrent appenders over 1,000 aggregates, one event per append, optimistic
concurrency on (each aggregate is owned by one appender, which tracks its last
sequence as a cached aggregate would). The baseline publishes the same bytes with
plain ``js.publish`` at the same concurrency. Rounds alternate, so machine noise
hits both sides alike; the ratio is store / raw.

``--durability`` instead compares the store on two servers in the same run: the
default file store (synced every 2 minutes) and ``RUNLOG_NATS_SYNC=always`` (every
write synced before it is acknowledged), with the CPU spent per append on each side.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import nats
from nats.aio.client import Client

if __package__ in (None, ""):  # run as a script: make the project root importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from events import EventEnvelope, utc_now
from services.store import JetStreamEventStore
from tests.bench.common import CpuMeter, Timer, private_nats, private_nats_server, summary
from tests.support.log import append_events

CONCURRENCY = 64
AGGREGATES = 1000


def event(aggregate_id: str, version: int) -> EventEnvelope:
    return EventEnvelope(
        type="UsageRecorded", schema_version=1, event_id=uuid.uuid4().hex, aggregate="run",
        aggregate_id=aggregate_id, version=version, occurred_at=utc_now(),
        command_id=uuid.uuid4().hex, from_state="running", to_state="running",
        data={"run_id": aggregate_id, "model": "gpt-4o", "tokens_in": 1200, "tokens_out": 300,
              "cost_usd": 0.006},
    )


async def fresh_store(nc: Client, name: str) -> JetStreamEventStore:
    store = JetStreamEventStore(nc, stream=name, subject_prefix=f"{name.lower()}.evt")
    await store.ensure_stream()
    return store


async def store_round(store: JetStreamEventStore, appends: int) -> float:
    last_seq: dict[str, int] = {}
    versions: dict[str, int] = {}

    async def appender(worker: int) -> None:
        owned = [f"a{n}" for n in range(worker, AGGREGATES, CONCURRENCY)]
        for i in range(appends // CONCURRENCY):
            aggregate_id = owned[i % len(owned)]
            versions[aggregate_id] = versions.get(aggregate_id, 0) + 1
            result = await append_events(store, [event(aggregate_id, versions[aggregate_id])],
                                         last_seq.get(aggregate_id, 0))
            last_seq[aggregate_id] = result.last_seq

    with Timer() as timer:
        await asyncio.gather(*(appender(w) for w in range(CONCURRENCY)))
    return (appends // CONCURRENCY) * CONCURRENCY / timer.seconds


async def raw_round(nc: Client, subject_prefix: str, appends: int) -> float:
    js = nc.jetstream()

    async def publisher(worker: int) -> None:
        for i in range(appends // CONCURRENCY):
            aggregate_id = f"a{(worker + i * CONCURRENCY) % AGGREGATES}"
            await js.publish(f"{subject_prefix}.run.{aggregate_id}",
                             event(aggregate_id, 1).to_json())

    with Timer() as timer:
        await asyncio.gather(*(publisher(w) for w in range(CONCURRENCY)))
    return (appends // CONCURRENCY) * CONCURRENCY / timer.seconds


async def latency(nc: Client, store: JetStreamEventStore, samples: int) -> tuple[str, str]:
    js = nc.jetstream()
    store_lat, raw_lat = [], []
    last = 0
    for version in range(1, samples + 1):
        with Timer() as t:
            last = (await append_events(store, [event("lat", version)], last)).last_seq
        store_lat.append(t.seconds)
        with Timer() as t:
            await js.publish(f"{store.subject_prefix}.run.rawlat", event("rawlat", 1).to_json())
        raw_lat.append(t.seconds)
    return summary(store_lat), summary(raw_lat)


async def main(appends: int, rounds: int) -> None:
    with private_nats() as url:
        nc = await nats.connect(url)
        store_rates, raw_rates = [], []
        for n in range(rounds):
            store = await fresh_store(nc, f"BENCH_STORE_{n}")
            store_rates.append(await store_round(store, appends))
            raw_store = await fresh_store(nc, f"BENCH_RAW_{n}")
            raw_rates.append(await raw_round(nc, raw_store.subject_prefix, appends))
            print(f"round {n + 1}: store {store_rates[-1]:,.0f}/s  raw {raw_rates[-1]:,.0f}/s  "
                  f"ratio {store_rates[-1] / raw_rates[-1]:.2f}")
        store_best, raw_best = max(store_rates), max(raw_rates)
        print(f"\nappends/s (best of {rounds}, {CONCURRENCY} concurrent, {AGGREGATES} aggregates,"
              f" OCC on): store {store_best:,.0f}  raw js.publish {raw_best:,.0f}  "
              f"ratio {store_best / raw_best:.2f} (target >= 0.7)")
        store_lat, raw_lat = await latency(nc, await fresh_store(nc, "BENCH_LAT"), 2000)
        print(f"single append latency: store {store_lat}\n"
              f"                       raw   {raw_lat}")
        await nc.close()


async def durability(appends: int, rounds: int) -> None:
    """Appends/s and latency with the default sync and with ``sync_interval: always``."""
    with private_nats_server("default") as default, private_nats_server("always") as always:
        servers = {"default": default, "always": always}
        clients = {mode: await nats.connect(server.url) for mode, server in servers.items()}
        best: dict[str, float] = {}
        for n in range(rounds):
            for mode, server in servers.items():
                store = await fresh_store(clients[mode], f"DUR_{mode.upper()}_{n}")
                assert server.process is not None
                with CpuMeter(server.process.pid) as cpu:
                    rate = await store_round(store, appends)
                best[mode] = max(best.get(mode, 0.0), rate)
                print(f"round {n + 1}: sync {mode:<7} {rate:>8,.0f} appends/s   "
                      f"{cpu.per_op_us(appends // CONCURRENCY * CONCURRENCY)}")
        print(f"\nappends/s (best of {rounds}): default {best['default']:,.0f}  "
              f"always {best['always']:,.0f}  ratio always/default "
              f"{best['always'] / best['default']:.2f}")
        for mode in servers:
            store = await fresh_store(clients[mode], f"DUR_LAT_{mode.upper()}")
            store_lat, _ = await latency(clients[mode], store, 1000)
            print(f"single append latency, sync {mode:<7}: {store_lat}")
        for nc in clients.values():
            await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=32_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--durability", action="store_true",
                        help="instead: the store with the default sync against sync always")
    options = parser.parse_args()
    asyncio.run(durability(options.appends, options.rounds) if options.durability
                else main(options.appends, options.rounds))
