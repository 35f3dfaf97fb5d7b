"""Work that moves by itself, gates that hold patches, timeouts, dead letters, deferrable work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from services.settings import Settings
from tests.support.nats_server import wait_until
from tests.support.service_client import InProcessClient, memory_service


async def _state(client: InProcessClient, aggregate: str, aggregate_id: str) -> str | None:
    state = await client.state_of(aggregate, aggregate_id)
    return None if state is None else str(state.state)


async def _becomes(client: InProcessClient, aggregate: str, aggregate_id: str, wanted: str,
                   timeout_s: float = 5.0) -> None:
    async def current() -> str | None:
        return await _state(client, aggregate, aggregate_id)

    await wait_until(current, lambda s: s == wanted, timeout_s)


async def _hold(client: InProcessClient, worker_id: str) -> dict[str, Any]:
    task = await client.claim(worker_id)
    assert task is not None
    return {"task_id": task["task_id"], "worker_id": worker_id, "lease_epoch": task["lease_epoch"]}


async def test_a_task_is_unblocked_when_its_dependencies_succeed(
        client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1", capacity=3)
    await client.submit("a")
    await client.submit("b")
    await client.submit("c", depends_on=["a", "b"])
    assert await _state(client, "task", "c") == "blocked"
    for _ in range(2):
        await client.ok("task.succeed", await _hold(client, "w1"))
    await _becomes(client, "task", "c", "queued")
    assert (await client.claim("w1") or {}).get("task_id") == "c"
    unblocks = [e for e in await client.events_of("task", "c") if e["type"] == "TaskUnblocked"]
    assert len(unblocks) == 1
    assert unblocks[0]["command_id"].startswith("progress-unblock-")


async def test_workstreams_get_ready_by_themselves_and_queue_their_tasks(
        client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.ok("workstream.create", {"workstream_id": "backend", "run_id": "r1",
                                          "name": "backend"})
    await client.ok("workstream.create", {"workstream_id": "frontend", "run_id": "r1",
                                          "name": "frontend", "depends_on": ["backend"]})
    await _becomes(client, "workstream", "backend", "ready")
    assert await _state(client, "workstream", "frontend") == "pending"
    await client.submit("ui", workstream_id="frontend")
    assert await _state(client, "task", "ui") == "pending"
    await client.ok("workstream.start", {"workstream_id": "backend"})
    await client.ok("workstream.succeed", {"workstream_id": "backend"})
    await _becomes(client, "workstream", "frontend", "ready")
    await _becomes(client, "task", "ui", "queued")


async def test_an_auto_end_run_ends_when_its_work_is_done(client: InProcessClient) -> None:
    await client.running_run("done", auto_end=True)
    await client.running_run("broken", auto_end=True)
    await client.worker("w1", capacity=4)
    await client.submit("d1", run_id="done")
    await client.submit("x1", run_id="broken")
    for _ in range(2):
        holder = await _hold(client, "w1")
        if holder["task_id"] == "d1":
            await client.ok("task.succeed", holder)
        else:
            await client.ok("task.fail", holder | {"error_class": "auth"})
    await _becomes(client, "run", "done", "succeeded")
    await _becomes(client, "run", "broken", "failed")


async def test_a_failed_gate_holds_its_patch(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.ok("patch.propose", {"patch_id": "p1", "run_id": "r1", "title": "fix"})
    for subject in ("patch.validate", "patch.accept", "patch.apply", "patch.applied",
                    "patch.test", "patch.verify"):
        await client.ok(subject, {"patch_id": "p1"})
    for gate_id in ("unit", "lint"):
        await client.ok("gate.create", {"gate_id": gate_id, "run_id": "r1", "name": gate_id,
                                        "patch_id": "p1"})
    await client.ok("gate.start", {"gate_id": "unit"})
    await client.ok("gate.fail", {"gate_id": "unit", "reason": "2 failures"})
    await client.ok("gate.waive", {"gate_id": "lint", "reason": "style only", "by": "ana"})
    error = await client.refused("patch.commit", {"patch_id": "p1"}, "invalid_transition")
    assert "gate unit" in error["message"]
    assert error["details"] == {"gates": {"unit": "failed"}}
    await client.ok("gate.waive", {"gate_id": "unit", "reason": "known flake", "by": "ana"})
    assert (await client.ok("patch.commit", {"patch_id": "p1"}))["events"] == ["PatchCommitted"]


@pytest_asyncio.fixture
async def quick(tmp_path: Path) -> AsyncIterator[InProcessClient]:
    """A service whose leases outlive the timeouts under test."""
    async with memory_service(settings=Settings(data_dir=tmp_path, lease_ttl_s=60)) as service:
        yield service


async def test_a_heartbeating_task_past_its_timeout_is_failed_and_its_holder_refused(
        quick: InProcessClient) -> None:
    await quick.running_run("r1")
    await quick.worker("w1")
    await quick.submit("slow", timeout_s=0.4, max_attempts=1)
    holder = await _hold(quick, "w1")
    await quick.ok("task.start", holder)

    async def beat() -> str | None:
        await quick.send("task.heartbeat", holder)
        return await _state(quick, "task", "slow")

    assert await wait_until(beat, lambda s: s == "failed", timeout_s=5) == "failed"
    failed = (await quick.events_of("task", "slow"))[-1]
    assert (failed["error_class"], failed["lease_epoch"]) == ("timeout", 1)
    await quick.caught_up()  # the board learns of the failure from the log, as it is read
    assert quick.held_by("w1") == frozenset()
    await quick.refused("task.succeed", holder, "lease_mismatch")


async def test_a_dead_letter_is_requeued_with_fresh_attempts(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1", max_attempts=1)
    await client.ok("task.fail", await _hold(client, "w1") | {"error_class": "tool_error"})
    assert await _state(client, "task", "t1") == "failed"
    reply = await client.ok("task.requeue", {"task_id": "t1", "max_attempts": 2,
                                             "reason": "tool fixed"})
    assert reply["events"] == ["TaskRequeuedByOperator"]
    again = await client.claim("w1")
    assert again is not None
    assert (again["attempt"], again["max_attempts"], again["lease_epoch"]) == (1, 2, 2)
    await client.refused("task.requeue", {"task_id": "t1"}, "invalid_transition")


async def test_a_deferrable_task_waits_while_its_run_is_over_budget(
        client: InProcessClient) -> None:
    await client.running_run("r1", budget={"max_tokens": 100})
    await client.worker("w1", capacity=2)
    await client.ok("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": 150,
                                     "tokens_out": 0})
    await client.refused("task.submit", {"run_id": "r1", "kind": "llm"}, "budget_exceeded")
    await client.submit("patient", deferrable=True)
    assert await client.claim("w1") is None
    assert await _state(client, "task", "patient") == "queued"
