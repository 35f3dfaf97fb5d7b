"""What feeding breakers from usage costs ``usage.record``: CPU per usage, in one run.

Run by hand: ``python tests/bench/bench_breaker_feed.py [--usage N] [--rounds R]``.

One command service on an in-memory log (no network: the service's own CPU only),
16 concurrent clients recording usage. Three contenders, rounds alternated so machine
noise hits all alike:

- ``no feed``: the service without the breaker-feed policy (the baseline);
- ``feed, ok``: with it, every call ``ok`` (the common case: nothing to send);
- ``feed, failing``: with it, every call ``server_error``: two ``breaker.record`` per
  usage (model and provider) until the breakers open, then nothing (an open breaker
  records nothing new);
- ``feed, failing, never opens``: the same with thresholds no run reaches (10,000):
  the worst case, every usage followed by two recorded failures.

CPU is counted until the feed has sent everything (the log follower caught up and
the breakers' last outcome recorded), so the policy's own work is in the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.bootstrap import seed_prices
from services.command_service import CommandService
from services.domain.breaker_feed import model_breaker_id
from services.policies import BreakerFeedPolicy
from services.store import InMemoryEventStore

CLIENTS = 16


@contextlib.asynccontextmanager
async def _service(feed: bool) -> AsyncIterator[CommandService]:
    service = CommandService(InMemoryEventStore())
    policy = BreakerFeedPolicy(service)
    if feed:
        service.observe_log(policy)
    await service.start()
    running = asyncio.create_task(policy.run()) if feed else None
    await seed_prices(service)
    try:
        yield service
    finally:
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await service.stop()


async def _record(service: CommandService, usage: int, outcome: str, threshold: int | None
                  ) -> None:
    if threshold is not None:
        for breaker_id in (model_breaker_id("gpt-4.1-mini"), "provider-openai"):
            await service.execute("breaker.configure", json.dumps({
                "breaker_id": breaker_id, "failure_threshold": threshold}).encode())
    await service.execute("run.create", json.dumps({"run_id": "r1", "name": "b"}).encode())
    await service.execute("run.start", json.dumps({"run_id": "r1"}).encode())
    body = json.dumps({"run_id": "r1", "model": "gpt-4.1-mini", "tokens_in": 10,
                       "tokens_out": 5, "outcome": outcome}).encode()

    async def client(n: int) -> None:
        for _ in range(n):
            reply = await service.execute("usage.record", body)
            assert reply["ok"], reply

    await asyncio.gather(*(client(usage // CLIENTS) for _ in range(CLIENTS)))


def _done(service: CommandService, usage: int, threshold: int | None) -> bool:
    cached = service.repos.breakers.cached(model_breaker_id("gpt-4.1-mini"))
    state = cached.state if cached is not None else None
    if state is None:
        return False
    return state.state == "open" if threshold is None else \
        state.consecutive_failures >= usage // CLIENTS * CLIENTS


async def _settled(service: CommandService, feed: bool, outcome: str, usage: int,
                   threshold: int | None) -> None:
    await service.follower.reached(await service.store.last_seq(), timeout_s=60)
    if not feed or outcome == "ok":
        return
    deadline = time.monotonic() + 120
    while not _done(service, usage, threshold):
        if time.monotonic() > deadline:
            raise TimeoutError("the feed never recorded every failure")
        await asyncio.sleep(0.01)


async def _round(feed: bool, outcome: str, usage: int, threshold: int | None) -> float:
    async with _service(feed) as service:
        started = time.process_time()
        await _record(service, usage, outcome, threshold)
        await _settled(service, feed, outcome, usage, threshold)
        await asyncio.sleep(0.2)  # let the policy drain what it queued, then count it
        return (time.process_time() - started) / usage * 1e6


async def main(usage: int, rounds: int) -> None:
    contenders = {"no feed": (False, "ok", None), "feed, ok": (True, "ok", None),
                  "feed, failing": (True, "server_error", None),
                  "feed, failing, never opens": (True, "server_error", 10_000)}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (feed, outcome, threshold) in contenders.items():
            cpu[name].append(await _round(feed, outcome, usage, threshold))
    base = min(cpu["no feed"])
    for name, figures in cpu.items():
        best = min(figures)
        print(f"{name:27s} CPU {best:6.0f} µs per usage.record (best of {rounds}), "
              f"{best / base:4.2f}x the baseline")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usage", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.usage, args.rounds))
