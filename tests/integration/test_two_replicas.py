"""Two ``runlog up`` processes on one NATS and one stream: the queue group spreads the
requests, and optimistic concurrency keeps leases, totals and the breaker probe exact."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from services.pricing import load_price_file
from tests.support.nats_server import wait_until
from tests.support.replicas import two_replicas
from tests.support.service_client import (
    ServiceClient,
    assert_each_task_leased_once,
    wait_past,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

WORKERS = 20
TASKS = 15
USAGES = 60


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(nats_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[ServiceClient]:
    """Two service processes on one stream for the module, stopped by SIGINT (which must exit 0)."""
    async with two_replicas(nats_url, tmp_path_factory.mktemp("replicas")) as replicas:
        yield replicas.client
        for process in replicas.processes:
            process.send_signal(signal.SIGINT)
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 30)
                                       for p in replicas.processes))
        assert codes == [0, 0], replicas.stderr()
        assert not any((d / "instance.json").exists() for d in replicas.dirs)


async def test_two_replicas_lease_each_task_once_and_count_every_token(
        client: ServiceClient) -> None:
    """Concurrent claims and usage through both replicas: one lease per task, exact totals."""
    await _assert_seeded_once(client)
    await client.ok("budget.create", {"budget_id": "team", "name": "team", "max_tokens": 1000})
    await client.running_run("r1", budget_id="team", budget={"max_tokens": 1500})
    await asyncio.gather(*(client.worker(f"w{n}") for n in range(WORKERS)))
    await asyncio.gather(*(client.submit(f"t{n}") for n in range(TASKS)))
    sizes = [(10 + n % 7, 20 - n % 5) for n in range(USAGES)]
    claims = [client.send_until_settled("task.claim", {
        "worker_id": f"w{n}", "command_id": f"claim-{n}"}) for n in range(WORKERS)]
    usages = [client.send_until_settled("usage.record", {
        "run_id": "r1", "model": "gpt-4o", "tokens_in": i, "tokens_out": o,
        "command_id": f"usage-{n}"}) for n, (i, o) in enumerate(sizes)]
    replies = await asyncio.gather(*claims, *usages)
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    claimed = [r["task"]["task_id"] for r in replies[:WORKERS] if r["task"] is not None]
    assert sorted(claimed) == sorted(f"t{n}" for n in range(TASKS))
    events = await client.events()
    assert_each_task_leased_once(events)
    assert sum(e["type"] == "TaskLeased" for e in events) == TASKS

    tokens = sum(i + o for i, o in sizes)
    cost = sum(Decimal(i * 25 + o * 100) / 10_000_000 for i, o in sizes)
    run = await client.state_of("run", "r1")
    budget_tokens, budget_cost = await client.budget_spent("team")
    assert (run.tokens, budget_tokens) == (tokens, tokens)
    assert (run.cost_usd, budget_cost) == (cost, cost)  # exact over two replicas
    types = Counter(e["type"] for e in events)
    assert types["UsageRecorded"] == USAGES
    for _ in range(4):
        await client.refused("task.submit", {"run_id": "r1", "kind": "llm"}, "budget_exceeded")

    async def alerts() -> int:  # the budget's crossings of 50, 80 and 100 % land on their own
        return sum(e["type"] == "BudgetThresholdCrossed" for e in await client.events())

    await wait_until(alerts, lambda n: n == 3)
    before = await client.last_seq()
    usage_0 = {"run_id": "r1", "model": "gpt-4o", "tokens_in": sizes[0][0],
               "tokens_out": sizes[0][1], "command_id": "usage-0"}
    for subject, body, first in [
        ("task.claim", {"worker_id": "w0", "command_id": "claim-0"}, replies[0]),
        ("usage.record", usage_0, replies[WORKERS]),
    ]:
        retries = await asyncio.gather(*(client.send(subject, body) for _ in range(8)))
        differing = [r for r in retries if r != first]
        assert differing == [], (
            f"retries of {subject} answered otherwise than the first time (a repeated event "
            "type: see test_concurrent_catch_ups_count_each_event_once): "
            f"{json.dumps([first, *differing[:2]])}")
    assert await client.last_seq() == before


async def test_racing_retries_through_both_replicas_write_once(
        client: ServiceClient) -> None:
    """One command id sent many times at once, to either replica: identical replies, one write."""
    await client.running_run("r-retried")
    body = {"run_id": "r-retried", "kind": "llm", "command_id": "submit-once"}
    replies = await asyncio.gather(*(client.send("task.submit", body) for _ in range(16)))
    assert all(r == replies[0] for r in replies), replies
    assert replies[0]["ok"] is True
    assert await client.types_of("task", replies[0]["id"]) == ["TaskSubmitted"]


async def test_two_replicas_let_exactly_one_probe_through(
        client: ServiceClient) -> None:
    """Concurrent acquires on both replicas race on the log: one BreakerHalfOpened wins."""
    await client.ok("breaker.configure", {"breaker_id": "acme", "failure_threshold": 1,
                                          "cooldown_s": 0.3})
    await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
    until = (await client.events_of("breaker", "acme"))[-1]["until"]
    await wait_past(datetime.fromisoformat(until))
    replies = await asyncio.gather(*(client.send("breaker.acquire", {
        "breaker_id": "acme", "probe_id": f"p{n}"}) for n in range(20)))
    assert all(r["ok"] for r in replies), replies
    assert sum(r["allowed"] for r in replies) == 1, replies
    assert (await client.types_of("breaker", "acme")).count("BreakerHalfOpened") == 1


async def _assert_seeded_once(client: ServiceClient) -> None:
    """Both replicas seeded the same price list at once; each price landed exactly once."""
    events: list[dict[str, Any]] = await client.events("runlog.evt.model.*")
    registered = Counter(e["model"] for e in events if e["type"] == "ModelRegistered")
    prices = Counter(e["model"] for e in events if e["type"] == "ModelPriceSet")
    shipped = Counter(entry["model"] for entry in load_price_file())
    assert registered == Counter(set(shipped)), json.dumps(registered)
    assert prices == shipped
