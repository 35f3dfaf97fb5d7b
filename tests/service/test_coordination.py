"""Coordinating the work: WIP limits of every scope, one lease per resource, deferred work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from events import utc_now
from services.settings import Settings
from tests.support.service_client import InProcessClient, memory_service, wait_past


async def _claimed(client: InProcessClient, worker_id: str) -> str | None:
    task = await client.claim(worker_id)
    return None if task is None else str(task["task_id"])


async def _done(client: InProcessClient, task_id: str) -> None:
    """Succeeds a leased task as its holder."""
    state = await client.state_of("task", task_id)
    await client.ok("task.succeed", {"task_id": task_id, "worker_id": state.worker_id,
                                     "lease_epoch": state.lease_epoch})


async def test_a_run_leases_at_most_its_max_concurrency(client: InProcessClient) -> None:
    await client.running_run("r1", max_concurrency=2)
    await client.worker("w1", capacity=10)
    for n in range(5):
        await client.submit(f"t{n}")
    assert [await _claimed(client, "w1") for _ in range(3)] == ["t0", "t1", None]
    assert (await client.state_of("task", "t2")).state == "queued"  # held back, still queued
    await _done(client, "t0")
    assert await _claimed(client, "w1") == "t2"
    await client.ok("run.configure", {"run_id": "r1", "max_concurrency": 3})
    assert await _claimed(client, "w1") == "t3"
    assert await _claimed(client, "w1") is None


async def test_a_kind_leases_at_most_its_queue_limit_over_all_runs(
        client: InProcessClient) -> None:
    await client.ok("queue.configure", {"kind": "gpu.train", "max_running": 1})
    await client.running_run("r1")
    await client.running_run("r2")
    await client.worker("w1", kinds=["gpu.train", "llm"], capacity=5)
    await client.submit("a", run_id="r1", kind="gpu.train")
    await client.submit("b", run_id="r2", kind="gpu.train")
    await client.submit("c", run_id="r2", kind="llm", priority=0)
    assert [await _claimed(client, "w1") for _ in range(3)] == ["a", "c", None]
    await client.ok("queue.configure", {"kind": "gpu.train", "max_running": None})
    assert await _claimed(client, "w1") == "b"


@pytest_asyncio.fixture
async def capped(tmp_path: Path) -> AsyncIterator[InProcessClient]:
    """A service with RUNLOG_MAX_RUNNING=2."""
    async with memory_service(settings=Settings(data_dir=tmp_path, max_running=2)) as service:
        yield service


async def test_at_most_max_running_leased_tasks_in_all(capped: InProcessClient) -> None:
    await capped.running_run("r1")
    await capped.running_run("r2")
    await capped.worker("w1", capacity=5)
    await capped.worker("w2", capacity=5)
    for n, run_id in enumerate(["r1", "r2", "r1"]):
        await capped.submit(f"t{n}", run_id=run_id)
    assert await _claimed(capped, "w1") == "t0"
    assert await _claimed(capped, "w2") == "t1"
    assert await _claimed(capped, "w2") is None
    await _done(capped, "t1")
    assert await _claimed(capped, "w1") == "t2"


async def test_a_concurrency_key_caps_the_tasks_sharing_it(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1", capacity=10)
    for n in range(3):
        await client.submit(f"k{n}", concurrency_key="tenant-a", max_concurrency=2, priority=9)
    await client.submit("other", priority=1)
    assert [await _claimed(client, "w1") for _ in range(4)] == ["k0", "k1", "other", None]
    await _done(client, "k1")
    assert await _claimed(client, "w1") == "k2"


async def test_one_lease_per_resource_and_the_others_wait_in_order(
        client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    await client.worker("w2")
    await client.worker("w3")
    await client.submit("first", resource="repo:main", priority=5)
    await client.submit("urgent", resource="repo:main", priority=9)
    await client.submit("later", resource="repo:main", priority=5)
    await client.submit("free", resource="repo:docs", priority=1)
    assert await _claimed(client, "w1") == "urgent"
    assert await _claimed(client, "w2") == "free"
    assert await _claimed(client, "w3") is None  # repo:main is held
    await _done(client, "urgent")
    assert await _claimed(client, "w3") == "first"
    await _done(client, "first")
    assert await _claimed(client, "w1") == "later"


async def test_a_held_back_lane_does_not_block_the_others_nor_lose_its_order(
        client: InProcessClient) -> None:
    await client.running_run("busy", max_concurrency=1)
    await client.running_run("quiet")
    await client.worker("w1", capacity=10)
    await client.submit("b1", run_id="busy", priority=9)
    await client.submit("b2", run_id="busy", priority=9)
    await client.submit("q1", run_id="quiet", priority=1)
    assert [await _claimed(client, "w1") for _ in range(3)] == ["b1", "q1", None]
    await _done(client, "b1")
    assert await _claimed(client, "w1") == "b2"


async def test_not_before_holds_a_task_back_until_its_time(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1", capacity=3)
    soon = utc_now() + timedelta(milliseconds=400)
    await client.submit("later", not_before=soon.isoformat(), priority=9)
    await client.submit("now", priority=1)
    assert await _claimed(client, "w1") == "now"
    assert await _claimed(client, "w1") is None
    await wait_past(soon)
    task = await client.claim("w1")
    assert task is not None
    assert task["task_id"] == "later"
    assert utc_now() >= soon


async def test_task_defer_pushes_a_queued_task_back(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    soon = utc_now() + timedelta(milliseconds=300)
    reply = await client.ok("task.defer", {"task_id": "t1", "not_before": soon.isoformat()})
    assert reply["events"] == ["TaskPostponed"]
    assert await _claimed(client, "w1") is None
    await wait_past(soon)
    assert await _claimed(client, "w1") == "t1"


@pytest.mark.parametrize(("subject", "body"), [
    ("run.create", {"name": "n", "max_concurrency": 0}),
    ("run.create", {"name": "n", "max_concurrency": -3}),
    ("run.configure", {"run_id": "r1", "max_concurrency": "two"}),
    ("queue.configure", {"kind": "llm", "max_running": 0}),
    ("queue.configure", {"kind": "no spaces", "max_running": 2}),
    ("queue.configure", {"kind": "llm", "limit": 2}),
    ("task.submit", {"run_id": "r1", "kind": "llm", "concurrency_key": "k"}),
    ("task.submit", {"run_id": "r1", "kind": "llm", "max_concurrency": 2}),
    ("task.submit", {"run_id": "r1", "kind": "llm", "not_before": "tomorrow"}),
    ("task.submit", {"run_id": "r1", "kind": "llm", "timeout_s": -1}),
    ("task.submit", {"run_id": "r1", "kind": "llm", "deferrable": "yes"}),
    ("task.defer", {"task_id": "t1"}),
    ("task.defer", {"task_id": "t1", "not_before": 12}),
    ("task.requeue", {"task_id": "t1", "max_attempts": 0}),
])
async def test_bad_coordination_values_are_refused_and_write_nothing(
        client: InProcessClient, subject: str, body: dict[str, Any]) -> None:
    await client.refused(subject, body, "validation_failed")
