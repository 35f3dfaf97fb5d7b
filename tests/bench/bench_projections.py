"""Read-side benchmark (run by hand, never asserted): ``python tests/bench/bench_projections.py``.

(a) replay rate of the projector against a raw nats-py ordered consumer that only
    JSON-decodes the same stream, in the same run;
(b) freshness: p50/p99 from an append's ack to its rows being committed (visible);
(c) with ``--memory``: peak RSS of a process replaying 1M events.

Options: ``--events N`` (default 250000) for (a), ``--memory-events N`` for (c).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from events.codec import CODEC  # noqa: E402
from projections import ReadModelDb, build_read_models  # noqa: E402
from projections.runtime import Projector, ProjectorConfig  # noqa: E402
from services.embedded_nats import EmbeddedNats  # noqa: E402
from services.store import JetStreamEventStore, RecordedEvent  # noqa: E402
from tests.bench.ordered_reader import read_ordered  # noqa: E402

TASKS_PER_RUN = 5
USAGE_PER_TASK = 2


class History:
    """Generates whole run lifecycles as pre-serialised wire events, without keeping them."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.states: dict[str, str | None] = {}
        self.clock = 1_700_000_000.0

    def event(self, aggregate: str, aggregate_id: str, event_type: str, to_state: str,
              /, **data: Any) -> tuple[str, bytes]:
        key = f"{aggregate}.{aggregate_id}"
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        self.clock += 0.001
        body = {"type": event_type, "schema_version": 1, "event_id": uuid.uuid4().hex,
                "aggregate": aggregate, "aggregate_id": aggregate_id, "version": version,
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock))
                + f".{int(self.clock * 1e6) % 1_000_000:06d}+00:00",
                "command_id": uuid.uuid4().hex, "from_state": self.states.get(key),
                "to_state": to_state, **data}
        self.states[key] = to_state
        # Written at each type's current schema version, as the service writes them: a
        # replay of this log measures folding, not the upcasting of an old one.
        current = CODEC.decode(json.dumps(body).encode()).data
        return key, json.dumps(current, separators=(",", ":")).encode()

    def run(self, run_id: str) -> Iterator[tuple[str, bytes]]:
        now = "2025-01-01T00:00:00+00:00"
        yield self.event("run", run_id, "RunCreated", "pending", run_id=run_id, name=run_id,
                         labels={"team": "bench"}, budget=None)
        yield self.event("run", run_id, "RunStarted", "running", run_id=run_id)
        for index in range(TASKS_PER_RUN):
            task = f"{run_id}-t{index}"
            yield self.event("task", task, "TaskSubmitted", "queued", task_id=task,
                             run_id=run_id, kind="llm", priority=5, max_attempts=3,
                             payload={"prompt": "hello"}, submitted_at=now)
            yield self.event("task", task, "TaskLeased", "leased", task_id=task, worker_id="w1",
                             lease_epoch=1, lease_expires_at=now, lease_ttl_s=30.0, attempt=1)
            yield self.event("task", task, "TaskStarted", "running", task_id=task,
                             worker_id="w1", lease_epoch=1)
            for _ in range(USAGE_PER_TASK):
                yield self.event("run", run_id, "UsageRecorded", "running", run_id=run_id,
                                 task_id=task, worker_id="w1", model="gpt-bench",
                                 provider="acme", tokens_in=1200, tokens_out=300,
                                 latency_ms=850.0, outcome="ok", input_usd_per_mtok=1.0,
                                 output_usd_per_mtok=2.0,
                                 price_effective_from="2024-01-01T00:00:00+00:00",
                                 cost_usd=0.0018)
            yield self.event("task", task, "TaskSucceeded", "succeeded", task_id=task,
                             worker_id="w1", lease_epoch=1, attempt=1, result={"ok": True})
        yield self.event("run", run_id, "RunSucceeded", "succeeded", run_id=run_id)

    def events(self, count: int) -> Iterator[tuple[str, bytes]]:
        produced = 0
        index = 0
        while produced < count:
            for key, payload in self.run(f"run{index}"):
                yield key, payload
                produced += 1
            index += 1


async def fill(store: JetStreamEventStore, count: int) -> float:
    """Publishes ``count`` events pipelined; returns the publish rate."""
    started = time.perf_counter()
    js = store.js
    for key, payload in History().events(count):
        await js.publish_async(f"{store.subject_prefix}.{key}", payload)
    await js.publish_async_completed()
    return count / (time.perf_counter() - started)


async def raw_rate(store: JetStreamEventStore) -> float:
    """A bare ordered consumer that JSON-decodes each message: the ceiling to compare with."""
    rate, _ = await raw_rate_and_cpu(store)
    return rate


async def raw_rate_and_cpu(store: JetStreamEventStore) -> tuple[float, float]:
    """``raw_rate`` and its CPU µs per event."""
    cpu = cpu_s()
    total = await store.last_seq()
    rate = total / await read_ordered(store.js, store.stream, f"{store.subject_prefix}.>", total)
    return rate, (cpu_s() - cpu) / total * 1e6


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the replay's applier)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def replay_rate(store: JetStreamEventStore, folder: Path, one_process: bool = False
                      ) -> tuple[float, int, float]:
    """Replays the stream into a fresh file; returns (events/s, position, CPU µs/event).

    ``one_process``: the reader and the applier share this process (and its GIL).
    """
    started, cpu = time.perf_counter(), cpu_s()
    result = await build_read_models(store, folder / f"replay-{uuid.uuid4().hex[:6]}.duckdb",
                                     processes=1 if one_process else 2)
    elapsed = time.perf_counter() - started
    return result.position / elapsed, result.position, (cpu_s() - cpu) / result.position * 1e6


async def new_store(nc: Any) -> JetStreamEventStore:
    store = JetStreamEventStore(nc, stream=f"BENCH_{uuid.uuid4().hex[:8]}",
                                subject_prefix=f"b{uuid.uuid4().hex[:8]}.evt")
    await store.ensure_stream()
    return store


async def bench_replay(nc: Any, folder: Path, count: int) -> None:
    store = await new_store(nc)
    print(f"(a) filling {count:,} events ...", flush=True)
    print(f"    publish_async: {await fill(store, count):,.0f} events/s")
    raw, raw_cpu = await raw_rate_and_cpu(store)
    rate, position, cpu = await replay_rate(store, folder)
    alone, _, alone_cpu = await replay_rate(store, folder, one_process=True)
    raw_again, _ = await raw_rate_and_cpu(store)
    ceiling = max(raw, raw_again)
    print(f"    raw ordered consumer + json.loads: {raw:,.0f} / {raw_again:,.0f} events/s "
          f"({raw_cpu:.0f} µs CPU/event)")
    print(f"    replay, reader + applier process: {rate:,.0f} events/s ({position:,} events, "
          f"{cpu:.0f} µs CPU/event)")
    print(f"    replay in one process:            {alone:,.0f} events/s "
          f"({alone_cpu:.0f} µs CPU/event)")
    print(f"    ratio replay / raw: {rate / ceiling:.2f} (one process: {alone / ceiling:.2f}; "
          "target >= 0.8)")


async def bench_freshness(nc: Any, folder: Path, count: int = 5000, per_s: float = 1000.0
                          ) -> None:
    store = await new_store(nc)
    db = ReadModelDb.open_writer(folder / f"fresh-{uuid.uuid4().hex[:6]}.duckdb")
    projector = Projector(store, db, ProjectorConfig())
    commits: list[tuple[int, float]] = []
    original = projector.applier.apply

    def timed(records: list[RecordedEvent], head: int, cutoff: Any = None) -> Any:
        result = original(records, head, cutoff)
        commits.append((result.last_seq, time.perf_counter()))
        return result

    projector.applier.apply = timed  # type: ignore[method-assign, assignment]
    task = asyncio.create_task(projector.run())
    acked: dict[int, float] = {}
    started = time.perf_counter()
    for index, (key, payload) in enumerate(History().events(count)):
        ack = await store.js.publish(f"{store.subject_prefix}.{key}", payload)
        acked[ack.seq] = time.perf_counter()
        delay = started + (index + 1) / per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await projector.wait_for_seq(max(acked), 30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    db.close()
    latencies = sorted(_visible_at(seq, commits) - at for seq, at in acked.items())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"(b) freshness, {count:,} acked appends at ~{per_s:,.0f}/s: "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"mean {statistics.fmean(latencies) * 1000:.1f} ms (ack -> committed)")


def _visible_at(seq: int, commits: list[tuple[int, float]]) -> float:
    return next(at for last, at in commits if last >= seq)


async def bench_memory(nc: Any, url: str, folder: Path, count: int) -> None:
    store = await new_store(nc)
    print(f"(c) filling {count:,} events ...", flush=True)
    await fill(store, count)
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child-replay", url, store.stream, store.subject_prefix,
        str(folder / "memory.duckdb"), stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    print(out.decode().rstrip())


async def child_replay(url: str, stream: str, prefix: str, path: str) -> None:
    nc = await nats.connect(url)
    store = JetStreamEventStore(nc, stream=stream, subject_prefix=prefix)
    started = time.perf_counter()
    result = await build_read_models(store, Path(path))
    elapsed = time.perf_counter() - started
    reader_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    applier_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"    replayed {result.position:,} events in {elapsed:.1f} s "
          f"({result.position / elapsed:,.0f} events/s); peak RSS: reader {reader_mb:,.0f} MB, "
          f"applier process {applier_mb:,.0f} MB (target < 500 MB each)")
    await nc.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        nc = await nats.connect(server.url)
        folder = Path(tmp)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)")
        await bench_replay(nc, folder, args.events)
        await bench_freshness(nc, folder, count=300, per_s=50.0)
        await bench_freshness(nc, folder, count=5000, per_s=1000.0)
        if args.memory:
            await bench_memory(nc, server.url, folder, args.memory_events)
        await nc.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-replay":
        asyncio.run(child_replay(*sys.argv[2:6]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--memory", action="store_true", help="also run (c): 1M-event replay")
    parser.add_argument("--memory-events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args()))
