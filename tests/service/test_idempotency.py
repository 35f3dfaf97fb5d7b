"""The same command_id answers with the first reply and writes nothing new, restarts included."""

from __future__ import annotations

from typing import Any

import pytest

from services.store import InMemoryEventStore
from tests.support.service_client import (
    ServiceClient,
    memory_service,
    task_id_with_backoff,
    wait_past,
)


async def _twice(client: ServiceClient, subject: str, body: dict[str, Any], *extra: str
                 ) -> dict[str, Any]:
    """Sends a command twice; the retry must repeat the reply and leave the log as it was."""
    first = await client.ok(subject, body, *extra)
    written = await client.last_seq()
    again = await client.send(subject, body)
    assert again == first
    assert await client.last_seq() == written, f"the retry of {subject} wrote"
    return first


async def test_a_single_event_command_is_answered_once(client: ServiceClient) -> None:
    """run.create and run.start retried: same replies, one event each."""
    await _twice(client, "run.create", {"run_id": "r1", "name": "n", "command_id": "c1"})
    await _twice(client, "run.start", {"run_id": "r1", "command_id": "c2"})
    assert await client.types_of("run", "r1") == ["RunCreated", "RunStarted"]


async def test_a_retry_after_later_writes_still_gets_the_first_reply(
        client: ServiceClient) -> None:
    """The reply is the one of that command, not of the aggregate's current state."""
    body = {"run_id": "r1", "name": "n", "command_id": "c1"}
    first = await client.ok("run.create", body)
    await client.ok("run.start", {"run_id": "r1"})
    await client.ok("run.succeed", {"run_id": "r1"})
    before = await client.last_seq()
    assert await client.send("run.create", body) == first
    assert await client.last_seq() == before


async def test_a_generated_id_is_the_same_on_a_retry(client: ServiceClient) -> None:
    """An omitted id derives from the command id, so the retry finds the first create."""
    run = await _twice(client, "run.create", {"name": "n", "command_id": "create-anon"})
    await client.ok("run.start", {"run_id": run["id"]})
    task = await _twice(client, "task.submit", {"run_id": run["id"], "kind": "llm",
                                                "command_id": "submit-anon"})
    assert await client.types_of("task", task["id"]) == ["TaskSubmitted"]


async def test_a_claim_retry_returns_the_same_task_and_lease(client: ServiceClient) -> None:
    """TaskLeased + WorkerTaskAssigned are written once; the retry repeats the task view."""
    await client.running_run("r1")
    await client.worker("w1", capacity=2)
    await client.submit("t1", priority=9)
    await client.submit("t2", priority=1)
    first = await _twice(client, "task.claim", {"worker_id": "w1", "command_id": "claim-1"},
                         "task")
    assert first["events"] == ["TaskLeased"]
    assert first["task"]["task_id"] == "t1"
    second = await client.claim("w1")
    assert second is not None
    assert second["task_id"] == "t2"
    before = await client.last_seq()
    assert await client.send("task.claim", {"worker_id": "w1", "command_id": "claim-1"}) == first
    assert await client.last_seq() == before


async def test_a_succeed_retry_repeats_the_first_reply(client: ServiceClient) -> None:
    """The retried reply is the first one; the worker's slot is freed by that one event."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    body = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1, "command_id": "done-1"}
    first = await _twice(client, "task.succeed", body)
    assert first["events"] == ["TaskSucceeded"]
    assert await client.types_of("worker", "w1") == ["WorkerRegistered"]
    assert await client.claim("w1") is None  # the slot is free: the claim found no task


async def test_a_fail_retry_after_the_task_moved_on_repeats_the_first_reply(
        client: ServiceClient) -> None:
    """Once another worker holds the task, a retried fail still names the old holder's release."""
    task_id = task_id_with_backoff(0.0, 0.2)
    await client.running_run("r1")
    await client.worker("w1")
    await client.worker("w2")
    await client.submit(task_id)
    await client.claim("w1")
    body = {"task_id": task_id, "worker_id": "w1", "lease_epoch": 1, "error_class": "timeout",
            "command_id": "fail-1"}
    first = await _twice(client, "task.fail", body)
    assert first["events"] == ["TaskRetryScheduled"]
    retry_at = (await client.state_of("task", task_id)).retry_at
    await wait_past(retry_at)
    moved = await client.claim("w2")
    assert moved is not None
    assert moved["task_id"] == task_id
    before = await client.last_seq()
    assert await client.send("task.fail", body) == first
    assert await client.last_seq() == before


async def test_a_usage_retry_charges_the_shared_budget_once(client: ServiceClient) -> None:
    """UsageRecorded is written once; the budget counts the tokens once."""
    await client.ok("budget.create", {"budget_id": "team", "name": "team", "max_tokens": 10_000})
    await client.running_run("r1", budget_id="team")
    body = {"run_id": "r1", "model": "gpt-4o", "tokens_in": 100, "tokens_out": 50,
            "command_id": "usage-1"}
    first = await _twice(client, "usage.record", body)
    assert first["events"] == ["UsageRecorded"]
    assert (await client.budget_spent("team"))[0] == 150
    assert (await client.state_of("run", "r1")).tokens == 150


async def test_a_command_id_reused_for_another_aggregate_gets_a_contract_error(
        client: ServiceClient) -> None:
    """Reusing a command id on a different run must not be answered as an internal error."""
    # JetStream deduplicates Nats-Msg-Id (<command_id>:<n>) across the whole stream, so the
    # second append is dropped as a duplicate; the service then looks for it on the second
    # run, does not find it and answers internal.
    await client.ok("run.create", {"run_id": "r1", "name": "n", "command_id": "shared-id"})
    before = await client.last_seq()
    reply = await client.send("run.create", {"run_id": "r2", "name": "n",
                                             "command_id": "shared-id"})
    assert await client.last_seq() == before
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] != "internal", (
        "a command_id reused on another aggregate is answered 'internal' (a bug per "
        f"CONTRACT.md): {reply}")


@pytest.mark.slow
async def test_retries_after_a_restart_get_the_first_replies() -> None:
    """A new instance on the same log answers every earlier command id from the log."""
    store = InMemoryEventStore()
    commands: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("budget.create", {"budget_id": "team", "name": "t", "command_id": "k1"}, ()),
        ("run.create", {"name": "n", "budget_id": "team", "command_id": "k2"}, ()),
        ("worker.register", {"worker_id": "w1", "kinds": ["llm"], "command_id": "k3"}, ()),
        ("model.register", {"model": "acme", "provider": "acme", "input_usd_per_mtok": 1.0,
                            "output_usd_per_mtok": 2.0, "command_id": "k4"}, ()),
    ]
    first: list[dict[str, Any]] = []
    async with memory_service(store) as client:
        for subject, body, extra in commands:
            first.append(await client.ok(subject, body, *extra))
        run_id = first[1]["id"]
        await client.ok("run.start", {"run_id": run_id})
        commands += [
            ("task.submit", {"run_id": run_id, "kind": "llm", "command_id": "k5"}, ()),
            ("task.claim", {"worker_id": "w1", "command_id": "k6"}, ("task",)),
            ("usage.record", {"run_id": run_id, "model": "acme", "tokens_in": 10,
                              "tokens_out": 5, "command_id": "k7"}, ()),
        ]
        for subject, body, extra in commands[4:]:
            first.append(await client.ok(subject, body, *extra))
        task_id = first[4]["id"]
        commands.append(("task.succeed", {"task_id": task_id, "worker_id": "w1", "lease_epoch": 1,
                                          "command_id": "k8"}, ()))
        first.append(await client.ok(*commands[-1][:2]))
        written = await client.last_seq()
    async with memory_service(store) as client:
        assert await client.last_seq() == written, "seeding the prices again wrote"
        for (subject, body, _), reply in zip(commands, first, strict=True):
            assert await client.send(subject, body) == reply, subject
        assert await client.last_seq() == written
        await client.still_serving()
