"""Leases against the clock: the expiry policy voids a silent holder's lease; heartbeats keep it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.bootstrap import Instance
from services.policies import LeaseExpiryPolicy
from services.settings import Settings
from tests.integration.command_service.conftest import (
    ServiceClient,
    task_id_with_backoff,
    wait_past,
)
from tests.support.nats_server import wait_until

pytestmark = [pytest.mark.nats, pytest.mark.slow]

LEASE_TTL_S = 1.5


@pytest.fixture
def service_settings(service_settings: Settings) -> Settings:
    """Short leases, so that they lapse within a test."""
    return service_settings.model_copy(update={"lease_ttl_s": LEASE_TTL_S})


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


async def test_a_silent_holder_loses_its_lease_and_its_late_succeed(client: ServiceClient
                                                                    ) -> None:
    """The policy writes TaskLeaseExpired + a retry, frees the worker, and refuses the old epoch."""
    task_id = task_id_with_backoff(0.0, 0.2)
    await _leased(client, task_id)
    types = await _types_once(client, task_id, "TaskLeaseExpired")
    assert types == ["TaskSubmitted", "TaskLeased", "TaskLeaseExpired", "TaskRetryScheduled"]
    retry = (await client.events_of("task", task_id))[-1]
    assert (retry["error_class"], retry["to_state"]) == ("lease_expired", "retry_wait")
    assert (await client.types_of("worker", "w1"))[-2:] == ["WorkerTaskReleased",
                                                            "WorkerBecameIdle"]
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
    types = await _types_once(client, "t1", "TaskLeaseExpired")
    assert types[-2:] == ["TaskLeaseExpired", "TaskFailed"]
    failed = (await client.events_of("task", "t1"))[-1]
    assert (failed["error_class"], failed["to_state"]) == ("lease_expired", "failed")


async def test_a_heartbeat_extends_the_lease(client: ServiceClient, service: Instance) -> None:
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
    assert await LeaseExpiryPolicy(service.executor).sweep() == 0
    assert "TaskLeaseExpired" not in await client.types_of("task", "t1")
    done = await client.ok("task.succeed", holder)
    assert done["events"][0] == "TaskSucceeded"
