"""Every command of CONTRACT.md through NATS: its effect on the log and its exact reply."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from events import EVENT_PREFIX, is_valid_id
from tests.support.service_client import InProcessClient, ServiceClient

_ENVELOPE = {"type", "schema_version", "event_id", "aggregate", "aggregate_id", "version",
             "occurred_at", "command_id"}


async def test_run_create_writes_run_created_and_replies_with_the_envelope(
        client: ServiceClient) -> None:
    """A create names its id, version 1, the sequence it landed at and the event types."""
    body = {"run_id": "r1", "name": "nightly", "labels": {"team": "infra"},
            "budget": {"max_tokens": 1000, "max_cost_usd": 2.5}, "command_id": "create-r1"}
    reply = await client.ok("run.create", body)
    assert reply == {"ok": True, "id": "r1", "version": 1, "seq": await client.last_seq(),
                     "events": ["RunCreated"]}
    (event,) = await client.events_of("run", "r1")
    assert set(event) >= _ENVELOPE
    assert event["seq"] == reply["seq"]
    assert event | {"event_id": "", "occurred_at": "", "seq": 0} == {
        "type": "RunCreated", "schema_version": 2, "event_id": "", "aggregate": "run",
        "aggregate_id": "r1", "version": 1, "occurred_at": "", "command_id": "create-r1",
        "from_state": None, "to_state": "pending", "run_id": "r1", "name": "nightly",
        "labels": {"team": "infra"}, "budget": {"max_tokens": 1000, "max_cost_usd": "2.5"},
        "budget_id": None, "max_concurrency": None, "auto_end": False, "seq": 0,
        "cache_results": False, "cache_ttl_s": None, "session_id": None,
    }
    assert datetime.fromisoformat(event["occurred_at"]).utcoffset() == timedelta(0)


async def test_the_event_carries_nats_msg_id_and_the_callers_traceparent_only(
        client: ServiceClient) -> None:
    """The stored message has ``Nats-Msg-Id`` and the request's ``traceparent``, no other header."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    reply = await client.send("run.create", {"run_id": "r1", "name": "traced",
                                             "command_id": "c-traced"},
                              headers={"traceparent": traceparent, "X-Smuggled": "evil"})
    assert reply["ok"] is True
    stored = await client.store.last_on_subject(f"{EVENT_PREFIX}.run.r1")
    assert stored is not None
    headers = stored.headers
    assert headers.get("Nats-Msg-Id") == "c-traced:0"
    assert headers.get("traceparent") == traceparent
    assert "X-Smuggled" not in headers


async def test_an_omitted_run_id_is_generated_and_returned(client: ServiceClient) -> None:
    """The generated id obeys the id rule and names the run on the log."""
    reply = await client.ok("run.create", {"name": "anonymous"})
    assert is_valid_id(reply["id"])
    assert reply["events"] == ["RunCreated"]
    assert await client.types_of("run", reply["id"]) == ["RunCreated"]
    other = await client.ok("run.create", {"name": "anonymous"})
    assert other["id"] != reply["id"]


async def test_run_lifecycle_start_then_succeed(client: ServiceClient) -> None:
    """pending -> running -> succeeded, the version counting each event."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    started = await client.ok("run.start", {"run_id": "r1"})
    assert started == {"ok": True, "id": "r1", "version": 2, "seq": await client.last_seq(),
                       "events": ["RunStarted"]}
    succeeded = await client.ok("run.succeed", {"run_id": "r1"})
    assert succeeded == {"ok": True, "id": "r1", "version": 3,
                         "seq": await client.last_seq(), "events": ["RunSucceeded"]}
    events = await client.events_of("run", "r1")
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "pending"), ("pending", "running"), ("running", "succeeded")]


async def test_run_fail_keeps_its_reason(client: ServiceClient) -> None:
    """running -> failed, with the reason on the event."""
    await client.running_run("r1")
    reply = await client.ok("run.fail", {"run_id": "r1", "reason": "tests broke"})
    assert reply["events"] == ["RunFailed"]
    assert reply["version"] == 3
    event = (await client.events_of("run", "r1"))[-1]
    assert (event["to_state"], event["reason"]) == ("failed", "tests broke")


@pytest.mark.parametrize("started", [False, True], ids=["pending", "running"])
async def test_run_cancel_from_pending_or_running(client: ServiceClient, started: bool) -> None:
    """Both open states may be cancelled; the reason is kept."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    if started:
        await client.ok("run.start", {"run_id": "r1"})
    reply = await client.ok("run.cancel", {"run_id": "r1", "reason": "not needed"})
    assert reply["events"] == ["RunCancelled"]
    event = (await client.events_of("run", "r1"))[-1]
    assert (event["to_state"], event["reason"]) == ("cancelled", "not needed")


async def test_worker_register_and_heartbeat(client: ServiceClient) -> None:
    """A registered worker is idle with its kinds and capacity; a heartbeat is recorded."""
    registered = await client.ok("worker.register", {"worker_id": "w1", "kinds": ["llm", "tool"],
                                                     "capacity": 3})
    assert registered == {"ok": True, "id": "w1", "version": 1, "seq": await client.last_seq(),
                          "events": ["WorkerRegistered"]}
    beat = await client.ok("worker.heartbeat", {"worker_id": "w1"})
    assert beat == {"ok": True, "id": "w1", "version": 2, "seq": await client.last_seq(),
                    "events": ["WorkerHeartbeatReceived"]}
    first, second = await client.events_of("worker", "w1")
    assert (first["to_state"], first["kinds"], first["capacity"]) == ("idle", ["llm", "tool"], 3)
    assert (second["from_state"], second["to_state"]) == ("idle", "idle")


async def test_task_submit_applies_the_documented_defaults(client: ServiceClient) -> None:
    """priority 5, max_attempts 3 and an empty payload unless given; the task is queued."""
    await client.running_run("r1")
    reply = await client.ok("task.submit", {"run_id": "r1", "kind": "llm"})
    assert is_valid_id(reply["id"])
    assert (reply["version"], reply["events"]) == (1, ["TaskSubmitted"])
    (event,) = await client.events_of("task", reply["id"])
    assert (event["to_state"], event["priority"], event["max_attempts"], event["payload"]) == (
        "queued", 5, 3, {})
    assert (event["run_id"], event["kind"], event["resource"]) == ("r1", "llm", None)


async def test_task_submit_keeps_every_given_field(client: ServiceClient) -> None:
    """task_id, priority, resource, max_attempts and payload land on TaskSubmitted."""
    await client.running_run("r1")
    await client.submit("t1", priority=9, resource="gpu", max_attempts=7,
                        payload={"prompt": "hi", "n": [1, 2]})
    (event,) = await client.events_of("task", "t1")
    assert (event["priority"], event["resource"], event["max_attempts"]) == (9, "gpu", 7)
    assert event["payload"] == {"prompt": "hi", "n": [1, 2]}


async def test_task_happy_path_claim_start_succeed(client: InProcessClient) -> None:
    """Claim leases the task with its view, start runs it, succeed ends it and frees the worker."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1", priority=4, payload={"q": 1})
    claim = await client.ok("task.claim", {"worker_id": "w1"}, "task")
    assert (claim["id"], claim["version"], claim["events"]) == (
        "t1", 2, ["TaskLeased"])
    assert client.held_by("w1") == {"t1"}
    assert claim["seq"] == await client.last_seq()
    task = claim["task"]
    assert set(task) == {"task_id", "run_id", "kind", "priority", "payload", "lease_epoch",
                         "attempt", "lease_expires_at", "max_attempts", "model", "instruction"}
    assert task | {"lease_expires_at": ""} == {
        "task_id": "t1", "run_id": "r1", "kind": "llm", "priority": 4, "payload": {"q": 1},
        "lease_epoch": 1, "attempt": 1, "lease_expires_at": "", "max_attempts": 3,
        "model": None, "instruction": None}
    holder = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1}
    started = await client.ok("task.start", holder)
    assert (started["version"], started["events"]) == (3, ["TaskStarted"])
    done = await client.ok("task.succeed", holder | {"result": {"answer": 42}})
    assert (done["id"], done["version"]) == ("t1", 4)
    assert done["events"] == ["TaskSucceeded"]
    assert done["seq"] == await client.last_seq()
    task_events = await client.events_of("task", "t1")
    assert [e["to_state"] for e in task_events] == ["queued", "leased", "running", "succeeded"]
    assert task_events[-1]["result"] == {"answer": 42}
    assert client.held_by("w1") == frozenset()
    assert await client.types_of("worker", "w1") == ["WorkerRegistered"]


async def test_a_task_may_succeed_without_reporting_its_start(client: ServiceClient) -> None:
    """leased -> succeeded directly, as the task table allows."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    done = await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1})
    assert done["events"][0] == "TaskSucceeded"


async def test_task_fail_retryable_schedules_a_retry(client: ServiceClient) -> None:
    """A transient error class with attempts left goes to retry_wait."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    failed = await client.ok("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                           "error_class": "rate_limit", "message": "429"})
    assert failed["events"] == ["TaskRetryScheduled"]
    event = (await client.events_of("task", "t1"))[-1]
    assert (event["to_state"], event["error_class"], event["message"]) == (
        "retry_wait", "rate_limit", "429")


async def test_task_fail_non_retryable_fails_the_task(client: ServiceClient) -> None:
    """A permanent error class fails the task at once."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    failed = await client.ok("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                           "error_class": "invalid_request"})
    assert failed["events"] == ["TaskFailed"]
    assert (await client.events_of("task", "t1"))[-1]["to_state"] == "failed"


async def test_model_register_writes_the_model_and_its_price(client: ServiceClient) -> None:
    """A new model: ModelRegistered then ModelPriceSet, under its escaped id."""
    body = {"model": "acme-1.5", "provider": "acme", "input_usd_per_mtok": 1.5,
            "output_usd_per_mtok": 6.0, "effective_from": "2024-01-01T00:00:00Z"}
    reply = await client.ok("model.register", body)
    assert reply == {"ok": True, "id": "acme-1_2e5", "version": 2,
                     "seq": await client.last_seq(), "events": ["ModelRegistered", "ModelPriceSet"]}
    price = (await client.events_of("model", "acme-1_2e5"))[-1]
    assert (price["model"], price["provider"]) == ("acme-1.5", "acme")
    assert (price["input_usd_per_mtok"], price["output_usd_per_mtok"]) == ("1.5", "6")
    assert datetime.fromisoformat(price["effective_from"]) == datetime.fromisoformat(
        "2024-01-01T00:00:00+00:00")


async def test_model_register_of_a_known_price_writes_nothing(client: ServiceClient) -> None:
    """The same price with the same effective date is a no-op reply with no events."""
    body = {"model": "acme", "provider": "acme", "input_usd_per_mtok": 1.0,
            "output_usd_per_mtok": 2.0, "effective_from": "2024-01-01T00:00:00Z"}
    first = await client.ok("model.register", body)
    before = await client.last_seq()
    again = await client.ok("model.register", body)
    assert again == {"ok": True, "id": "acme", "version": 2, "seq": first["seq"], "events": []}
    assert await client.last_seq() == before


async def test_the_shipped_price_list_is_seeded(client: ServiceClient) -> None:
    """Every model of services/pricing/model_prices.json is registered at start."""
    models = await client.events(f"{EVENT_PREFIX}.model.*")
    registered = {e["model"] for e in models if e["type"] == "ModelRegistered"}
    assert {"gpt-4o", "claude-sonnet-4", "gemini-2.5-pro"} <= registered
    assert len(registered) >= 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", e["aggregate_id"]) for e in models)


async def test_usage_record_prices_the_call(client: ServiceClient) -> None:
    """UsageRecorded carries the tokens, the price in effect and the cost, on the run."""
    await client.running_run("r1")
    reply = await client.ok("usage.record", {
        "run_id": "r1", "task_id": "t9", "worker_id": "w9", "model": "gpt-4o",
        "tokens_in": 1000, "tokens_out": 500, "latency_ms": 812.5, "outcome": "ok"})
    assert reply == {"ok": True, "id": "r1", "version": 3, "seq": await client.last_seq(),
                     "events": ["UsageRecorded"]}
    usage = (await client.events_of("run", "r1"))[-1]
    assert (usage["task_id"], usage["worker_id"], usage["model"], usage["provider"]) == (
        "t9", "w9", "gpt-4o", "openai")
    assert (usage["tokens_in"], usage["tokens_out"], usage["latency_ms"]) == (1000, 500, 812.5)
    assert (usage["input_usd_per_mtok"], usage["output_usd_per_mtok"]) == ("2.5", "10")
    assert usage["cost_usd"] == "0.0075"  # (1000 x 2.5 + 500 x 10) / 1e6, exact
    assert usage["outcome"] == "ok"


async def test_breaker_acquire_on_an_unknown_breaker_is_allowed(client: ServiceClient) -> None:
    """An unknown breaker counts as closed: allowed, nothing written."""
    before = await client.last_seq()
    reply = await client.ok("breaker.acquire", {"breaker_id": "openai"}, "allowed", "state")
    assert (reply["allowed"], reply["state"], reply["events"]) == (True, "closed", [])
    assert await client.last_seq() == before
