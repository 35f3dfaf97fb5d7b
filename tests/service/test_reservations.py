"""Budgets that admit before they spend: reserve, settle, release, on every scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest_asyncio

from services.domain.charges import Ledger
from services.settings import Settings
from tests.support.nats_server import wait_until
from tests.support.service_client import InProcessClient, ServiceClient, memory_service

_PRICE = {"model": "acme-m", "provider": "acme", "input_usd_per_mtok": 1.0,
          "output_usd_per_mtok": 2.0, "effective_from": "2020-01-01T00:00:00Z"}


async def _setup(client: ServiceClient, max_cost_usd: float | None = 0.01,
                 max_tokens: int | None = None, **run: object) -> None:
    await client.ok("model.register", _PRICE)
    await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                      "max_cost_usd": max_cost_usd, "max_tokens": max_tokens})
    await client.running_run("r1", budget_id="team", **run)


_R = ("reservation_id", "expires_at", "estimate_tokens", "estimate_cost_usd", "scopes")
"""The reply fields of budget.reserve beyond the envelope."""


def _reserve(rid: str, cost: str | None = "0.004", tokens: int | None = 100,
             **fields: object) -> dict[str, Any]:
    body: dict[str, Any] = {"reservation_id": rid, "run_id": "r1", **fields}
    if cost is not None:
        body["estimate_cost_usd"] = cost
    if tokens is not None:
        body["estimate_tokens"] = tokens
    return body


def _settle(rid: str | None, tokens_in: int = 1000, tokens_out: int = 0, **fields: object
            ) -> dict[str, Any]:
    body = {"run_id": "r1", "model": "acme-m", "tokens_in": tokens_in, "tokens_out": tokens_out,
            **fields}
    return body | ({"reservation_id": rid} if rid else {})


def _ledger(client: InProcessClient, scope: str) -> Ledger:
    return client.service.repos.ledgers.ledger(scope)


async def test_a_reservation_holds_its_estimate_until_settled(client: InProcessClient) -> None:
    """Reserved counts at once; the settling usage replaces it with the real cost."""
    await _setup(client)
    reply = await client.ok("budget.reserve", _reserve("res1"), *_R)
    assert (reply["id"], reply["reservation_id"], reply["estimate_cost_usd"]) == (
        "res1", "res1", "0.004")
    assert "budget:team" in reply["scopes"]
    assert "run:r1" in reply["scopes"]
    held = _ledger(client, "budget:team")
    assert (held.reserved_cost_usd, held.reserved_tokens, held.live) == (Decimal("0.004"), 100, 1)
    await client.ok("usage.record", _settle("res1"))  # $0.001
    settled = _ledger(client, "budget:team")
    assert (settled.reserved_cost_usd, settled.settled_cost_usd, settled.live) == (
        Decimal(0), Decimal("0.001"), 0)
    (usage,) = [e for e in await client.events_of("run", "r1") if e["type"] == "UsageRecorded"]
    assert usage["reservation_id"] == "res1"
    assert "budget:team" in usage["scopes"]


async def test_a_reservation_past_the_limit_is_refused(client: InProcessClient) -> None:
    """settled + reserved + estimate > max: budget_exceeded naming the scope, nothing written."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a", "0.006"), *_R)
    before = await client.last_seq()
    error = await client.refused("budget.reserve", _reserve("b", "0.005"), "budget_exceeded")
    assert error["details"]["scope"] == "budget:team"
    assert error["details"]["reserved_cost_usd"] == "0.006"
    assert await client.last_seq() == before
    await client.ok("budget.reserve", _reserve("c", "0.004"), *_R)  # exactly up to the limit


async def test_release_gives_the_room_back(client: InProcessClient) -> None:
    """A released reservation stops counting; releasing it again is invalid_transition."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a", "0.01"), *_R)
    await client.refused("budget.reserve", _reserve("b", "0.001"), "budget_exceeded")
    await client.ok("budget.release", {"reservation_id": "a"})
    assert _ledger(client, "budget:team").reserved_cost_usd == 0
    await client.ok("budget.reserve", _reserve("b", "0.001"), *_R)
    await client.refused("budget.release", {"reservation_id": "a"}, "invalid_transition")
    await client.refused("budget.release", {"reservation_id": "nope"}, "not_found")


async def test_a_settled_reservation_cannot_be_released_or_settled_again(
        client: InProcessClient) -> None:
    """Each reservation ends once: a second settlement or a release after it is refused."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a"), *_R)
    await client.ok("usage.record", _settle("a"))
    await client.refused("budget.release", {"reservation_id": "a"}, "invalid_transition")
    await client.refused("usage.record", _settle("a"), "invalid_transition")
    await client.refused("usage.record", _settle("nope"), "not_found")


async def test_usage_over_its_estimate_is_recorded_at_its_real_cost(
        client: InProcessClient) -> None:
    """The money was spent: settlement records what the call cost, not what was reserved."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a", "0.001"), *_R)
    await client.ok("usage.record", _settle("a", tokens_in=3000))  # $0.003
    assert _ledger(client, "budget:team").settled_cost_usd == Decimal("0.003")


async def test_usage_after_a_release_still_counts(client: InProcessClient) -> None:
    """A call settled after its reservation expired or was released is spent all the same."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a"), *_R)
    await client.ok("budget.release", {"reservation_id": "a", "reason": "expired"})
    await client.ok("usage.record", _settle("a"))
    assert _ledger(client, "budget:team").settled_cost_usd == Decimal("0.001")
    await client.refused("usage.record", _settle("a"), "invalid_transition")


async def test_a_reservation_of_another_run_does_not_settle(client: InProcessClient) -> None:
    """usage.record names the run; a reservation of another run is validation_failed."""
    await _setup(client)
    await client.running_run("r2")
    await client.ok("budget.reserve", _reserve("a"), *_R)
    body = _settle("a") | {"run_id": "r2"}
    await client.refused("usage.record", body, "validation_failed")


async def test_a_usd_limit_prices_a_token_estimate_or_needs_one(client: InProcessClient) -> None:
    """Without estimate_cost_usd the model's dearer price prices the tokens; no model: refused."""
    await _setup(client)
    reply = await client.ok("budget.reserve", _reserve("a", None, 1000, model="acme-m"), *_R)
    assert reply["estimate_cost_usd"] == "0.002"  # 1000 tokens at $2/Mtok
    error = await client.refused("budget.reserve", _reserve("b", None, 1000), "validation_failed")
    assert "estimate_cost_usd" in error["message"]
    await client.refused("budget.reserve", _reserve("c", None, None), "validation_failed")


async def test_a_token_limit_needs_a_token_estimate(client: InProcessClient) -> None:
    """A cost-only estimate cannot be checked against a token bound."""
    await _setup(client, max_cost_usd=None, max_tokens=500)
    await client.refused("budget.reserve", _reserve("a", "0.001", None), "validation_failed")
    await client.ok("budget.reserve", _reserve("a", None, 500), *_R)
    await client.refused("budget.reserve", _reserve("b", None, 1), "budget_exceeded")


async def test_unreserved_usage_still_counts_and_bounds_later_reservations(
        client: InProcessClient) -> None:
    """Report-only clients keep working; what they spent is settled, and admission sees it."""
    await _setup(client)
    await client.ok("usage.record", _settle(None, tokens_in=9000))  # $0.009
    assert _ledger(client, "budget:team").settled_cost_usd == Decimal("0.009")
    await client.refused("budget.reserve", _reserve("a", "0.002"), "budget_exceeded")
    await client.ok("budget.reserve", _reserve("a", "0.001"), *_R)


async def test_reserving_for_an_ended_or_missing_run_is_refused(client: InProcessClient) -> None:
    """No reservations for runs that cannot spend any more."""
    await _setup(client)
    await client.ok("run.succeed", {"run_id": "r1"})
    await client.refused("budget.reserve", _reserve("a"), "invalid_transition")
    await client.refused("budget.reserve", _reserve("a") | {"run_id": "nope"}, "not_found")


async def test_a_closed_budget_admits_nothing(client: InProcessClient) -> None:
    """budget.close stops new reservations on it."""
    await _setup(client)
    await client.ok("budget.close", {"budget_id": "team"})
    error = await client.refused("budget.reserve", _reserve("a"), "budget_exceeded")
    assert "closed" in error["message"]


async def test_a_retried_reserve_answers_as_the_first_time(client: InProcessClient) -> None:
    """The same command_id gets the same reservation back and holds it once."""
    await _setup(client)
    first = await client.ok("budget.reserve", _reserve("a", command_id="c1"), *_R)
    again = await client.ok("budget.reserve", _reserve("a", command_id="c1"), *_R)
    assert again["reservation_id"] == first["reservation_id"] == "a"
    assert _ledger(client, "budget:team").live == 1


# -- scopes ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def defaults() -> AsyncIterator[InProcessClient]:
    """A service with the seed's defaults: 5K per run, 50K per session, 500K per day."""
    settings = Settings(data_dir=Path(".runlog-unused"), budget_run_tokens=5000,
                        budget_session_tokens=50_000, budget_day_tokens=500_000)
    async with memory_service(settings=settings) as service:
        yield service


async def test_the_run_default_bounds_a_run_without_a_budget(defaults: InProcessClient) -> None:
    """RUNLOG_BUDGET_RUN_TOKENS: a run with no budget of its own gets 5000 tokens."""
    await defaults.running_run("r1")
    await defaults.ok("budget.reserve", _reserve("a", None, 5000), *_R)
    error = await defaults.refused("budget.reserve", _reserve("b", None, 1), "budget_exceeded")
    assert error["details"]["scope"] == "run:r1"
    assert "RUNLOG_BUDGET_RUN_TOKENS" in error["message"]


async def test_a_runs_own_budget_replaces_the_run_default(defaults: InProcessClient) -> None:
    """run.create budget.max_tokens is the run's bound instead of the default."""
    await defaults.running_run("r1", budget={"max_tokens": 9000})
    await defaults.ok("budget.reserve", _reserve("a", None, 9000), *_R)
    await defaults.refused("budget.reserve", _reserve("b", None, 1), "budget_exceeded")


async def test_the_session_default_bounds_the_runs_of_a_session(
        defaults: InProcessClient) -> None:
    """RUNLOG_BUDGET_SESSION_TOKENS over every run of one session_id."""
    for n in range(11):
        await defaults.running_run(f"s{n}", session_id="chat1")
    for n in range(10):
        await defaults.ok("budget.reserve", {"run_id": f"s{n}", "estimate_tokens": 5000}, *_R)
    error = await defaults.refused("budget.reserve", {"run_id": "s10", "estimate_tokens": 1},
                                   "budget_exceeded")
    assert error["details"]["scope"] == "session:chat1"
    await defaults.running_run("other", session_id="chat2")
    await defaults.ok("budget.reserve", {"run_id": "other", "estimate_tokens": 5000}, *_R)


async def test_a_session_budget_replaces_the_session_default(defaults: InProcessClient) -> None:
    """budget.create scope=session: that session's bound, in tokens and/or USD."""
    await defaults.ok("budget.create", {"budget_id": "chat", "name": "chat", "scope": "session",
                                        "session_id": "s1", "max_tokens": 100})
    await defaults.running_run("r1", session_id="s1")
    await defaults.ok("budget.reserve", _reserve("a", None, 100), *_R)
    error = await defaults.refused("budget.reserve", _reserve("b", None, 1), "budget_exceeded")
    assert error["details"]["scope"] == "budget:chat"


async def test_a_day_budget_is_keyed_by_the_day_in_its_time_zone(
        client: InProcessClient) -> None:
    """scope=day bounds everything, per day of its time zone; its ledger names the day."""
    await client.ok("budget.create", {"budget_id": "daily", "name": "daily", "scope": "day",
                                      "time_zone": "Pacific/Auckland", "max_tokens": 1000})
    await client.running_run("r1")
    await client.running_run("r2")
    reply = await client.ok("budget.reserve", _reserve("a", None, 600), *_R)
    (day,) = [s for s in reply["scopes"] if s.startswith("budget:daily@")]
    assert len(day) == len("budget:daily@2026-01-01")
    await client.refused("budget.reserve", _reserve("b", None, 600) | {"run_id": "r2"},
                         "budget_exceeded")


async def test_budget_scopes_are_validated(client: InProcessClient) -> None:
    """A scope needs its target, a time zone must exist; nothing is written otherwise."""
    before = await client.last_seq()
    for body in ({"scope": "run"}, {"scope": "session"}, {"scope": "shared", "run_id": "r1"},
                 {"time_zone": "Mars/Olympus"}, {"scope": "week"}, {"period": "month"}):
        await client.refused("budget.create", {"name": "b", **body}, "validation_failed")
    assert await client.last_seq() == before


async def test_usage_carries_the_session(client: InProcessClient) -> None:
    """usage.record records the run's session_id (or the one it names)."""
    await client.ok("model.register", _PRICE)
    await client.running_run("r1", session_id="s1")
    await client.ok("usage.record", _settle(None))
    await client.ok("usage.record", _settle(None, session_id="s2"))
    usage = [e for e in await client.events_of("run", "r1") if e["type"] == "UsageRecorded"]
    assert [u["session_id"] for u in usage] == ["s1", "s2"]
    assert "session:s1" in usage[0]["scopes"]
    assert "session:s2" in usage[1]["scopes"]


# -- every exit path releases ----------------------------------------------------


async def _released(client: InProcessClient, rid: str, timeout_s: float = 15.0) -> str:
    """Waits for the reservation's release; returns its reason."""
    async def reason() -> str | None:
        events = await client.events_of("reservation", rid)
        released = [e for e in events if e["type"] == "ReservationReleased"]
        return released[0]["reason"] if released else None

    found = await wait_until(reason, lambda r: r is not None, timeout_s=timeout_s)
    assert found is not None
    # A release written by a policy reaches the ledgers as the follower passes it.
    await client.caught_up()
    assert client.service.repos.ledgers.hold(rid) is None
    return found


async def _leased(client: InProcessClient) -> dict[str, Any]:
    await _setup(client)
    await client.worker("w1")
    await client.submit("t1")
    task = await client.claim("w1")
    assert task is not None
    await client.ok("budget.reserve", _reserve("a", task_id="t1", worker_id="w1"),
                    *_R)
    return task


async def test_a_reservation_expires_and_the_reaper_releases_it(client: InProcessClient) -> None:
    """Nobody settles or releases it: at its expiry it is released as expired."""
    await _setup(client)
    await client.ok("budget.reserve", _reserve("a", "0.01", ttl_s=0.3), *_R)
    await client.refused("budget.reserve", _reserve("b", "0.001"), "budget_exceeded")
    assert await _released(client, "a") == "expired"
    await client.ok("budget.reserve", _reserve("b", "0.001"), *_R)


async def test_the_end_of_its_task_releases_a_reservation(client: InProcessClient) -> None:
    """task.succeed without a settlement: the task's reservations go back."""
    task = await _leased(client)
    await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1",
                                     "lease_epoch": task["lease_epoch"]})
    assert await _released(client, "a") == "task_ended"


async def test_a_settled_reservation_is_not_released_at_its_tasks_end(
        client: InProcessClient) -> None:
    """Settled first, then the task ends: nothing is released (there is nothing to give back)."""
    task = await _leased(client)
    await client.ok("usage.record", _settle("a"))
    await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1",
                                     "lease_epoch": task["lease_epoch"]})
    await client.caught_up()
    assert await client.types_of("reservation", "a") == ["BudgetReserved"]
    assert _ledger(client, "budget:team").live == 0


async def test_a_lapsed_lease_releases_its_tasks_reservation(tmp_path: Path) -> None:
    """The holder stopped heartbeating: the lease expires, and so does its reservation."""
    settings = Settings(data_dir=tmp_path, lease_ttl_s=0.3)
    async with memory_service(settings=settings) as client:
        await _leased(client)
        assert await _released(client, "a") == "lease_expired"


async def test_a_lost_worker_releases_its_reservations(tmp_path: Path) -> None:
    """A worker marked lost gives back what it reserved outside any task."""
    settings = Settings(data_dir=tmp_path, worker_timeout_s=1.0, lease_ttl_s=600)
    async with memory_service(settings=settings) as client:
        await _setup(client)
        await client.worker("w1")
        await client.ok("budget.reserve", _reserve("a", worker_id="w1"), *_R)
        assert await _released(client, "a") == "worker_lost"


# -- alerts ------------------------------------------------------------------------


async def _crossings(client: InProcessClient, budget_id: str, count: int
                     ) -> list[tuple[int, str]]:
    async def found() -> list[tuple[int, str]]:
        return [(e["threshold"], e["period"]) for e in await client.events_of("budget", budget_id)
                if e["type"] == "BudgetThresholdCrossed"]

    return await wait_until(found, lambda f: len(f) >= count)


async def test_thresholds_are_recorded_once_each(client: InProcessClient) -> None:
    """50, 80 and 100 % of settled spending: one BudgetThresholdCrossed each, never again."""
    await _setup(client)  # $0.01; 1000 input tokens cost $0.001
    await client.ok("usage.record", _settle(None, tokens_in=5500))
    assert await _crossings(client, "team", 1) == [(50, "")]
    for _ in range(3):
        await client.ok("usage.record", _settle(None, tokens_in=1000))
    assert await _crossings(client, "team", 2) == [(50, ""), (80, "")]
    await client.ok("usage.record", _settle(None, tokens_in=2000))
    assert await _crossings(client, "team", 3) == [(50, ""), (80, ""), (100, "")]
    await client.ok("usage.record", _settle(None, tokens_in=1000))
    await client.caught_up()
    assert len(await _crossings(client, "team", 3)) == 3


async def test_thresholds_are_configurable_and_per_period(client: InProcessClient) -> None:
    """A daily budget with its own thresholds records them for the day they happen on."""
    await client.ok("model.register", _PRICE)
    await client.ok("budget.create", {"budget_id": "d", "name": "d", "scope": "day",
                                      "max_tokens": 1000, "thresholds": [90, 25]})
    await client.running_run("r1")
    await client.ok("usage.record", _settle(None, tokens_in=300))
    ((threshold, period),) = await _crossings(client, "d", 1)
    assert threshold == 25
    assert len(period) == len("2026-01-01")
    await client.ok("usage.record", _settle(None, tokens_in=650))
    assert [t for t, _ in await _crossings(client, "d", 2)] == [25, 90]


async def test_a_repeated_threshold_command_writes_nothing(client: InProcessClient) -> None:
    """budget.record_threshold is idempotent per threshold and period, whatever its id."""
    await _setup(client)
    body = {"budget_id": "team", "threshold": 50, "period": "", "tokens": 1, "cost_usd": "0.005"}
    assert (await client.ok("budget.record_threshold", body))["events"] == [
        "BudgetThresholdCrossed"]
    assert (await client.ok("budget.record_threshold", body))["events"] == []
