"""Reservations, budget ledgers and alerts in SQL: reserved vs settled, and what needs a look."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb

from projections import build_read_models
from services.settings import Settings
from services.store import InMemoryEventStore
from tests.support.nats_server import wait_until
from tests.support.service_client import InProcessClient, memory_service

_PRICE = {"model": "acme-m", "provider": "acme", "input_usd_per_mtok": 1.0,
          "output_usd_per_mtok": 2.0, "effective_from": "2020-01-01T00:00:00Z"}


def _usd(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("1e-12"))


async def _rows(store: InMemoryEventStore, path: Path, sql: str) -> list[tuple[object, ...]]:
    await build_read_models(store, path)
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


async def _set_up(client: InProcessClient) -> None:
    await client.ok("model.register", _PRICE)
    await client.ok("budget.create", {"budget_id": "team", "name": "team", "max_cost_usd": 0.01})
    await client.running_run("r1", budget_id="team", session_id="s1")


async def test_reserved_and_settled_are_visible_in_sql(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    async with memory_service(store) as client:
        await _set_up(client)
        reserve = {"run_id": "r1", "estimate_tokens": 900, "estimate_cost_usd": "0.004"}
        for rid in ("live", "settled", "given-back", "late"):
            await client.ok("budget.reserve", reserve | {"reservation_id": rid},
                            "reservation_id", "expires_at", "estimate_tokens",
                            "estimate_cost_usd", "scopes")
            if rid == "live":
                continue
            if rid != "settled":
                await client.ok("budget.release", {"reservation_id": rid})
            if rid != "given-back":
                await client.ok("usage.record", {"run_id": "r1", "model": "acme-m",
                                                 "tokens_in": 500, "tokens_out": 0,
                                                 "reservation_id": rid})
        reservations = await _rows(store, tmp_path / "a.duckdb", """
            SELECT reservation_id, state, release_reason, settled_tokens, settled_cost_usd,
                   estimate_cost_usd, session_id
            FROM reservations ORDER BY reservation_id""")
        assert reservations == [
            ("given-back", "released", "released", None, None, _usd("0.004"), "s1"),
            ("late", "settled", "released", 500, _usd("0.0005"), _usd("0.004"), "s1"),
            ("live", "reserved", None, None, None, _usd("0.004"), "s1"),
            ("settled", "settled", None, 500, _usd("0.0005"), _usd("0.004"), "s1")]
        ledger = await _rows(store, tmp_path / "b.duckdb", """
            SELECT scope, kind, target, settled_tokens, settled_cost_usd, reserved_tokens,
                   reserved_cost_usd, live_reservations, max_cost_usd
            FROM budget_ledger WHERE kind IN ('budget', 'session') ORDER BY scope""")
        assert ledger == [
            ("budget:team", "budget", "team", 1000, _usd("0.001"), 900, _usd("0.004"), 1,
             _usd("0.01")),
            ("session:s1", "session", "s1", 1000, _usd("0.001"), 900, _usd("0.004"), 1, None)]
        forecast = await _rows(store, tmp_path / "e.duckdb", """
            SELECT reserved_tokens, reserved_cost_usd FROM budget_forecast
            WHERE budget_id = 'team'""")
        assert forecast == [(900, _usd("0.004"))]
        usage = await _rows(store, tmp_path / "c.duckdb",
                            "SELECT DISTINCT session_id FROM usage")
        assert usage == [("s1",)]
        runs = await _rows(store, tmp_path / "d.duckdb", "SELECT session_id FROM runs")
        assert runs == [("s1",)]


async def test_alerts_list_thresholds_breakers_lost_workers_and_dead_letters(
        tmp_path: Path) -> None:
    store = InMemoryEventStore()
    async with memory_service(store) as client:
        await _set_up(client)
        await client.ok("usage.record", {"run_id": "r1", "model": "acme-m",
                                         "tokens_in": 8500, "tokens_out": 0})

        async def crossings() -> int:
            return sum(e["type"] == "BudgetThresholdCrossed"
                       for e in await client.events_of("budget", "team"))

        await wait_until(crossings, lambda n: n == 2)
        await client.ok("breaker.configure", {"breaker_id": "acme", "failure_threshold": 1,
                                              "cooldown_s": 60})
        await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
        await client.worker("w1")
        await client.submit("t1", max_attempts=1)
        task = await client.claim("w1")
        assert task is not None
        await client.ok("task.fail", {"task_id": "t1", "worker_id": "w1",
                                      "lease_epoch": task["lease_epoch"], "error_class": "auth"})
        await client.ok("breaker.force_open", {"breaker_id": "other", "reason": "provider down"})
        alerts = await _rows(store, tmp_path / "a.duckdb", """
            SELECT kind, severity, aggregate_id, threshold FROM alerts ORDER BY seq""")
        assert alerts == [("budget_threshold", "warning", "team", 50),
                          ("budget_threshold", "warning", "team", 80),
                          ("breaker_opened", "critical", "acme", None),
                          ("dead_letter", "critical", "t1", None),
                          ("breaker_opened", "critical", "other", None)]


async def test_a_lost_worker_is_an_alert(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    settings = Settings(data_dir=tmp_path, worker_timeout_s=1.0)
    async with memory_service(store, settings) as client:
        await client.worker("w1")

        async def lost() -> int:
            return sum(e["type"] == "WorkerLost" for e in await client.events_of("worker", "w1"))

        await wait_until(lost, lambda n: n == 1, timeout_s=15)
        alerts = await _rows(store, tmp_path / "a.duckdb",
                             "SELECT kind, severity, aggregate_id, detail FROM alerts")
        assert alerts == [("worker_lost", "critical", "w1", "worker w1 lost, holding 0 task(s)")]
