"""Cost accuracy: cached input priced at its own rate, provider costs kept beside the
computed one and reconciled in SQL, and money exact from the command to the read model."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from projections import build_read_models
from tests.support.service_client import InProcessClient

CACHED_MODEL = {"model": "acme-cache", "provider": "acme", "input_usd_per_mtok": "3",
                "output_usd_per_mtok": 15, "cached_input_usd_per_mtok": 0.3,
                "cache_write_usd_per_mtok": "3.75", "effective_from": "2024-01-01T00:00:00Z"}


async def _last_usage(client: InProcessClient, run_id: str) -> dict[str, Any]:
    return [e for e in await client.events_of("run", run_id)
            if e["type"] == "UsageRecorded"][-1]


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


async def test_cached_input_is_priced_at_its_own_rates(client: InProcessClient) -> None:
    await client.ok("model.register", CACHED_MODEL)
    await client.running_run("r1")
    await client.ok("usage.record", {"run_id": "r1", "model": "acme-cache", "tokens_in": 1_000,
                                     "cached_tokens_in": 20_000, "cache_write_tokens_in": 4_000,
                                     "tokens_out": 500})
    usage = await _last_usage(client, "r1")
    # 1,000 x 3 + 20,000 x 0.3 + 4,000 x 3.75 + 500 x 15 = 31,500 per million tokens.
    assert usage["cost_usd"] == "0.0315"
    assert (usage["cached_tokens_in"], usage["cache_write_tokens_in"]) == (20_000, 4_000)
    assert (usage["cached_input_usd_per_mtok"], usage["cache_write_usd_per_mtok"]) == (
        "0.3", "3.75")
    assert (await client.state_of("run", "r1")).cost_usd == Decimal("0.0315")


async def test_without_a_cache_price_cached_input_costs_the_input_price(
        client: InProcessClient) -> None:
    await client.ok("model.register", {"model": "acme-plain", "provider": "acme",
                                       "input_usd_per_mtok": 2, "output_usd_per_mtok": 8})
    await client.running_run("r1")
    await client.ok("usage.record", {"run_id": "r1", "model": "acme-plain", "tokens_in": 0,
                                     "cached_tokens_in": 1_000, "tokens_out": 0})
    usage = await _last_usage(client, "r1")
    assert (usage["cost_usd"], usage["cached_input_usd_per_mtok"]) == ("0.002", "2")


async def test_money_with_more_than_twelve_places_is_refused(client: InProcessClient) -> None:
    await client.running_run("r1")
    for body in ({"provider_cost_usd": "0.0000000000001"}, {"provider_cost_usd": -1},
                 {"provider_cost_usd": "NaN"}, {"provider_cost_usd": True}):
        reply = await client.send("usage.record", {"run_id": "r1", "model": "gpt-4o",
                                                   "tokens_in": 1, "tokens_out": 1, **body})
        assert reply["error"]["code"] == "validation_failed", body
    assert await client.types_of("run", "r1") == ["RunCreated", "RunStarted"]


async def test_many_small_costs_sum_exactly_and_reconcile(client: InProcessClient,
                                                          tmp_path: Path) -> None:
    """97 calls of $0.001 are $0.097 in ``runs`` (a float sum says 0.09700000000000007)."""
    await client.ok("model.register", {"model": "acme-tiny", "provider": "acme",
                                       "input_usd_per_mtok": "0.1", "output_usd_per_mtok": "0.3",
                                       "effective_from": "2024-01-01T00:00:00Z"})
    await client.running_run("r1")
    for n in range(97):
        # Every other call carries what the provider billed: a tenth of a cent more, each.
        billed = {"provider_cost_usd": "0.0011"} if n % 2 else {}
        await client.ok("usage.record", {"run_id": "r1", "model": "acme-tiny",
                                         "tokens_in": 1_000, "tokens_out": 3_000, **billed})
    db_path = tmp_path / "read-models.duckdb"
    await build_read_models(client.store, db_path)
    assert _rows(db_path, "SELECT cost_usd, CAST(cost_usd AS VARCHAR) FROM runs") == [
        (Decimal("0.097"), "0.097000000000")]
    assert _rows(db_path, "SELECT calls, reported_calls, cost_usd, computed_reported_usd, "
                 "provider_cost_usd, difference_usd, difference_pct, max_call_difference_usd "
                 "FROM cost_reconciliation WHERE model = 'acme-tiny'") == [
        (97, 48, Decimal("0.097"), Decimal("0.048"), Decimal("0.0528"), Decimal("0.0048"),
         10.0, Decimal("0.0001"))]
    assert _rows(db_path, "SELECT count(*) FROM usage WHERE provider_cost_usd IS NOT NULL") == [
        (48,)]


async def test_model_set_quota_is_recorded_once_and_needs_a_registered_model(
        client: InProcessClient) -> None:
    quota = {"model": "gpt-4o", "max_tokens_per_day": 1_000_000, "max_cost_usd_per_day": "25"}
    first = await client.ok("model.set_quota", quota)
    again = await client.ok("model.set_quota", quota)
    assert (first["events"], again["events"]) == (["ModelQuotaSet"], [])
    state = await client.state_of("model", "gpt-4o")
    assert state.quota is not None
    assert (state.quota.max_tokens_per_day, state.quota.max_cost_usd_per_day,
            state.quota.max_requests_per_day) == (1_000_000, Decimal(25), None)
    lifted = await client.ok("model.set_quota", {"model": "gpt-4o"})
    assert lifted["events"] == ["ModelQuotaSet"]
    await client.refused("model.set_quota", {"model": "no-such-model", "max_tokens_per_day": 1},
                         "not_found")
    await client.refused("model.set_quota", {"model": "gpt-4o", "max_tokens_per_day": -1},
                         "validation_failed")
