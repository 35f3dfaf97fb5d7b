"""Leases against the clock: the expiry policy voids a silent holder's lease; heartbeats keep it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from services.policies import LeaseExpiryPolicy
from services.settings import Settings
from tests.support.nats_server import wait_until
from tests.support.service_client import (
    InProcessClient,
    ServiceClient,
    memory_service,
    task_id_with_backoff,
    wait_past,
)

pytestmark = pytest.mark.slow

LEASE_TTL_S = 1.5


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[InProcessClient]:
    """A service with short leases, so that they lapse within a test."""
    async with memory_service(settings=Settings(data_dir=tmp_path,
                                                lease_ttl_s=LEASE_TTL_S)) as service:
        yield service


async def _leased(client: ServiceClient, task_id: str, **fields: Any) -> dict[str, Any]:
    await client.running_run("r1")
    await client.worker("w1")
    await client.worker("w2")
    await client.submit(task_id, **fields)
    task = await client.claim("w1")
    assert task is not None
    assert task["task_id"] == task_id
    expires = datetime.fromisoformat(task["lease_expires_at"])
    claimed_ttl = (expires - datetime.fromisoformat(
        (await client.events_of("task", task_id))[-1]["occurred_at"])).total_seconds()
    assert claimed_ttl == pytest.approx(LEASE_TTL_S, abs=0.01)
    return task


async def _types_once(client: ServiceClient, task_id: str, wanted: str,
                      timeout_s: float = 8.0) -> list[str]:
    async def types() -> list[str]:
        return await client.types_of("task", task_id)

    return await wait_until(types, lambda found: wanted in found, timeout_s)


async def test_a_silent_holder_loses_its_lease_and_its_late_succeed(client: InProcessClient
                                                                    ) -> None:
    """The policy writes a retry of class lease_expired (the worker's slot frees with it) and
    refuses the old epoch."""
    task_id = task_id_with_backoff(0.0, 0.2)
    await _leased(client, task_id)
    types = await _types_once(client, task_id, "TaskRetryScheduled")
    assert types == ["TaskSubmitted", "TaskLeased", "TaskRetryScheduled"]
    retry = (await client.events_of("task", task_id))[-1]
    assert (retry["error_class"], retry["to_state"], retry["lease_epoch"]) == (
        "lease_expired", "retry_wait", 1)
    assert client.service.repos.tasks.board.held_by("w1") == frozenset()
    late = await client.refused("task.succeed", {"task_id": task_id, "worker_id": "w1",
                                                 "lease_epoch": 1}, "lease_mismatch")
    assert late["details"] == {"worker_id": "w1", "lease_epoch": 2}
    await wait_past((await client.state_of("task", task_id)).retry_at)
    again = await client.claim("w2")
    assert again is not None
    assert (again["task_id"], again["lease_epoch"], again["attempt"]) == (task_id, 3, 2)
    await client.ok("task.succeed", {"task_id": task_id, "worker_id": "w2", "lease_epoch": 3})


async def test_an_expired_last_attempt_fails_the_task(client: ServiceClient) -> None:
    """With no attempt left, the expiry fails the task with error class lease_expired."""
    await _leased(client, "t1", max_attempts=1)
    types = await _types_once(client, "t1", "TaskFailed")
    assert types == ["TaskSubmitted", "TaskLeased", "TaskFailed"]
    failed = (await client.events_of("task", "t1"))[-1]
    assert (failed["error_class"], failed["to_state"]) == ("lease_expired", "failed")


async def test_a_heartbeat_extends_the_lease(client: InProcessClient) -> None:
    """A heartbeat before the lease lapses moves its end; the holder may still finish after it."""
    task = await _leased(client, "t1")
    first_expiry = datetime.fromisoformat(task["lease_expires_at"])
    await wait_past(first_expiry - timedelta(seconds=LEASE_TTL_S / 2))
    holder = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1}
    beat = await client.ok("task.heartbeat", holder)
    assert beat["events"] == ["TaskHeartbeatReceived"]
    extended = datetime.fromisoformat((await client.events_of("task", "t1"))[-1][
        "lease_expires_at"])
    assert extended >= first_expiry + timedelta(seconds=LEASE_TTL_S / 2 - 0.05)
    await wait_past(first_expiry + timedelta(seconds=0.1))
    service = client.service
    assert await LeaseExpiryPolicy(service, service.repos.tasks.board).act() == 0
    assert await client.types_of("task", "t1") == ["TaskSubmitted", "TaskLeased",
                                                   "TaskHeartbeatReceived"]
    done = await client.ok("task.succeed", holder)
    assert done["events"][0] == "TaskSucceeded"
