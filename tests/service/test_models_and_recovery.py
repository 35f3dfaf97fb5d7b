"""Recovery strategies, breakers fed by usage, routing and the result cache, on the real service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from services.domain.breaker_feed import model_breaker_id, provider_breaker_id
from services.settings import Settings
from tests.support.nats_server import wait_until
from tests.support.recovery import INSTRUCTION, NO_WAIT, STRATEGY
from tests.support.service_client import InProcessClient, memory_service


@pytest_asyncio.fixture
async def quick() -> AsyncIterator[InProcessClient]:
    """A service whose retries are due at once (RUNLOG_RECOVERY base_s 0)."""
    settings = Settings(data_dir=Path(".runlog-unused"), recovery=NO_WAIT)
    async with memory_service(settings=settings) as service:
        yield service


async def _models(client: InProcessClient, *names_prices: tuple[str, float, str],
                  provider: str = "acme") -> None:
    for name, price, tier in names_prices:
        await client.ok("model.register", {"model": name, "provider": provider,
                                           "input_usd_per_mtok": price,
                                           "output_usd_per_mtok": price})
        await client.ok("model.configure", {"model": name, "tier": tier})


async def _eventually(client: InProcessClient, aggregate: str, aggregate_id: str,
                      accept: Any) -> Any:
    async def state() -> Any:
        return await client.state_of(aggregate, aggregate_id)

    return await wait_until(state, accept, timeout_s=5)


@pytest.mark.parametrize("error_class", sorted(STRATEGY))
async def test_each_error_class_is_recovered_by_its_strategy(
        quick: InProcessClient, error_class: str) -> None:
    """task.fail follows the class's strategy; the next lease carries its instruction."""
    await _models(quick, ("m-a", 1.0, "small"), ("m-b", 2.0, "small"))
    await quick.ok("model.configure", {"model": "m-a", "tier": "small", "fallbacks": ["m-b"]})
    await quick.running_run("r1")
    await quick.worker("w1")
    await quick.submit("t1", model="m-a")
    first = await quick.claim("w1")
    assert first is not None
    assert (first["model"], first["instruction"]) == ("m-a", None)
    failed = await quick.ok("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                          "error_class": error_class})
    strategy = STRATEGY[error_class]
    event = (await quick.events_of("task", "t1"))[-1]
    assert event["strategy"] == strategy
    if strategy in ("fail_fast", "escalate"):
        assert failed["events"] == ["TaskFailed"]
        assert await quick.claim("w1") is None
        return
    assert failed["events"] == ["TaskRetryScheduled"]
    retried = await quick.claim("w1")
    assert retried is not None
    assert retried["task_id"] == "t1"
    assert retried["instruction"] == INSTRUCTION[strategy]
    if strategy == "fallback":
        assert retried["model"] == "m-b"


async def test_rate_limit_honours_retry_after(client: InProcessClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    await client.ok("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                  "error_class": "rate_limit", "retry_after_s": 120})
    event = (await client.events_of("task", "t1"))[-1]
    delay = datetime.fromisoformat(event["retry_at"]) - datetime.fromisoformat(
        event["occurred_at"])
    assert event["strategy"] == "backoff"
    assert delay.total_seconds() == pytest.approx(120, abs=0.01)


async def test_usage_outcomes_feed_the_model_and_provider_breakers(
        client: InProcessClient) -> None:
    """Provider failures open the model's breaker at its own threshold; refusals never count."""
    await _models(client, ("m-a", 1.0, "small"), ("m-z", 1.0, "small"))
    await client.ok("model.configure", {"model": "m-a", "tier": "small",
                                        "failure_threshold": 2, "cooldown_s": 60})
    await client.running_run("r1")
    usage = {"run_id": "r1", "tokens_in": 1, "tokens_out": 1}
    for _ in range(6):
        await client.ok("usage.record", usage | {"model": "m-z", "outcome": "budget_exceeded"})
    for _ in range(2):
        await client.ok("usage.record", usage | {"model": "m-a", "outcome": "server_error"})
    opened = await _eventually(client, "breaker", model_breaker_id("m-a"),
                               lambda s: s is not None and s.state == "open")
    assert (opened.failure_threshold, opened.cooldown_s) == (2, 60.0)
    provider = await _eventually(client, "breaker", provider_breaker_id("acme"),
                                 lambda s: s is not None and s.consecutive_failures == 2)
    assert provider.state == "closed"  # the provider's default threshold is 5
    await client.ok("usage.record", usage | {"model": "m-z", "outcome": "ok"})
    await _eventually(client, "breaker", provider_breaker_id("acme"),
                      lambda s: s.consecutive_failures == 0)
    await client.caught_up()
    assert await client.state_of("breaker", model_breaker_id("m-z")) is None


async def test_force_open_then_recommend_under_a_tight_budget(client: InProcessClient) -> None:
    """The cheapest model's breaker is forced open and the dearest does not fit the budget."""
    await _models(client, ("m-cheap", 0.1, "small"), ("m-mid", 1.0, "small"),
                  ("m-dear", 50.0, "small"), ("m-other", 0.01, "frontier"))
    await client.ok("model.configure", {"model": "m-mid", "tier": "small",
                                        "fallbacks": ["m-dear"]})
    forced = await client.ok("breaker.force_open", {
        "breaker_id": model_breaker_id("m-cheap"), "reason": "incident", "open_for_s": 600})
    assert forced["events"] == ["BreakerForcedOpen"]
    await client.running_run("r1", budget={"max_cost_usd": 0.02})
    body = {"tier": "small", "run_id": "r1", "estimate_tokens": 10_000,
            "command_id": "rec-1"}
    reply = await client.ok("model.recommend", body, "recommendation_id", "model", "reason",
                            "considered", "fallbacks", "budget_left")
    assert (reply["model"], reply["fallbacks"]) == ("m-mid", ["m-dear"])
    verdicts = {c["model"]: (c["chosen"], c["reason"]) for c in reply["considered"]}
    assert list(verdicts) == ["m-cheap", "m-mid", "m-dear"]
    assert "forced" in verdicts["m-cheap"][1] or "open until" in verdicts["m-cheap"][1]
    assert "budget left" in verdicts["m-dear"][1]
    assert reply["budget_left"] == {"tokens": None, "cost_usd": "0.02"}
    again = await client.ok("model.recommend", body, "recommendation_id", "model", "reason",
                            "considered", "fallbacks", "budget_left")
    assert again == reply
    await client.ok("breaker.force_close", {"breaker_id": model_breaker_id("m-cheap"),
                                            "reason": "over"})
    after = await client.ok("model.recommend", {"tier": "small", "run_id": "r1",
                                                "estimate_tokens": 10_000},
                            "recommendation_id", "model", "reason", "considered", "fallbacks",
                            "budget_left")
    assert after["model"] == "m-cheap"


async def test_a_repeated_submission_is_answered_from_the_cache(client: InProcessClient) -> None:
    """The second identical task is satisfied from the first's result; invalidation ends it."""
    await _models(client, ("m-a", 1.0, "small"))
    await client.running_run("r1", cache_results=True)
    await client.worker("w1", kinds=["summarise"])
    await client.submit("t1", kind="summarise", payload={"doc": 7})
    await client.claim("w1")
    await client.ok("usage.record", {"run_id": "r1", "task_id": "t1", "model": "m-a",
                                     "tokens_in": 600_000, "tokens_out": 400_000})
    await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                     "result": {"summary": "short"}})
    await client.caught_up()
    hit = await client.ok("task.submit", {"task_id": "t2", "run_id": "r1", "kind": "summarise",
                                          "payload": {"doc": 7}, "command_id": "s2"}, "cached")
    assert hit["events"] == ["TaskSatisfiedFromCache"]
    assert hit["cached"]["source_task_id"] == "t1"
    assert hit["cached"]["result"] == {"summary": "short"}
    assert (hit["cached"]["tokens_saved"], hit["cached"]["cost_saved_usd"]) == (1_000_000, "1")
    retried = await client.ok("task.submit", {"task_id": "t2", "run_id": "r1",
                                              "kind": "summarise", "payload": {"doc": 7},
                                              "command_id": "s2"}, "cached")
    assert retried == hit
    assert (await client.state_of("task", "t2")).state == "succeeded"
    other = await client.submit("t3", kind="summarise", payload={"doc": 8})
    assert other["events"] == ["TaskSubmitted"]
    body = {"prefix": "summarise:", "command_id": "inv-1"}
    dropped = await client.ok("cache.invalidate", body, "invalidated")
    assert dropped["invalidated"] == 1
    client.service.remembered = type(client.service.remembered)()  # as another replica would
    assert await client.ok("cache.invalidate", body, "invalidated") == dropped
    miss = await client.submit("t4", kind="summarise", payload={"doc": 7})
    assert miss["events"] == ["TaskSubmitted"]


async def test_bad_routing_and_cache_commands_are_refused(client: InProcessClient) -> None:
    await client.refused("cache.invalidate", {}, "validation_failed")
    await client.refused("cache.invalidate", {"cache_key": "a", "prefix": "b"},
                         "validation_failed")
    await client.refused("model.recommend", {"models": ["a", "a"]}, "validation_failed")
    await client.refused("model.configure", {"model": "never-registered"}, "not_found")
    await client.refused("breaker.force_close", {"breaker_id": "nope"}, "not_found")
    await client.refused("breaker.force_open", {"breaker_id": "b", "open_for_s": -1},
                         "validation_failed")
    await client.still_serving()


async def test_an_auto_end_run_ends_when_its_last_task_is_answered_from_the_cache(
        client: InProcessClient) -> None:
    await client.running_run("src", cache_results=True)
    await client.worker("w1")
    await client.submit("t1", run_id="src", payload={"q": 1})
    await client.claim("w1")
    await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                     "result": {"a": 1}})
    await client.caught_up()
    await client.running_run("again", cache_results=True, auto_end=True)
    hit = await client.ok("task.submit", {"task_id": "t2", "run_id": "again", "kind": "llm",
                                          "payload": {"q": 1}}, "cached")
    assert hit["events"] == ["TaskSatisfiedFromCache"]
    await _eventually(client, "run", "again", lambda s: s.state == "succeeded")


async def test_two_replicas_feed_each_usage_to_a_breaker_once(client: InProcessClient) -> None:
    """Both replicas' feeds see every usage; the derived command ids make each count once."""
    async with memory_service(client.store) as other:
        await _models(client, ("m-a", 1.0, "small"))
        await client.ok("model.configure", {"model": "m-a", "tier": "small",
                                            "failure_threshold": 10})
        await client.running_run("r1")
        usage = {"run_id": "r1", "model": "m-a", "tokens_in": 1, "tokens_out": 1,
                 "outcome": "timeout"}
        for n in range(6):
            await (client if n % 2 else other).ok("usage.record", usage)
        await client.caught_up()
        await other.caught_up()
        breaker_id = model_breaker_id("m-a")
        state = await _eventually(client, "breaker", breaker_id,
                                  lambda s: s is not None and s.consecutive_failures >= 6)
        await other.caught_up()  # its feed has seen (and sent) every usage by now
        await client.caught_up()
        events = await client.events_of("breaker", breaker_id)
        failures = [e for e in events if e["type"] == "BreakerFailureRecorded"]
        assert [e["consecutive_failures"] for e in failures] == [1, 2, 3, 4, 5, 6]
        assert state.consecutive_failures == 6


async def test_a_success_right_behind_a_failure_still_clears_it(client: InProcessClient) -> None:
    await _models(client, ("m-a", 1.0, "small"))
    await client.running_run("r1")
    usage = {"run_id": "r1", "model": "m-a", "tokens_in": 1, "tokens_out": 1}
    await client.ok("usage.record", usage | {"outcome": "network"})
    await client.ok("usage.record", usage | {"outcome": "ok"})
    breaker_id = model_breaker_id("m-a")
    await _eventually(client, "breaker", breaker_id,
                      lambda s: s is not None and s.consecutive_failures == 0)
    types = await client.types_of("breaker", breaker_id)
    assert types == ["BreakerConfigured", "BreakerFailureRecorded", "BreakerSuccessRecorded"]
