"""The command service through real NATS and JetStream: what the in-memory log cannot show.

The service's behaviour is tested on the in-memory log (tests/service); these tests
keep what depends on NATS itself: request/reply with its headers, published commands
with no one to answer, JetStream's optimistic concurrency on subjects and on the task
partition's wildcard, and its duplicate window, between two replicas on one stream.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from events import EVENT_PREFIX, utc_now
from services.bootstrap import command_service, seed_prices
from services.pricing import load_price_file
from services.settings import Settings
from services.store import JetStreamEventStore
from tests.support.nats_server import wait_until
from tests.support.service_client import (
    InProcessClient,
    NatsServiceClient,
    assert_each_task_leased_once,
    fresh_stream,
    launch,
    wait_past,
)

pytestmark = pytest.mark.nats


@pytest.fixture
async def service_settings(nc: Client, nats_url: str, tmp_path: Path
                           ) -> AsyncIterator[Settings]:
    """Settings of a service on a fresh stream of this test."""
    async with fresh_stream(nc, nats_url, tmp_path / "runlog") as settings:
        yield settings


@pytest.fixture
async def client(nc: Client, service_settings: Settings) -> AsyncIterator[NatsServiceClient]:
    """The whole command service on NATS, and a client of it."""
    async with launch(service_settings):
        yield NatsServiceClient(nc, service_settings.stream)


async def test_the_event_carries_nats_msg_id_and_the_callers_traceparent_only(
        client: NatsServiceClient) -> None:
    """The stored message has ``Nats-Msg-Id`` and the request's ``traceparent``, no other header."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    reply = await client.send("run.create", {"run_id": "r1", "name": "traced",
                                             "command_id": "c-traced"},
                              headers={"traceparent": traceparent, "X-Smuggled": "evil"})
    assert reply["ok"] is True
    stored = await client.nc.jetstream().get_last_msg(client.stream, f"{EVENT_PREFIX}.run.r1")
    headers = stored.headers or {}
    assert headers.get("Nats-Msg-Id") == "c-traced:0"
    assert headers.get("traceparent") == traceparent
    assert "X-Smuggled" not in headers


async def test_a_request_without_a_reply_subject_is_dropped_quietly(
        client: NatsServiceClient) -> None:
    """Published commands (no inbox to answer) neither stall nor break the service."""
    before = await client.last_seq()
    for body in (b"garbage", b"{}", json.dumps({"name": "fire-and-forget"}).encode()):
        await client.nc.publish("runlog.cmd.run.create", body)
        await client.nc.publish("runlog.cmd.nope.x", body)
    await client.nc.flush()
    await client.still_serving()
    # The one valid published create is carried out even though nobody hears the reply.
    await wait_until(client.last_seq, lambda seq: seq == before + 2)


async def test_a_claim_cycle_and_its_retries_over_nats(client: NatsServiceClient) -> None:
    """claim, start, succeed over NATS; each retried with its command id writes nothing."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    claim = {"worker_id": "w1", "command_id": "claim-1"}
    first = await client.ok("task.claim", claim, "task")
    assert first["events"] == ["TaskLeased"]
    holder = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1}
    for subject, body in [("task.start", holder | {"command_id": "start-1"}),
                          ("task.succeed", holder | {"command_id": "done-1"})]:
        await client.ok(subject, body)
    written = await client.last_seq()
    assert await client.send("task.claim", claim) == first
    assert await client.last_seq() == written
    assert await client.types_of("task", "t1") == ["TaskSubmitted", "TaskLeased", "TaskStarted",
                                                   "TaskSucceeded"]


@pytest.fixture
async def two_replicas(nc: Client, service_settings: Settings
                       ) -> AsyncIterator[tuple[InProcessClient, InProcessClient]]:
    """Two command services in this process on one real stream, each with its own caches."""
    store_a = JetStreamEventStore(nc, stream=service_settings.stream)
    store_b = JetStreamEventStore(nc, stream=service_settings.stream)
    await store_a.ensure_stream()
    async with command_service(store_a, service_settings) as a, \
            command_service(store_b, service_settings) as b:
        await asyncio.gather(seed_prices(a), seed_prices(b))
        yield InProcessClient(store_a, a), InProcessClient(store_b, b)


async def test_replicas_seeding_at_once_write_every_price_once(
        nc: Client, nats_url: str, service_settings: Settings) -> None:
    """Two replicas on their own connections send the same seed commands at the same time:
    each price lands once, and neither replica is refused one."""
    other_nc = await nats.connect(nats_url)
    store_a = JetStreamEventStore(nc, stream=service_settings.stream)
    store_b = JetStreamEventStore(other_nc, stream=service_settings.stream)
    await store_a.ensure_stream()
    try:
        async with command_service(store_a, service_settings) as a, \
                command_service(store_b, service_settings) as b:
            first = await asyncio.gather(seed_prices(a), seed_prices(b))
            again = await asyncio.gather(seed_prices(a), seed_prices(b))  # as at a restart
    finally:
        await other_nc.close()
    refused = [*first, *again]
    assert refused == [[], [], [], []], f"seed commands refused: {refused}"
    events = await NatsServiceClient(nc, service_settings.stream).events(
        f"{EVENT_PREFIX}.model.*")
    shipped = Counter(entry["model"] for entry in load_price_file())
    assert Counter(e["model"] for e in events if e["type"] == "ModelPriceSet") == shipped
    assert Counter(e["model"] for e in events if e["type"] == "ModelRegistered") == Counter(
        set(shipped))


async def test_two_replicas_race_for_claims_on_the_task_partition(
        two_replicas: tuple[InProcessClient, InProcessClient]) -> None:
    """Claims on both replicas at once: JetStream's wildcard guard leases each task once."""
    a, b = two_replicas
    await a.running_run("r1")
    await asyncio.gather(*(a.worker(f"w{n}", capacity=2) for n in range(10)))
    await asyncio.gather(*(a.submit(f"t{n}") for n in range(15)))
    await b.caught_up()
    replies = await asyncio.gather(*(
        (a if n % 2 else b).send_until_settled("task.claim", {
            "worker_id": f"w{n % 10}", "command_id": f"claim-{n}"})
        for n in range(20)))
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    claimed = [r["task"]["task_id"] for r in replies if r["task"] is not None]
    assert sorted(claimed) == sorted(f"t{n}" for n in range(15))
    events = await a.events()
    assert_each_task_leased_once(events)
    held: dict[str, int] = {}
    for event in events:
        if event["type"] == "TaskLeased":
            held[event["worker_id"]] = held.get(event["worker_id"], 0) + 1
    assert max(held.values()) <= 2


async def test_coordination_over_nats(client: NatsServiceClient) -> None:
    """not_before, a workstream ready by itself, a gate holding its patch, over NATS."""
    await client.running_run("r1")
    await client.worker("w1", capacity=2)
    soon = utc_now() + timedelta(milliseconds=500)
    await client.submit("later", not_before=soon.isoformat())
    assert await client.claim("w1") is None
    await wait_past(soon)
    task = await client.claim("w1")
    assert task is not None
    assert task["task_id"] == "later"

    await client.ok("workstream.create", {"workstream_id": "ws1", "run_id": "r1", "name": "a"})

    async def workstream() -> str:
        return str((await client.state_of("workstream", "ws1")).state)

    assert await wait_until(workstream, lambda s: s == "ready") == "ready"

    await client.ok("patch.propose", {"patch_id": "p1", "run_id": "r1", "title": "fix"})
    for subject in ("patch.validate", "patch.accept", "patch.apply", "patch.applied",
                    "patch.test", "patch.verify"):
        await client.ok(subject, {"patch_id": "p1"})
    await client.ok("gate.create", {"gate_id": "g1", "run_id": "r1", "name": "unit",
                                    "patch_id": "p1"})
    await client.ok("gate.start", {"gate_id": "g1"})
    await client.ok("gate.fail", {"gate_id": "g1", "reason": "red"})
    await client.refused("patch.commit", {"patch_id": "p1"}, "invalid_transition")


async def test_a_heartbeating_task_past_its_timeout_frees_its_slot_over_nats(
        client: NatsServiceClient) -> None:
    """The timeout policy fails an attempt past ``timeout_s`` though its holder heartbeats."""
    await client.running_run("r1")
    await client.worker("w1", capacity=1)
    await client.submit("slow", timeout_s=0.4, max_attempts=1)
    await client.submit("next")
    leased = await client.claim("w1")
    assert leased is not None
    assert leased["task_id"] == "slow"
    holder = {"task_id": "slow", "worker_id": "w1", "lease_epoch": leased["lease_epoch"]}
    await client.ok("task.start", holder)

    async def beat() -> str:
        await client.send("task.heartbeat", holder)
        return str((await client.state_of("task", "slow")).state)

    assert await wait_until(beat, lambda s: s == "failed", timeout_s=10) == "failed"
    assert (await client.events_of("task", "slow"))[-1]["error_class"] == "timeout"
    await client.refused("task.succeed", holder, "lease_mismatch")
    freed = await client.claim("w1")
    assert freed is not None
    assert freed["task_id"] == "next"
