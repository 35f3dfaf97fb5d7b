"""Recovery, breakers, routing and the result cache through NATS, checked in the SQL read models.

A whole runlog (command service, policies, projectors) on a real nats-server; every
command is a NATS request from the SDK client and every check reads DuckDB through
``runlog.sql``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from services.domain.breaker_feed import model_breaker_id, provider_breaker_id
from services.sdk import Client, QueryResult
from tests.integration.sdk.conftest import QUICK_RETRIES, eventually, rows, running_runlog
from tests.support.recovery import INSTRUCTION, NO_WAIT, STRATEGY

pytestmark = pytest.mark.nats



@pytest.fixture
async def client(nc: NatsClient, nats_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """An SDK client of a whole runlog whose retries are due at once."""
    async with running_runlog(nc, nats_url, tmp_path / "runlog", recovery=NO_WAIT):
        yield Client(nc, retry=QUICK_RETRIES)


async def _models(client: Client, *models: tuple[str, float, str, list[str]]) -> None:
    for name, price, tier, fallbacks in models:
        await client.send("model.register", {"model": name, "provider": "acme",
                                             "input_usd_per_mtok": price,
                                             "output_usd_per_mtok": price})
        await client.send("model.configure", {"model": name, "tier": tier,
                                              "fallbacks": fallbacks})


async def _claim(client: Client, worker_id: str) -> dict[str, Any] | None:
    reply = await client.send("task.claim", {"worker_id": worker_id})
    task = (reply.model_extra or {}).get("task")
    return task if isinstance(task, dict) else None


def _extra(reply: Any) -> dict[str, Any]:
    return dict(reply.model_extra or {})


async def test_each_error_class_strategy_shows_in_the_lease_and_in_sql(client: Client) -> None:
    await _models(client, ("m-a", 1.0, "small", ["m-b"]), ("m-b", 2.0, "small", []))
    await client.send("run.create", {"run_id": "rec", "name": "recovery"})
    await client.send("run.start", {"run_id": "rec"})
    await client.send("worker.register", {"worker_id": "w1", "kinds": ["llm"], "capacity": 32})
    for error_class in STRATEGY:
        await client.send("task.submit", {"task_id": f"t-{error_class}", "run_id": "rec",
                                          "kind": "llm", "model": "m-a"})
    first = {t["task_id"]: t for t in [await _claim(client, "w1") for _ in STRATEGY] if t}
    assert set(first) == {f"t-{c}" for c in STRATEGY}
    for error_class in STRATEGY:
        task = first[f"t-{error_class}"]
        await client.send("task.fail", {"task_id": task["task_id"], "worker_id": "w1",
                                        "lease_epoch": task["lease_epoch"],
                                        "error_class": error_class})
    retried = {t["task_id"]: t for t in [await _claim(client, "w1") for _ in STRATEGY] if t}
    retrying = {c for c, s in STRATEGY.items() if s in INSTRUCTION}
    assert set(retried) == {f"t-{c}" for c in retrying}
    for error_class in retrying:
        assert retried[f"t-{error_class}"]["instruction"] == INSTRUCTION[STRATEGY[error_class]]
    assert retried["t-server_error"]["model"] == "m-b"

    def complete(result: QueryResult) -> bool:
        return len(result.rows) == len(STRATEGY) and all(r[2] for r in result.rows)

    # The claims first: a strategy is in the rows from the failure on, the new lease later.
    await client.query("SELECT 1", after=client.last_seq)
    result = await eventually(client, "SELECT task_id, state, strategy, instruction::VARCHAR, "
                              "is_escalated FROM tasks WHERE run_id = 'rec' ORDER BY task_id",
                              complete)
    found = {r[0].removeprefix("t-"): r[1:] for r in rows(result)}
    for error_class, strategy in STRATEGY.items():
        state, got, instruction, escalated = found[error_class]
        assert got == strategy, error_class
        assert state == ("leased" if strategy in INSTRUCTION else "failed"), error_class
        assert escalated is (strategy == "escalate"), error_class
        if strategy in ("fallback", "truncate"):
            assert instruction is not None, error_class
            assert '"model"' in instruction, error_class


async def test_usage_feeds_breakers_force_open_and_recommend_are_audited_in_sql(
        client: Client) -> None:
    await _models(client, ("m-cheap", 0.1, "small", []), ("m-mid", 1.0, "small", ["m-dear"]),
                  ("m-dear", 50.0, "small", []), ("m-z", 0.5, "other", []))
    await client.send("model.configure", {"model": "m-mid", "tier": "small",
                                          "fallbacks": ["m-dear"], "failure_threshold": 2})
    await client.send("run.create", {"run_id": "route", "name": "routing",
                                     "budget": {"max_cost_usd": 0.02}})
    await client.send("run.start", {"run_id": "route"})
    usage = {"run_id": "route", "tokens_in": 1, "tokens_out": 1}
    for _ in range(4):
        await client.send("usage.record", usage | {"model": "m-z", "outcome": "quota_exceeded"})
    for _ in range(2):
        await client.send("usage.record", usage | {"model": "m-mid", "outcome": "rate_limit"})
    mid = model_breaker_id("m-mid")
    opened = await eventually(
        client, f"SELECT state, failure_threshold, last_error_class FROM breakers "
        f"WHERE breaker_id = '{mid}'", lambda r: bool(r.rows) and r.rows[0][0] == "open")
    assert rows(opened) == [("open", 2, "rate_limit")]
    provider = await eventually(
        client, f"SELECT state, consecutive_failures FROM breakers WHERE breaker_id = "
        f"'{provider_breaker_id('acme')}'", lambda r: bool(r.rows) and r.rows[0][1] == 2)
    assert rows(provider) == [("closed", 2)]
    await client.send("usage.record", usage | {"model": "m-z", "outcome": "ok"})

    forced = await client.send("breaker.force_open", {
        "breaker_id": model_breaker_id("m-cheap"), "reason": "provider incident"})
    assert list(forced.events) == ["BreakerForcedOpen"]
    await client.send("breaker.force_close", {"breaker_id": mid, "reason": "checked"})
    reply = await client.send("model.recommend", {"tier": "small", "run_id": "route",
                                                  "estimate_tokens": 10_000})
    decision = _extra(reply)
    assert (decision["model"], decision["fallbacks"]) == ("m-mid", ["m-dear"])
    assert [c["model"] for c in decision["considered"]] == ["m-cheap", "m-mid", "m-dear"]

    audited = await client.query(
        "SELECT model, reason, considered::VARCHAR, budget_left_usd, tier FROM "
        "routing_decisions", after=reply)
    ((model, reason, considered, left, tier),) = rows(audited)
    assert (model, tier) == ("m-mid", "small")
    spent = (4 * 2 * 0.5 + 2 * 2 * 1.0 + 2 * 0.5) / 1e6  # the usage above, priced
    assert left == pytest.approx(0.02 - spent)
    assert "m-mid" in reason
    assert "forced open" in considered
    assert "do not fit the budget left" in considered
    breakers = await client.query(
        "SELECT breaker_id, state, is_forced, forced_reason FROM breakers WHERE breaker_id IN "
        f"('{model_breaker_id('m-cheap')}', '{mid}', '{model_breaker_id('m-z')}') "
        "ORDER BY breaker_id", after=reply)
    assert rows(breakers) == [(model_breaker_id("m-cheap"), "open", True, "provider incident"),
                              (mid, "closed", False, "checked")]
    feed = await client.query("SELECT count(*) FROM breakers WHERE breaker_id = "
                              f"'{provider_breaker_id('acme')}' AND consecutive_failures = 0",
                              after=reply)
    assert rows(feed) == [(1,)]


async def test_a_cache_hit_is_linked_and_its_savings_counted_in_sql(client: Client) -> None:
    await _models(client, ("m-a", 2.0, "small", []))
    await client.send("run.create", {"run_id": "cached", "name": "cache",
                                     "cache_results": True})
    await client.send("run.start", {"run_id": "cached"})
    await client.send("worker.register", {"worker_id": "w1", "kinds": ["summarise"]})
    await client.send("task.submit", {"task_id": "c1", "run_id": "cached",
                                      "kind": "summarise", "payload": {"doc": 1}})
    task = await _claim(client, "w1")
    assert task is not None
    await client.send("usage.record", {"run_id": "cached", "task_id": "c1", "model": "m-a",
                                       "tokens_in": 300_000, "tokens_out": 200_000})
    await client.send("task.succeed", {"task_id": "c1", "worker_id": "w1",
                                       "lease_epoch": task["lease_epoch"],
                                       "result": {"summary": "s"}})
    await eventually(client, "SELECT state FROM cache_entries WHERE task_id = 'c1'",
                     lambda r: rows(r) == [("stored",)])
    hit = await client.send("task.submit", {"task_id": "c2", "run_id": "cached",
                                            "kind": "summarise", "payload": {"doc": 1}})
    assert list(hit.events) == ["TaskSatisfiedFromCache"]
    assert _extra(hit)["cached"]["result"] == {"summary": "s"}

    entry = await client.query(
        "SELECT hits, tokens, tokens_saved, cost_saved_usd FROM cache_entries "
        "WHERE task_id = 'c1'", after=hit)
    assert rows(entry) == [(1, 500_000, 500_000, 1.0)]
    linked = await client.query("SELECT state, from_cache_of, result::VARCHAR FROM tasks "
                                "WHERE task_id = 'c2'", after=hit)
    ((state, source, result),) = rows(linked)
    assert (state, source) == ("succeeded", "c1")
    assert "summary" in result

    dropped = await client.send("cache.invalidate", {"prefix": "summarise:"})
    gone = await client.query("SELECT state FROM cache_entries WHERE task_id = 'c1'",
                              after=dropped)
    assert rows(gone) == [("invalidated",)]
    miss = await client.send("task.submit", {"task_id": "c3", "run_id": "cached",
                                             "kind": "summarise", "payload": {"doc": 1}})
    assert list(miss.events) == ["TaskSubmitted"]


async def test_a_lapsed_lease_is_recovered_as_lease_expired_in_sql(
        nc: NatsClient, nats_url: str, tmp_path: Path) -> None:
    """runlog's own error class: the lease policy expires it and its strategy backs off."""
    async with running_runlog(nc, nats_url, tmp_path / "runlog", lease_ttl_s=1.0):
        client = Client(nc, retry=QUICK_RETRIES)
        await client.send("run.create", {"run_id": "lapse", "name": "lapse"})
        await client.send("run.start", {"run_id": "lapse"})
        await client.send("worker.register", {"worker_id": "gone", "kinds": ["llm"]})
        await client.send("task.submit", {"task_id": "t-lapse", "run_id": "lapse",
                                          "kind": "llm"})
        assert await _claim(client, "gone") is not None
        result = await eventually(
            client, "SELECT state, error_class, strategy FROM tasks WHERE task_id = 't-lapse'",
            lambda r: bool(r.rows) and r.rows[0][1] == "lease_expired")
        assert rows(result) == [("retry_wait", "lease_expired", "backoff")]
