"""The read models say what the write side decided: the same events, folded by the
command service's aggregates and by the projections, give the same answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from projections import build_read_models
from services.command_service import CommandService
from services.health import BUDGETS_SQL
from services.store import InMemoryEventStore
from tests.support.read_side import EventLog, append_all
from tests.support.service_client import InProcessClient


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@contextlib.asynccontextmanager
async def clocked() -> AsyncIterator[tuple[InProcessClient, Clock]]:
    clock = Clock()
    store = InMemoryEventStore()
    service = CommandService(store, clock=clock)
    await service.start()
    try:
        yield InProcessClient(store, service), clock
    finally:
        # Bounded, as runlog up bounds it: after a failed test the in-memory feed's
        # cancelled wait can take minutes to end.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.stop(), 5)


async def sql(client: InProcessClient, path: Path, query: str) -> list[tuple[Any, ...]]:
    """The rows of ``query`` on read models rebuilt from the service's log."""
    await build_read_models(client.store, path)
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(query).fetchall()


PRICE = {"model": "m", "provider": "acme", "input_usd_per_mtok": 1.0,
         "output_usd_per_mtok": 2.0, "effective_from": "2020-01-01T00:00:00Z"}


async def test_a_breaker_reopened_by_a_failed_probe_holds_no_probe(tmp_path: Path) -> None:
    async with clocked() as (client, clock):
        await client.ok("breaker.configure", {"breaker_id": "acme", "failure_threshold": 1,
                                              "cooldown_s": 1})
        await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
        clock.advance(seconds=2)
        await client.ok("breaker.acquire", {"breaker_id": "acme", "probe_id": "p1"}, "allowed",
                        "state")
        await client.ok("breaker.record", {"breaker_id": "acme", "outcome": "failure"})
        breaker = await client.state_of("breaker", "acme")
        assert (breaker.state, breaker.probe_id, breaker.probe_deadline) == ("open", None, None)
        assert await sql(client, tmp_path / "a.duckdb", "SELECT state, probe_id, "
                         "probe_deadline FROM breakers") == [("open", None, None)]


async def test_an_ended_attempt_leaves_no_lease_or_deadline_on_the_task(tmp_path: Path) -> None:
    async with clocked() as (client, clock):
        await client.running_run("r1")
        await client.worker("w1", capacity=4)
        for n in range(4):
            await client.submit(f"t{n}", max_attempts=2)
        leases = {}
        for _ in range(4):
            task = await client.claim("w1")
            assert task is not None
            leases[task["task_id"]] = task["lease_epoch"]
        held = {task_id: {"task_id": task_id, "worker_id": "w1", "lease_epoch": epoch}
                for task_id, epoch in leases.items()}
        await client.ok("task.start", held["t0"])
        await client.ok("task.succeed", {**held["t0"], "result": {}})
        await client.ok("task.cancel", {"task_id": "t1", "reason": "no longer wanted"})
        await client.ok("task.fail", {**held["t2"], "error_class": "auth"})  # not retried
        await client.ok("task.requeue", {"task_id": "t2"})
        clock.advance(seconds=120)
        await client.ok("task.expire_lease", {"task_id": "t3", "lease_epoch": leases["t3"]})
        written = {}
        for n in range(4):
            task = await client.state_of("task", f"t{n}")
            written[f"t{n}"] = (task.state, task.lease_epoch, task.lease_expires_at,
                                task.attempt_deadline, task.retry_at)
        rows = await sql(client, tmp_path / "a.duckdb", "SELECT task_id, state, lease_epoch, "
                         "lease_expires_at, attempt_deadline, retry_at FROM tasks")
        assert {row[0]: row[1:] for row in rows} == written
        assert all(lapse is None for _, _, lapse, _, _ in written.values())


async def test_a_budget_with_a_zero_bound_is_exhausted_from_the_start(tmp_path: Path) -> None:
    async with clocked() as (client, _):
        await client.ok("budget.create", {"budget_id": "zero", "name": "zero", "max_tokens": 0})
        assert (await client.state_of("budget", "zero")).state == "exhausted"
        assert await sql(client, tmp_path / "a.duckdb", "SELECT state FROM budgets") == [
            ("exhausted",)]


async def test_neither_health_nor_the_table_call_a_daily_budget_exhausted_for_all_days(
        tmp_path: Path) -> None:
    async with clocked() as (client, clock):
        await client.ok("model.register", PRICE)
        await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                          "max_tokens": 1000, "period": "day"})
        await client.ok("budget.create", {"budget_id": "all", "name": "all",
                                          "max_tokens": 1000})
        for run_id, budget_id in (("r1", "team"), ("r2", "all")):
            await client.running_run(run_id, budget_id=budget_id)
            await client.ok("usage.record", {"run_id": run_id, "model": "m",
                                             "tokens_in": 1200, "tokens_out": 0})
        clock.advance(days=1)
        assert (await client.state_of("budget", "team")).state == "active"
        assert [row[0] for row in await sql(client, tmp_path / "a.duckdb", BUDGETS_SQL)] == [
            "all"]
        # The table's all-time sums say nothing of a day: its row never reads exhausted.
        assert await sql(client, tmp_path / "b.duckdb", "SELECT budget_id, state, "
                         "exhausted_at IS NULL, spent_tokens FROM budgets ORDER BY 1") == [
            ("all", "exhausted", False, 1200), ("team", "active", True, 1200)]


async def test_a_crossed_threshold_leaves_the_budgets_period_as_it_was(tmp_path: Path) -> None:
    async with clocked() as (client, _):
        await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                          "max_tokens": 1000, "period": "day"})
        await client.ok("budget.create", {"budget_id": "all", "name": "all",
                                          "max_tokens": 1000})
        for budget_id, period in (("team", "2026-03-01"), ("all", "")):
            await client.ok("budget.record_threshold", {
                "budget_id": budget_id, "threshold": 80, "period": period, "tokens": 800,
                "cost_usd": "0"})
        assert await sql(client, tmp_path / "a.duckdb", "SELECT budget_id, period FROM "
                         "budgets ORDER BY 1") == [("all", None), ("team", "day")]


async def test_a_past_day_that_ran_out_is_forecast_as_exhausted_when_it_did(
        tmp_path: Path) -> None:
    async with clocked() as (client, clock):  # 2026-03-01 10:00 UTC, a day long past
        await client.ok("model.register", PRICE)
        await client.ok("budget.create", {"budget_id": "team", "name": "team",
                                          "max_tokens": 1000, "period": "day"})
        await client.running_run("r1", budget_id="team")
        for _ in range(2):  # 600 tokens at 10:00, 600 more at 11:00: the bound is passed
            await client.ok("usage.record", {"run_id": "r1", "model": "m",
                                             "tokens_in": 600, "tokens_out": 0})
            crossed = clock.now
            clock.advance(hours=1)
        assert await sql(client, tmp_path / "a.duckdb", """
            SELECT spent_tokens, tokens_left, projected_exhaustion_at, exhausts_within_period
            FROM budget_forecast WHERE budget_id = 'team'
              AND period_start = TIMESTAMPTZ '2026-03-01 00:00:00+00'""") == [
            (1200, -200, crossed, True)]


def _log_before_scopes() -> EventLog:
    """A budgeted run's usage as a version wrote it that named the budget, no scopes."""
    log = EventLog(start=datetime.now(UTC) - timedelta(minutes=30))
    log.emit("model", "m", "ModelRegistered", "active", model="m", provider="acme")
    log.emit("model", "m", "ModelPriceSet", "active", model="m", provider="acme",
             input_usd_per_mtok="1", output_usd_per_mtok="2",
             effective_from="2020-01-01T00:00:00+00:00", schema_version=2)
    log.emit("budget", "team", "BudgetCreated", "active", budget_id="team", name="team",
             max_tokens=10_000, schema_version=2)
    log.emit("run", "r1", "RunCreated", "pending", run_id="r1", name="r1", budget_id="team",
             budget={"max_tokens": 1000}, schema_version=2)
    log.emit("run", "r1", "RunStarted", "running", run_id="r1")
    log.emit("run", "r1", "UsageRecorded", "running", run_id="r1", model="m", provider="acme",
             tokens_in=900, tokens_out=0, input_usd_per_mtok="1", output_usd_per_mtok="2",
             price_effective_from="2020-01-01T00:00:00+00:00", cost_usd="0.0009",
             budget_id="team", schema_version=2)
    return log


async def test_usage_older_than_scopes_counts_where_the_write_side_counts_it(
        tmp_path: Path) -> None:
    store = InMemoryEventStore()
    await append_all(store, _log_before_scopes().envelopes)
    service = CommandService(store)
    await service.start()
    try:
        ledgers = service.repos.ledgers
        written = {scope: ledgers.ledger(scope).settled_tokens
                   for scope in ("budget:team", "run:r1")}
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.stop(), 5)
    assert written == {"budget:team": 900, "run:r1": 0}
    client = InProcessClient(store, service)
    ledger = dict(await sql(client, tmp_path / "a.duckdb", "SELECT scope, settled_tokens "
                            "FROM budget_ledger"))
    forecast = await sql(client, tmp_path / "b.duckdb", "SELECT spent_tokens FROM "
                         "budget_forecast WHERE scope = 'run' AND budget_id = 'r1'")
    assert (ledger.get("budget:team"), ledger.get("run:r1", 0), forecast) == (
        900, 0, [(0,)])
