"""Concurrent commands on one service: no double lease, exact totals, one breaker probe."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import pytest

from tests.support.service_client import (
    ServiceClient,
    assert_each_task_leased_once,
    wait_past,
)

pytestmark = pytest.mark.slow


async def test_twenty_workers_racing_for_ten_tasks_lease_each_once(client: ServiceClient
                                                                   ) -> None:
    """10 claims get 10 different tasks, 10 get null; the log has one lease per task."""
    await client.running_run("r1")
    for n in range(20):
        await client.worker(f"w{n}")
    for n in range(10):
        await client.submit(f"t{n}")
    replies = await asyncio.gather(*(client.send("task.claim", {"worker_id": f"w{n}"})
                                     for n in range(20)))
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    tasks = [r["task"]["task_id"] for r in replies if r["task"] is not None]
    assert sorted(tasks) == sorted(f"t{n}" for n in range(10))
    assert sum(r["task"] is None for r in replies) == 10
    events = await client.events()
    assert_each_task_leased_once(events)
    assert sum(e["type"] == "TaskLeased" for e in events) == 10


async def test_fifty_concurrent_usage_records_add_up_exactly(client: ServiceClient) -> None:
    """The run's totals, rebuilt from the log, are the exact sum of what was sent."""
    await client.ok("budget.create", {"budget_id": "team", "name": "team"})
    await client.running_run("r1", budget_id="team")
    sizes = [(100 + n, 7 * n) for n in range(50)]
    replies = await asyncio.gather(*(client.send("usage.record", {
        "run_id": "r1", "model": "gpt-4o", "tokens_in": tokens_in, "tokens_out": tokens_out})
        for tokens_in, tokens_out in sizes))
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    assert len({r["seq"] for r in replies}) == 50
    tokens = sum(i + o for i, o in sizes)
    cost = sum(Decimal(i * 25 + o * 100) / 10_000_000 for i, o in sizes)
    run = await client.state_of("run", "r1")
    budget_tokens, budget_cost = await client.budget_spent("team")
    assert (run.tokens, budget_tokens) == (tokens, tokens)
    assert (run.cost_usd, budget_cost) == (cost, cost)  # exact, not approximately
    assert sum(e["type"] == "UsageRecorded" for e in await client.events_of("run", "r1")) == 50


async def test_after_the_cooldown_exactly_one_of_twenty_acquires_is_the_probe(
        client: ServiceClient) -> None:
    """An open breaker lets one caller through after its cooldown, and only one."""
    await client.ok("breaker.configure", {"breaker_id": "acme", "failure_threshold": 2,
                                          "cooldown_s": 0.3})
    await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
    opened = await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure",
                                                "error_class": "server_error"})
    assert opened["events"] == ["BreakerOpened"]
    denied = await client.ok("breaker.acquire", {"breaker_id": "acme"}, "allowed", "state")
    assert (denied["allowed"], denied["state"]) == (False, "open")
    until = (await client.events_of("breaker", "acme"))[-1]["until"]
    await wait_past(datetime.fromisoformat(until))
    bodies = [{"breaker_id": "acme", "probe_id": f"p{n}", "command_id": f"acquire-{n}"}
              for n in range(20)]
    replies = await asyncio.gather(*(client.send("breaker.acquire", b) for b in bodies))
    assert all(r["ok"] for r in replies), replies
    assert sum(r["allowed"] for r in replies) == 1, replies
    assert {r["state"] for r in replies} == {"half_open"}
    assert (await client.types_of("breaker", "acme")).count("BreakerHalfOpened") == 1
    winner = next(n for n, r in enumerate(replies) if r["allowed"])
    before = await client.last_seq()
    assert await client.send("breaker.acquire", bodies[winner]) == replies[winner]
    assert await client.last_seq() == before


async def test_concurrent_creates_of_one_id_make_one_run(client: ServiceClient) -> None:
    """Ten creates racing for one id: one RunCreated, nine already_exists."""
    replies = await asyncio.gather(*(client.send("run.create", {"run_id": "r1", "name": f"{n}"})
                                     for n in range(10)))
    assert sum(r["ok"] for r in replies) == 1, replies
    assert all(r["error"]["code"] == "already_exists" for r in replies if not r["ok"])
    assert await client.types_of("run", "r1") == ["RunCreated"]


async def test_racing_retries_of_one_command_write_once(client: ServiceClient) -> None:
    """The same command id sent ten times at once: ten identical replies, one event."""
    await client.running_run("r1")
    body = {"run_id": "r1", "kind": "llm", "command_id": "submit-once"}
    replies = await asyncio.gather(*(client.send("task.submit", body) for _ in range(10)))
    assert all(r == replies[0] for r in replies), replies
    assert replies[0]["ok"] is True
    assert await client.types_of("task", replies[0]["id"]) == ["TaskSubmitted"]

