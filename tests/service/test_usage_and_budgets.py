"""Usage pricing (price in effect, frozen on the event) and the budgets usage spends."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from events import utc_now
from tests.support.nats_server import wait_until
from tests.support.service_client import ServiceClient


def _price(model: str, input_usd: float, output_usd: float, effective_from: str
           ) -> dict[str, Any]:
    return {"model": model, "provider": "acme", "input_usd_per_mtok": input_usd,
            "output_usd_per_mtok": output_usd, "effective_from": effective_from}


def _usage(run_id: str, model: str, tokens_in: int, tokens_out: int, **fields: object
           ) -> dict[str, Any]:
    return {"run_id": run_id, "model": model, "tokens_in": tokens_in, "tokens_out": tokens_out,
            **fields}


async def _recorded(client: ServiceClient, run_id: str) -> list[dict[str, Any]]:
    return [e for e in await client.events_of("run", run_id) if e["type"] == "UsageRecorded"]


async def test_cost_is_tokens_times_the_price_in_effect(client: ServiceClient) -> None:
    """cost_usd = (tokens_in x input + tokens_out x output) / 1e6, price frozen on the event."""
    await client.ok("model.register", _price("acme-m", 3.0, 15.0, "2020-01-01T00:00:00Z"))
    await client.running_run("r1")
    await client.ok("usage.record", _usage("r1", "acme-m", 12_345, 678))
    (usage,) = await _recorded(client, "r1")
    assert (usage["input_usd_per_mtok"], usage["output_usd_per_mtok"]) == ("3", "15")
    assert usage["price_effective_from"].startswith("2020-01-01T00:00:00")
    assert usage["cost_usd"] == "0.047205"  # (12,345 x 3 + 678 x 15) / 1e6, exact
    state = await client.state_of("run", "r1")
    assert (state.tokens, state.cost_usd) == (12_345 + 678, Decimal(usage["cost_usd"]))


async def test_a_newer_price_does_not_reprice_old_usage(client: ServiceClient) -> None:
    """Usage before a price change keeps its price; usage after it pays the new one."""
    await client.ok("model.register", _price("acme-m", 1.0, 2.0, "2020-01-01T00:00:00Z"))
    await client.running_run("r1")
    await client.ok("usage.record", _usage("r1", "acme-m", 1_000_000, 1_000_000))
    changed = (utc_now() - timedelta(seconds=1)).isoformat()
    await client.ok("model.register", _price("acme-m", 10.0, 20.0, changed))
    await client.ok("usage.record", _usage("r1", "acme-m", 1_000_000, 1_000_000))
    old, new = await _recorded(client, "r1")
    assert (old["input_usd_per_mtok"], old["cost_usd"]) == ("1", "3")
    assert (new["input_usd_per_mtok"], new["cost_usd"]) == ("10", "30")
    assert (await client.state_of("run", "r1")).cost_usd == Decimal(33)


async def test_a_future_dated_price_is_not_used_yet(client: ServiceClient) -> None:
    """A price effective tomorrow leaves today's usage at today's price."""
    await client.ok("model.register", _price("acme-m", 1.0, 1.0, "2020-01-01T00:00:00Z"))
    tomorrow = (utc_now() + timedelta(days=1)).isoformat()
    await client.ok("model.register", _price("acme-m", 99.0, 99.0, tomorrow))
    await client.running_run("r1")
    await client.ok("usage.record", _usage("r1", "acme-m", 1_000_000, 0))
    (usage,) = await _recorded(client, "r1")
    assert (usage["input_usd_per_mtok"], usage["cost_usd"]) == ("1", "1")


async def test_a_model_with_only_a_future_price_has_no_price_yet(client: ServiceClient) -> None:
    """Usage of a model whose first price starts tomorrow is refused as not_found."""
    tomorrow = (utc_now() + timedelta(days=1)).isoformat()
    await client.ok("model.register", _price("acme-next", 1.0, 1.0, tomorrow))
    await client.running_run("r1")
    error = await client.refused("usage.record", _usage("r1", "acme-next", 1, 1), "not_found")
    assert "acme-next" in error["message"]


async def test_usage_of_an_unknown_model_is_not_found(client: ServiceClient) -> None:
    """No price, no usage: not_found naming the model, nothing written."""
    await client.running_run("r1")
    error = await client.refused("usage.record", _usage("r1", "no-such-model", 10, 10),
                                 "not_found")
    assert error["details"] == {"model": "no-such-model"}


async def test_usage_of_an_unknown_run_is_not_found(client: ServiceClient) -> None:
    """The run must exist."""
    await client.refused("usage.record", _usage("ghost", "gpt-4o", 1, 1), "not_found")


async def test_usage_before_the_run_started_is_an_invalid_transition(
        client: ServiceClient) -> None:
    """A pending run has spent nothing yet: usage needs it running (or ended)."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    error = await client.refused("usage.record", _usage("r1", "gpt-4o", 1, 1),
                                 "invalid_transition")
    assert error["message"] == "run r1 is pending; usage.record needs running/succeeded/failed/" \
                               "cancelled"


async def test_a_run_over_its_own_budget_refuses_new_tasks(client: ServiceClient) -> None:
    """Crossing max_tokens puts the run over budget; task.submit is then budget_exceeded."""
    await client.running_run("r1", budget={"max_tokens": 1000})
    await client.submit("t1")
    under = await client.ok("usage.record", _usage("r1", "gpt-4o", 300, 300))
    assert under["events"] == ["UsageRecorded"]
    crossing = await client.ok("usage.record", _usage("r1", "gpt-4o", 300, 300))
    assert crossing["events"] == ["UsageRecorded"]
    assert (await client.state_of("run", "r1")).over_budget
    error = await client.refused("task.submit", {"run_id": "r1", "kind": "llm"},
                                 "budget_exceeded")
    assert error["message"] == "run r1 has exceeded its budget"
    assert error["details"]["tokens"] == 1200
    later = await client.ok("usage.record", _usage("r1", "gpt-4o", 1, 1))
    assert later["events"] == ["UsageRecorded"]


async def test_a_run_over_its_cost_budget_refuses_new_tasks(client: ServiceClient) -> None:
    """max_cost_usd is a bound too."""
    await client.running_run("r1", budget={"max_cost_usd": 0.01})
    crossing = await client.ok("usage.record", _usage("r1", "gpt-4o", 0, 1001))
    assert crossing["events"] == ["UsageRecorded"]
    refused = await client.send("task.submit", {"run_id": "r1", "kind": "llm"})
    # 1001 output tokens at $10 per million; the amount travels as exact decimal text.
    assert (refused["error"]["code"], refused["error"]["details"]["cost_usd"]) == (
        "budget_exceeded", "0.01001")


async def test_a_shared_budget_is_charged_by_every_run_on_it(client: ServiceClient) -> None:
    """Usage on two runs charges one budget; once it is reached both runs refuse new tasks."""
    created = await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                                "max_tokens": 1000})
    assert created["events"] == ["BudgetCreated"]
    await client.running_run("a", budget_id="team")
    await client.running_run("b", budget_id="team")
    first = await client.ok("usage.record", _usage("a", "gpt-4o", 400, 300))
    assert first["events"] == ["UsageRecorded"]
    assert first["id"] == "a"
    second = await client.ok("usage.record", _usage("b", "gpt-4o", 200, 100))
    assert second["events"] == ["UsageRecorded"]
    usage = [e for e in await client.events("runlog.evt.run.*") if e["type"] == "UsageRecorded"]
    assert second["seq"] == usage[-1]["seq"]
    assert [e["budget_id"] for e in usage] == ["team", "team"]

    async def alerts() -> int:  # the crossings of 50, 80 and 100 % land on their own
        return sum(e["type"] == "BudgetThresholdCrossed"
                   for e in await client.events_of("budget", "team"))

    await wait_until(alerts, lambda n: n == 3)
    for run_id in ("a", "b"):
        error = await client.refused("task.submit", {"run_id": run_id, "kind": "llm"},
                                     "budget_exceeded")
        assert error["message"] == "budget team is exhausted"
    await client.ok("budget.raise", {"budget_id": "team", "max_tokens": 5000})
    await client.submit("t1", run_id="a")


async def test_run_create_on_a_budget_that_does_not_exist_is_not_found(
        client: ServiceClient) -> None:
    """A run cannot draw on a budget nobody created: its usage could never be charged."""
    error = await client.refused("run.create", {"run_id": "r1", "name": "n",
                                                "budget_id": "nobody"}, "not_found")
    assert "nobody" in error["message"]
    assert await client.types_of("run", "r1") == []
