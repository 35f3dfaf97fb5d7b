"""A retried command that wrote nothing gets the reply it got the first time."""

from __future__ import annotations

from tests.support.service_client import ServiceClient


async def test_a_retried_empty_claim_stays_empty(client: ServiceClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    empty = await client.send("task.claim", {"worker_id": "w1", "command_id": "claim-1"})
    assert empty["task"] is None
    await client.submit("t1")
    assert await client.send("task.claim", {"worker_id": "w1", "command_id": "claim-1"}) == empty
    fresh = await client.claim("w1")
    assert fresh is not None
    assert fresh["task_id"] == "t1"


async def test_a_retried_refusal_is_refused_again(client: ServiceClient) -> None:
    await client.ok("run.create", {"run_id": "r1", "name": "r1"})
    refused = await client.send("run.succeed", {"run_id": "r1", "command_id": "early"})
    assert refused["error"]["code"] == "invalid_transition"
    await client.ok("run.start", {"run_id": "r1"})
    before = await client.last_seq()
    assert await client.send("run.succeed", {"run_id": "r1", "command_id": "early"}) == refused
    assert await client.last_seq() == before
    await client.ok("run.succeed", {"run_id": "r1", "command_id": "on-time"})


async def test_without_a_command_id_every_send_is_a_new_command(client: ServiceClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    assert await client.claim("w1") is None
    await client.submit("t1")
    claimed = await client.claim("w1")
    assert claimed is not None
    assert claimed["task_id"] == "t1"
