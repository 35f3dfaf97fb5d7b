"""Another replica writes behind this one's cache: no reply may rest on the stale copy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from events import utc_now
from tests.support.nats_server import wait_until
from tests.support.service_client import (
    InProcessClient,
    ServiceClient,
    memory_service,
    wait_past,
)


class OtherReplica:
    """A second command service on the same log, with its own caches and board."""

    def __init__(self, client: InProcessClient) -> None:
        self.client = client

    async def ok(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        """Runs a command there; it must succeed."""
        reply = await self.client.send(subject, body)
        assert reply["ok"] is True, reply
        return reply


@pytest.fixture
async def other(client: InProcessClient) -> AsyncIterator[OtherReplica]:
    """The other replica, started after the service (whose cache these tests make stale)."""
    async with memory_service(client.store) as replica:
        yield OtherReplica(replica)


async def caught_up(client: InProcessClient) -> None:
    """Waits until this replica's follower has read the whole log."""
    await client.service.follower.reached(await client.last_seq(), timeout_s=5)


async def test_a_breaker_opened_elsewhere_is_not_acquired_here(client: ServiceClient,
                                                               other: OtherReplica) -> None:
    """This replica's cached breaker is closed; the log says open: the acquire is denied."""
    await client.ok("breaker.configure", {"breaker_id": "acme", "failure_threshold": 1,
                                          "cooldown_s": 60})
    assert (await client.ok("breaker.acquire", {"breaker_id": "acme"}, "allowed", "state")
            )["allowed"] is True
    await other.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
    reply = await client.ok("breaker.acquire", {"breaker_id": "acme"}, "allowed", "state")
    assert (reply["allowed"], reply["state"]) == (False, "open")


async def test_a_run_cancelled_elsewhere_takes_no_new_task_here(client: ServiceClient,
                                                                other: OtherReplica) -> None:
    """task.submit reads the run: a cached running copy must not let a task in."""
    await client.running_run("r1")
    await other.ok("run.cancel", {"run_id": "r1"})
    error = await client.refused("task.submit", {"task_id": "t2", "run_id": "r1",
                                                 "kind": "llm"}, "invalid_transition")
    assert error["message"] == "run r1 is cancelled; task.submit needs running"


async def test_a_run_started_elsewhere_is_not_refused_as_pending_here(
        client: ServiceClient, other: OtherReplica) -> None:
    """A refusal decided on a stale copy is decided again on the log's state."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    await other.ok("run.start", {"run_id": "r1"})
    reply = await client.ok("run.succeed", {"run_id": "r1"})
    assert (reply["version"], reply["events"]) == (3, ["RunSucceeded"])


async def test_a_budget_spent_elsewhere_refuses_new_tasks_here(client: ServiceClient,
                                                               other: OtherReplica) -> None:
    """The shared budget checked by task.submit is the log's, not this replica's copy."""
    await client.ok("budget.create", {"budget_id": "team", "name": "team", "max_tokens": 100})
    await client.running_run("r1", budget_id="team")
    await client.submit("t1")
    await other.ok("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": 100,
                                    "tokens_out": 0})

    async def alerts() -> int:  # the crossings of 50, 80 and 100 % land on their own
        return sum(e["type"] == "BudgetThresholdCrossed"
                   for e in await client.events_of("budget", "team"))

    await wait_until(alerts, lambda n: n == 3)
    await client.refused("task.submit", {"run_id": "r1", "kind": "llm"}, "budget_exceeded")


async def test_a_price_registered_elsewhere_prices_usage_here(client: ServiceClient,
                                                              other: OtherReplica) -> None:
    """usage.record prices at the log's price in effect, not at this replica's cached one."""
    await client.ok("model.register", {"model": "acme", "provider": "acme",
                                       "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
                                       "effective_from": "2020-01-01T00:00:00Z"})
    await client.running_run("r1")
    await client.ok("usage.record", {"run_id": "r1", "model": "acme", "tokens_in": 1,
                                     "tokens_out": 0})
    changed = (utc_now() - timedelta(milliseconds=10)).isoformat()
    await other.ok("model.register", {"model": "acme", "provider": "acme",
                                      "input_usd_per_mtok": 5.0, "output_usd_per_mtok": 5.0,
                                      "effective_from": changed})
    await wait_past(utc_now())
    await client.ok("usage.record", {"run_id": "r1", "model": "acme", "tokens_in": 1_000_000,
                                     "tokens_out": 0})
    usage = (await client.events_of("run", "r1"))[-1]
    assert (usage["input_usd_per_mtok"], usage["cost_usd"]) == ("5", "5")


async def test_a_retry_here_of_a_claim_made_elsewhere_gets_its_reply(
        client: ServiceClient, other: OtherReplica) -> None:
    """This replica cached the task (not the worker) before the other one leased it."""
    await client.running_run("r1")
    await other.ok("worker.register", {"worker_id": "w1", "kinds": ["llm"]})
    await client.submit("t1")
    board = other.client.service.repos.tasks.board

    async def indexed() -> int:
        return len(board)

    await wait_until(indexed, lambda n: n == 1)
    body = {"worker_id": "w1", "command_id": "claim-elsewhere"}
    first = await other.ok("task.claim", body)
    assert first["task"]["task_id"] == "t1"
    before = await client.last_seq()
    assert await client.send("task.claim", body) == first
    assert await client.last_seq() == before


async def test_concurrent_catch_ups_count_each_event_once(client: ServiceClient,
                                                          other: OtherReplica) -> None:
    """Commands catching up one stale aggregate at once must not record its events twice."""
    # AggregateRepository.refresh folds into a copy that shares the cached original's
    # commands dict: concurrent refreshes each fold the new event into that one dict, so
    # the command's record lists its event type once per refresh, as does its retry's reply.
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    start = {"run_id": "r1", "command_id": "start-elsewhere"}
    first = await other.ok("run.start", start)
    await asyncio.gather(*(client.send("task.submit", {"run_id": "r1", "kind": "llm"})
                           for _ in range(4)))
    again = await client.send("run.start", start)
    assert again == first, (
        "the retry lists an event twice after concurrent catch-ups: aggregates.py "
        f"refresh shares the commands dict of the cached copy: {again}")
