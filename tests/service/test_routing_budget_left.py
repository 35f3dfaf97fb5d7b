"""``model.recommend`` chooses within what ``budget.reserve`` would admit: every bound on
the run (its own, a run-scoped budget, the run default), less what is settled and what
live reservations hold. A model it recommends is never one the budget then refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.settings import Settings
from tests.support.service_client import InProcessClient, memory_service

RECOMMENDED = ("recommendation_id", "model", "reason", "considered", "fallbacks",
               "budget_left")
RESERVED = ("reservation_id", "expires_at", "estimate_tokens", "estimate_cost_usd", "scopes")


async def _model(client: InProcessClient, name: str, usd_per_mtok: float) -> None:
    await client.ok("model.register", {"model": name, "provider": "acme7",
                                       "input_usd_per_mtok": usd_per_mtok,
                                       "output_usd_per_mtok": usd_per_mtok})
    await client.ok("model.configure", {"model": name, "tier": "t7"})


async def _recommend(client: InProcessClient, tokens: int) -> dict[str, Any]:
    return await client.ok("model.recommend", {"tier": "t7", "run_id": "r1",
                                               "estimate_tokens": tokens}, *RECOMMENDED)


async def test_a_run_scoped_budget_bounds_the_recommendation(client: InProcessClient) -> None:
    await _model(client, "dear", 50.0)
    await client.running_run("r1")
    await client.ok("budget.create", {"budget_id": "b-r1", "name": "r1", "scope": "run",
                                      "run_id": "r1", "max_cost_usd": "0.01"})
    await client.refused("budget.reserve", {"run_id": "r1", "estimate_tokens": 10_000,
                                            "model": "dear"}, "budget_exceeded")
    reply = await _recommend(client, 10_000)
    assert reply["model"] is None
    assert reply["budget_left"]["cost_usd"] == "0.01"


async def test_what_live_reservations_hold_is_not_left(client: InProcessClient) -> None:
    await _model(client, "one", 1.0)
    await client.running_run("r1", budget={"max_cost_usd": "0.01"})
    assert (await _recommend(client, 5_000))["model"] == "one"  # $0.005 of $0.01
    await client.ok("budget.reserve", {"run_id": "r1", "estimate_cost_usd": "0.008"},
                    *RESERVED)
    await client.refused("budget.reserve", {"run_id": "r1", "estimate_cost_usd": "0.005"},
                         "budget_exceeded")
    assert (await _recommend(client, 5_000))["model"] is None


async def test_the_run_default_bounds_the_recommendation(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, budget_run_tokens=1_000)
    async with memory_service(settings=settings) as client:
        await _model(client, "one", 1.0)
        await client.running_run("r1")
        assert (await _recommend(client, 500))["model"] == "one"
        assert (await _recommend(client, 5_000))["model"] is None
