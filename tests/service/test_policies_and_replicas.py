"""Replicas share the log, not memory: claim boards follow it, policies react to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from services.settings import Settings
from services.store import InMemoryEventStore
from tests.support.nats_server import wait_until
from tests.support.service_client import InProcessClient, memory_service


@contextlib.asynccontextmanager
async def two_replicas() -> AsyncIterator[tuple[InProcessClient, InProcessClient]]:
    """Two command services (policies on) on one log."""
    store = InMemoryEventStore()
    async with memory_service(store) as first, memory_service(store) as second:
        yield first, second


async def send(instance: InProcessClient, action: str, **body: Any) -> dict[str, Any]:
    return await instance.send(action, body)


async def start_run(instance: InProcessClient, run_id: str) -> None:
    assert (await send(instance, "run.create", run_id=run_id, name="n"))["ok"]
    assert (await send(instance, "run.start", run_id=run_id))["ok"]


async def test_a_task_submitted_on_one_replica_is_claimed_on_the_other(
        ) -> None:
    async with two_replicas() as (a, b):
        await start_run(a, "r1")
        registered = await send(b, "worker.register", worker_id="w1", kinds=["k"], capacity=2)
        assert registered["ok"]
        assert (await send(a, "task.submit", task_id="t1", run_id="r1", kind="k"))["ok"]

        async def claim() -> dict[str, Any]:
            return await send(b, "task.claim", worker_id="w1")

        reply = await wait_until(claim, lambda r: r["ok"] and r["task"] is not None)
        assert reply["task"]["task_id"] == "t1"
        again = await send(a, "task.claim", worker_id="w1")
        assert again["ok"] is True, again
        assert again["task"] is None


async def test_ending_a_run_cancels_its_open_tasks() -> None:
    async with two_replicas() as (a, b):
        await start_run(a, "r1")
        for task_id in ("t1", "t2"):
            assert (await send(a, "task.submit", task_id=task_id, run_id="r1", kind="k"))["ok"]
        assert (await send(b, "run.cancel", run_id="r1", reason="stop"))["ok"]

        async def task_states() -> set[str | None]:
            states = set()
            for task_id in ("t1", "t2"):
                states.add((await a.state_of("task", task_id)).state)
            return states

        assert await wait_until(task_states, lambda s: s == {"cancelled"})
        cancels = [e for e in await a.events_of("task", "t1") if e["type"] == "TaskCancelled"]
        assert len(cancels) == 1
        assert cancels[0]["command_id"].startswith("run-end-")


async def test_a_replica_with_a_stale_cache_decides_again_before_refusing(
        ) -> None:
    async with two_replicas() as (a, b):
        assert (await send(a, "run.create", run_id="r1", name="n"))["ok"]  # a caches: pending
        assert (await send(b, "run.start", run_id="r1"))["ok"]
        succeeded = await send(a, "run.succeed", run_id="r1")
        assert succeeded["ok"] is True, succeeded
        assert succeeded["version"] == 3
        refused = await send(a, "run.start", run_id="r1")
        assert refused["error"]["code"] == "invalid_transition"
        assert "succeeded" in refused["error"]["message"]


async def worker_state(instance: InProcessClient, worker_id: str) -> str | None:
    state = await instance.state_of("worker", worker_id)
    return state.state if state is not None else None


async def test_a_silent_worker_is_marked_lost_and_a_heartbeat_brings_it_back(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_timeout_s=1.0)
    async with memory_service(settings=settings) as service:
        await start_run(service, "r1")
        for worker_id in ("silent", "chatty"):
            assert (await send(service, "worker.register", worker_id=worker_id))["ok"]
        assert (await send(service, "task.submit", task_id="t1", run_id="r1", kind="k"))["ok"]
        claimed = await send(service, "task.claim", worker_id="silent")
        assert claimed["task"]["task_id"] == "t1"

        async def states() -> tuple[str | None, str | None]:
            assert (await send(service, "worker.heartbeat", worker_id="chatty"))["ok"]
            return (await worker_state(service, "silent"),
                    await worker_state(service, "chatty"))

        assert await wait_until(states, lambda s: s[0] == "lost", timeout_s=15) == (
            "lost", "idle")
        lost = [e for e in await service.events_of("worker", "silent")
                if e["type"] == "WorkerLost"]
        assert len(lost) == 1
        assert lost[0]["task_ids"] == ["t1"]
        assert (await send(service, "worker.heartbeat", worker_id="silent"))["ok"]
        assert await worker_state(service, "silent") == "idle"

