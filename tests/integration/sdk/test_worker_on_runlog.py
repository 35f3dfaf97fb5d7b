"""Workers against a real runlog: tasks processed end to end; a lease lost mid-task is fenced."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from services.sdk import (
    ClaimedTask,
    Client,
    CommandError,
    TaskContext,
    TaskEnd,
    Worker,
    WorkerConfig,
)
from tests.integration.sdk.conftest import QUICK_RETRIES, rows, running_runlog, until
from tests.support.nats_server import wait_until

pytestmark = pytest.mark.nats

QUIET = WorkerConfig(handle_signals=False, idle_backoff_max_s=0.1)


async def started_run(client: Client, name: str) -> str:
    """A running run's id."""
    run = await client.create_run(name=name, budget={"max_cost_usd": 100.0})
    await client.start_run(run_id=run.id)
    return run.id


async def echo(task: TaskContext) -> Mapping[str, object]:
    await task.record_usage("gpt-4.1-mini", tokens_in=1200, tokens_out=300, latency_ms=850.0)
    return {"echo": task.payload["n"]}


async def test_a_worker_processes_tasks_end_to_end(client: Client) -> None:
    run_id = await started_run(client, "sdk-end-to-end")
    task_ids = [(await client.submit_task(run_id=run_id, kind="echo", payload={"n": n})).id
                for n in range(6)]
    ends: list[TaskEnd] = []
    worker = Worker(client, "sdk-echo", echo, kinds=["echo"], capacity=3, config=QUIET,
                    on_task_end=ends.append)
    running = asyncio.create_task(worker.run())
    await until(lambda: len(ends) == len(task_ids))
    worker.stop()
    await asyncio.wait_for(running, 20)

    assert {e.outcome for e in ends} == {"succeeded"}
    tasks = await client.query(
        "SELECT task_id, state, worker_id, attempts FROM tasks ORDER BY task_id",
        after=client.last_seq)
    assert rows(tasks) == [(t, "succeeded", "sdk-echo", 1) for t in sorted(task_ids)]
    usage = await client.query("SELECT task_id, worker_id, run_id, model, cost_usd > 0 "
                               "FROM usage ORDER BY task_id")
    assert rows(usage) == [(t, "sdk-echo", run_id, "gpt-4.1-mini", True)
                           for t in sorted(task_ids)]
    workers = await client.query("SELECT state FROM workers WHERE worker_id = 'sdk-echo'")
    assert rows(workers) == [("offline",)]


async def test_a_lease_lost_mid_task_is_abandoned_not_succeeded(
        nc: NatsClient, nats_url: str, tmp_path: Path) -> None:
    async with running_runlog(nc, nats_url, tmp_path / "runlog", lease_ttl_s=0.5):
        client = Client(nc, retry=QUICK_RETRIES)
        run_id = await started_run(client, "sdk-lease-lost")
        task_id = (await client.submit_task(run_id=run_id, kind="slow")).id
        await client.register_worker(worker_id="sdk-rival", kinds=["slow"])
        holding, taken_over = asyncio.Event(), asyncio.Event()

        async def outlived(task: TaskContext) -> Mapping[str, object]:
            holding.set()
            # Progresses, but its heartbeats never arrive in time: the lease lapses.
            while not taken_over.is_set():
                task.progress()
                await asyncio.sleep(0.02)
            return {"by": "first holder"}

        ends: list[TaskEnd] = []
        late = Worker(client, "sdk-late", outlived, kinds=["slow"], on_task_end=ends.append,
                      config=WorkerConfig(heartbeat_interval_s=60, handle_signals=False))
        running = asyncio.create_task(late.run())
        await asyncio.wait_for(holding.wait(), 20)
        rival = await _claimed_by_rival(client)
        taken_over.set()
        await until(lambda: len(ends) == 1)
        late.stop()
        await asyncio.wait_for(running, 20)

        assert rival.task_id == task_id
        assert ends[0].outcome == "abandoned"
        assert isinstance(ends[0].error, CommandError)
        assert ends[0].error.code == "lease_mismatch"
        await client.start_task(task_id=task_id, worker_id="sdk-rival",
                                lease_epoch=rival.lease_epoch)
        await client.succeed_task(task_id=task_id, worker_id="sdk-rival",
                                  lease_epoch=rival.lease_epoch, result={"by": "rival"})
        ended = await client.query(
            "SELECT event_type, count(*) FROM transitions WHERE aggregate_id = "
            f"'{task_id}' AND event_type IN ('TaskLeased', 'TaskSucceeded') "
            "GROUP BY event_type ORDER BY event_type", after=client.last_seq)
        assert rows(ended) == [("TaskLeased", 2), ("TaskSucceeded", 1)]
        holder = await client.query(f"SELECT worker_id, state FROM tasks WHERE task_id = "
                                    f"'{task_id}'")
        assert rows(holder) == [("sdk-rival", "succeeded")]


async def _claimed_by_rival(client: Client) -> ClaimedTask:
    """Claims for the rival until the lapsed task is retried and leased to it."""
    async def claim() -> ClaimedTask | None:
        return (await client.claim_task(worker_id="sdk-rival")).task

    task = await wait_until(claim, lambda t: t is not None, timeout_s=20)
    assert task is not None
    return task
