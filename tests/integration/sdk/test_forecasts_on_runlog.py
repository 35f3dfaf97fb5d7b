"""Forecasts against a real runlog: usage sent over NATS, budget_forecast, quota_daily and
cost_reconciliation read back over NATS, with exact money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.sdk import Client, QueryResult

pytestmark = pytest.mark.nats

# gpt-4o: $2.5 input, $1.25 cached input, $10 output per million tokens (shipped list).
# 1,000 x 2.5 + 2,000 x 1.25 + 500 x 10 = 10,000 per million: $0.01 a call, 1,500 tokens.


def _objects(result: QueryResult) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _forecast(client: Client, after: int) -> dict[str, dict[str, Any]]:
    result = await client.query("SELECT * FROM budget_forecast", after=after)
    return {row["scope"]: row for row in _objects(result)}


async def _spend(client: Client, run_id: str, calls: int) -> int:
    seq = 0
    for _ in range(calls):
        seq = (await client.record_usage(run_id=run_id, model="gpt-4o", tokens_in=1_000,
                                         cached_tokens_in=2_000, tokens_out=500,
                                         provider_cost_usd="0.0101")).seq
    return seq


async def test_budget_forecast_burn_rates_and_exhaustion(client: Client) -> None:
    await client.create_budget(budget_id="team", name="team", max_cost_usd="0.05",
                               max_tokens=100_000)
    run = await client.create_run(run_id="r1", name="r1", budget_id="team",
                                  budget={"max_tokens": 30_000})
    await client.start_run(run_id=run.id)
    forecast = await _forecast(client, await _spend(client, "r1", 4))

    shared, own = forecast["shared"], forecast["run"]
    assert (shared["budget_id"], shared["period"], shared["period_end"]) == ("team", "total", None)
    assert (shared["spent_tokens"], shared["spent_cost_usd"]) == (6_000, 0.04)
    assert (shared["reserved_tokens"], shared["reserved_cost_usd"]) == (0, 0)
    assert (shared["tokens_left"], shared["cost_left_usd"]) == (94_000, 0.01)
    # All of it in the last hour, and the budget is younger than an hour: both rates agree.
    assert (shared["burn_tokens_per_hour_last_hour"], shared["burn_usd_per_hour_last_hour"],
            shared["burn_tokens_per_hour_period"], shared["burn_usd_per_hour_period"]) == (
        6_000, 0.04, 6_000.0, 0.04)
    # $0.01 left at $0.04 an hour: 15 minutes; 94,000 tokens at 6,000 an hour is later.
    assert shared["exhausted_by"] == "cost"
    assert _at(shared["projected_exhaustion_at"]) - _at(shared["forecast_at"]) == timedelta(
        minutes=15)
    assert (shared["projected_period_cost_usd"], shared["exhausts_within_period"]) == (None, True)
    # The run's own budget has only a token limit: 24,000 left at 6,000 an hour.
    assert (own["budget_id"], own["max_cost_usd"], own["exhausted_by"]) == ("r1", None, "tokens")
    assert _at(own["projected_exhaustion_at"]) - _at(own["forecast_at"]) == timedelta(hours=4)

    # The fifth call reaches the cost bound: the forecast says when it was reached.
    forecast = await _forecast(client, await _spend(client, "r1", 1))
    budgets = await client.query("SELECT exhausted_at FROM budgets WHERE budget_id = 'team'")
    shared = forecast["shared"]
    assert (shared["spent_cost_usd"], shared["cost_left_usd"], shared["exhausted_by"]) == (
        0.05, 0, "cost")
    assert _at(shared["projected_exhaustion_at"]) == _at(budgets.rows[0][0])

    # Once the run ended its period is over: the projection is what was spent.
    ended = await client.succeed_run(run_id="r1")
    own = (await _forecast(client, ended.seq))["run"]
    assert own["period_end"] is not None
    assert own["forecast_at"] == own["period_end"]
    assert (own["projected_period_tokens"], own["projected_period_cost_usd"]) == (7_500, 0.05)
    assert (own["projected_exhaustion_at"], own["exhausted_by"]) == (None, None)  # not reached


async def test_quota_daily_and_cost_reconciliation(client: Client) -> None:
    await client.set_model_quota(model="gpt-4o", max_tokens_per_day=100_000,
                                 max_requests_per_day=10)
    run = await client.create_run(run_id="q1", name="q1")
    await client.start_run(run_id=run.id)
    seq = await _spend(client, "q1", 5)
    (quota,) = _objects(await client.query(
        "SELECT * FROM quota_daily WHERE model = 'gpt-4o'", after=seq))
    assert (quota["calls"], quota["tokens_in"], quota["cached_tokens_in"],
            quota["tokens_out"], quota["tokens"], quota["cost_usd"]) == (
        5, 5_000, 10_000, 2_500, 17_500, 0.05)
    assert (quota["last_hour_calls"], quota["last_hour_tokens"]) == (5, 17_500)
    assert 0 < quota["hours_left"] <= 24
    # The day's end at the last hour's pace: 17,500 tokens more for every hour left.
    expected = 17_500 * (1 + quota["hours_left"])
    assert quota["projected_tokens"] == pytest.approx(expected, abs=2)
    assert Decimal(str(quota["projected_cost_usd"])) == pytest.approx(
        Decimal("0.05") * Decimal(1 + quota["hours_left"]), abs=Decimal("0.00001"))
    # Against the quota: 5 of 10 calls (17,500 of 100,000 tokens); at 5 calls an hour the
    # call quota is reached in an hour, if the day lasts that long.
    assert (quota["quota_tokens_per_day"], quota["quota_requests_per_day"],
            quota["quota_cost_usd_per_day"], quota["quota_used_pct"]) == (100_000, 10, None, 50.0)
    assert quota["projected_calls"] == round(5 * (1 + quota["hours_left"]))
    assert quota["projected_quota_pct"] == 10 * quota["projected_calls"]  # the call quota
    runway = (_at(quota["quota_exhausted_at"]) - datetime.now(UTC)
              if quota["quota_exhausted_at"] else None)
    if quota["hours_left"] > 1.01:
        assert runway is not None
        assert timedelta(minutes=59) < runway <= timedelta(hours=1)
    else:
        assert runway is None

    (reconciled,) = _objects(await client.query(
        "SELECT calls, reported_calls, cost_usd, provider_cost_usd, difference_usd, "
        "difference_pct, CAST(difference_usd AS VARCHAR) AS exact "
        "FROM cost_reconciliation WHERE model = 'gpt-4o'"))
    assert reconciled == {"calls": 5, "reported_calls": 5, "cost_usd": 0.05,
                          "provider_cost_usd": 0.0505, "difference_usd": 0.0005,
                          "difference_pct": 1.0, "exact": "0.000500000000"}


async def test_a_daily_budget_is_forecast_for_today(client: Client) -> None:
    await client.create_budget(budget_id="daily", name="daily", scope="day", period="day",
                               max_cost_usd="1")
    run = await client.create_run(run_id="d1", name="d1")
    await client.start_run(run_id=run.id)
    forecast = await client.query(
        "SELECT period, ledger, epoch(period_end - period_start) AS span, spent_cost_usd, "
        "projected_period_cost_usd, exhausted_by, forecast_at, period_end "
        "FROM budget_forecast WHERE budget_id = 'daily'", after=await _spend(client, "d1", 2))
    ((period, ledger, span, spent, projected, by, at, end),) = forecast.rows
    assert (period, spent, by) == ("day", 0.02, "cost")
    assert ledger.startswith("budget:daily@")
    assert span == 86_400.0  # a day, in seconds
    # $0.02 spent in the last hour, and that pace until midnight UTC.
    hours_left = (_at(end) - _at(at)).total_seconds() / 3600
    assert projected == pytest.approx(0.02 + 0.02 * hours_left, abs=1e-6)
    (day,) = (await client.query("SELECT spent_cost_usd, max_cost_usd FROM budget_forecast "
                                 "WHERE scope = 'day' AND budget_id = 'day' "
                                 "AND period_end > now()")).rows
    assert tuple(day) == (0.02, None)  # the whole UTC day, without a bound of its own
