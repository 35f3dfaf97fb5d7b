"""Budgets that admit before they spend, black-box: 64 reservers over two ``runlog up``.

One shared USD budget and one daily token budget; each reserver reserves, then settles,
releases or walks away (the reaper releases it at expiry). The log itself is folded
here, independently of the service's ledgers: after every event, settled + reserved
stays within both limits, every refusal is ``budget_exceeded``, and once the last
reservation has expired none is left live.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from tests.support.nats_server import wait_until
from tests.support.replicas import two_replicas
from tests.support.service_client import ServiceClient

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

RESERVERS = 64
ROUNDS = 6
MAX_USD = Decimal("0.08")
MAX_DAY_TOKENS = 30_000
_PRICE = {"model": "acme-m", "provider": "acme", "input_usd_per_mtok": 1.0,
          "output_usd_per_mtok": 2.0, "effective_from": "2020-01-01T00:00:00Z"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(nats_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[ServiceClient]:
    """Two ``runlog up`` processes (commands only) on one fresh stream."""
    async with two_replicas(nats_url, tmp_path_factory.mktemp("reservers")) as replicas:
        yield replicas.client


async def _reserver(client: ServiceClient, n: int) -> list[dict[str, Any]]:
    """Reserves ROUNDS times; settles (at or under the estimate), releases or abandons."""
    rng = random.Random(n)
    replies = []
    for round_ in range(ROUNDS):
        # Half the reservers ask for many tokens, half for much money: both limits bite.
        # Each estimate covers the call at the dearer price, so no settlement passes it.
        estimate_tokens = rng.randint(400, 900) if n % 2 else rng.randint(20, 80)
        usd = estimate_tokens * Decimal("0.000002") + (0 if n % 2 else
                                                       Decimal(rng.randint(15, 30)) / 10_000)
        reply = await client.send("budget.reserve", {
            "run_id": f"r{n}", "estimate_tokens": estimate_tokens,
            "estimate_cost_usd": str(usd),
            "ttl_s": 1.5, "command_id": f"reserve-{n}-{round_}"})
        replies.append(reply)
        if not reply["ok"]:
            continue
        action = (n + round_) % 4
        if action in (0, 1):
            used = rng.randint(0, estimate_tokens)
            replies.append(await client.send("usage.record", {
                "run_id": f"r{n}", "model": "acme-m", "tokens_in": used // 2,
                "tokens_out": used - used // 2, "reservation_id": reply["reservation_id"]}))
        elif action == 2:
            replies.append(await client.send("budget.release",
                                             {"reservation_id": reply["reservation_id"]}))
        # action 3: walk away; the reservation expires and the reaper releases it
    return replies


def _fold(events: list[dict[str, Any]], scopes: dict[str, tuple[Decimal, int]],
          peaks: dict[str, Decimal] | None = None) -> dict[str, dict[str, Any]]:
    """Folds the log; asserts settled + reserved within each limit after every event.

    Returns the reservations left live; ``peaks`` gets each scope's highest use of its
    limit (a fraction).
    """
    totals = {s: _Total() for s in scopes}
    peaks = {} if peaks is None else peaks
    live: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "BudgetReserved":
            live[event["reservation_id"]] = event
            _move(totals, event["scopes"], Decimal(event["estimate_cost_usd"]),
                  event["estimate_tokens"])
        elif event["type"] == "ReservationReleased":
            held = live.pop(event["reservation_id"], None)
            if held is not None:
                _move(totals, held["scopes"], -Decimal(held["estimate_cost_usd"]),
                      -held["estimate_tokens"])
        elif event["type"] == "UsageRecorded" and event.get("reservation_id"):
            held = live.pop(event["reservation_id"], None)
            if held is not None:
                _move(totals, held["scopes"], -Decimal(held["estimate_cost_usd"]),
                      -held["estimate_tokens"])
            _move(totals, event["scopes"], Decimal(str(event["cost_usd"])),
                  event["tokens_in"] + event["tokens_out"])
        for scope, (max_usd, max_tokens) in scopes.items():
            total = totals[scope]
            assert total.usd <= max_usd, (scope, event["seq"], total)
            assert total.tokens <= max_tokens, (scope, event["seq"], total)
            peaks[scope] = max(peaks.get(scope, Decimal(0)), total.usd / max_usd,
                               Decimal(total.tokens) / max_tokens)
    return live


@dataclass
class _Total:
    usd: Decimal = Decimal(0)
    tokens: int = 0


def _move(totals: dict[str, _Total], scopes: list[str], usd: Decimal, tokens: int) -> None:
    for scope in scopes:
        if scope in totals:
            totals[scope].usd += usd
            totals[scope].tokens += tokens


async def test_64_reservers_on_two_replicas_never_pass_either_limit(
        client: ServiceClient) -> None:
    """settled + reserved <= limit at every point of the log; refusals are budget_exceeded."""
    await client.ok("model.register", _PRICE)
    await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                      "max_cost_usd": float(MAX_USD)})
    await client.ok("budget.create", {"budget_id": "daily", "name": "daily", "scope": "day",
                                      "max_tokens": MAX_DAY_TOKENS})
    await asyncio.gather(*(client.running_run(f"r{n}", budget_id="team")
                           for n in range(RESERVERS)))
    replies = [r for rs in await asyncio.gather(*(_reserver(client, n)
                                                  for n in range(RESERVERS))) for r in rs]
    refusals = Counter(r["error"]["code"] for r in replies if not r["ok"])
    assert set(refusals) == {"budget_exceeded"}, refusals
    reserved = sum(1 for r in replies if r["ok"] and "reservation_id" in r)
    assert reserved >= RESERVERS

    events = await client.events()
    (day,) = {s for e in events if e["type"] == "BudgetReserved" for s in e["scopes"]
              if s.startswith("budget:daily@")}
    limits = {"budget:team": (MAX_USD, 10**12), day: (Decimal(10**9), MAX_DAY_TOKENS)}
    peaks: dict[str, Decimal] = {}
    _fold(events, limits, peaks)
    assert all(peak > Decimal("0.8") for peak in peaks.values()), peaks  # both limits bit

    async def live_left() -> int:
        return len(_fold(await client.events(), limits))

    await wait_until(live_left, lambda n: n == 0, timeout_s=30)
    reasons = Counter(e["reason"] for e in await client.events()
                      if e["type"] == "ReservationReleased")
    assert reasons["expired"] > 0, reasons
    assert reasons["released"] > 0, reasons
