"""Columns derived from other rows: what a worker holds, what a shared budget has spent."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from projections import build_read_models
from projections.applier import BatchApplier
from projections.database import ReadModelDb
from projections.models.derived import recount_budgets
from services.store import InMemoryEventStore
from tests.support.service_client import InProcessClient, memory_service


async def _rows(store: InMemoryEventStore, path: Path, sql: str) -> list[tuple[object, ...]]:
    await build_read_models(store, path)
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


async def _lease(client: InProcessClient, worker_id: str) -> dict[str, object]:
    task = await client.claim(worker_id)
    assert task is not None
    return {"task_id": task["task_id"], "worker_id": worker_id, "lease_epoch": task["lease_epoch"]}


async def test_a_worker_is_busy_while_it_holds_a_live_lease(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    workers = "SELECT worker_id, state, active_tasks, active_task_ids FROM workers ORDER BY 1"
    async with memory_service(store) as client:
        await client.running_run("r1")
        await client.worker("w1", capacity=2)
        await client.worker("w2")
        for task_id in ("t1", "t2", "t3"):
            await client.submit(task_id)
        first, second = await _lease(client, "w1"), await _lease(client, "w1")
        await client.ok("task.start", first)
        await client.ok("worker.heartbeat", {"worker_id": "w1"})  # still busy after it
        assert await _rows(store, tmp_path / "a.duckdb", workers) == [
            ("w1", "busy", 2, ["t1", "t2"]), ("w2", "idle", 0, [])]
        await client.ok("task.succeed", first)
        await client.ok("task.fail", second | {"error_class": "auth"})
        await _lease(client, "w2")
        assert await _rows(store, tmp_path / "b.duckdb", workers) == [
            ("w1", "idle", 0, []), ("w2", "busy", 1, ["t3"])]


async def test_a_shared_budget_spends_its_runs_usage(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    budgets = "SELECT state, spent_tokens, charges, exhausted_at IS NOT NULL FROM budgets"
    async with memory_service(store) as client:
        await client.ok("budget.create", {"budget_id": "team", "name": "t", "max_tokens": 1000})
        await client.running_run("a", budget_id="team")
        await client.running_run("b", budget_id="team")
        usage = {"model": "gpt-4o", "tokens_in": 300, "tokens_out": 100}
        await client.ok("usage.record", usage | {"run_id": "a"})
        assert await _rows(store, tmp_path / "a.duckdb", budgets) == [("active", 400, 1, False)]
        await client.ok("usage.record", usage | {"run_id": "b", "tokens_in": 500})
        await client.ok("usage.record", usage | {"run_id": "a"})
        assert await _rows(store, tmp_path / "b.duckdb", budgets) == [
            ("exhausted", 1400, 3, True)]
        await client.ok("budget.raise", {"budget_id": "team", "max_tokens": 5000})
        assert await _rows(store, tmp_path / "c.duckdb", budgets) == [("active", 1400, 3, False)]


async def test_resources_dead_letters_queues_and_limits_are_visible(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    async with memory_service(store) as client:
        await client.running_run("r1", max_concurrency=3)
        await client.ok("queue.configure", {"kind": "llm", "max_running": 5})
        await client.worker("w1", capacity=3)
        await client.submit("holder", resource="repo:main", priority=9, timeout_s=600)
        await client.submit("second", resource="repo:main", priority=5)
        await client.submit("third", resource="repo:main", priority=7)
        await client.submit("doomed", max_attempts=1, concurrency_key="k", max_concurrency=1)
        await _lease(client, "w1")
        doomed = await _lease(client, "w1")
        assert doomed["task_id"] == "doomed"
        await client.ok("task.fail", doomed | {"error_class": "auth", "message": "no key"})
        path = tmp_path / "r.duckdb"
        assert await _rows(store, path, "SELECT * FROM resources") == [
            ("repo:main", "holder", "w1", 2, ["third", "second"])]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT task_id, error_class, error_message, attempts "
                           "FROM dead_letters").fetchall() == [("doomed", "auth", "no key", 1)]
        assert con.execute("SELECT kind, max_running FROM queues").fetchall() == [("llm", 5)]
        assert con.execute("SELECT max_concurrency FROM runs").fetchall() == [(3,)]
        assert con.execute("SELECT concurrency_key, max_concurrency FROM tasks "
                           "WHERE task_id = 'doomed'").fetchall() == [("k", 1)]
        assert con.execute("SELECT count(*) FROM tasks WHERE task_id = 'holder' "
                           "AND attempt_deadline IS NOT NULL").fetchall() == [(1,)]


async def _team_budget_log() -> InMemoryEventStore:
    """A shared budget crossed, raised, crossed again and closed, with usage off it."""
    store = InMemoryEventStore()
    async with memory_service(store) as client:
        await client.ok("budget.create", {"budget_id": "team", "name": "t", "max_tokens": 1000,
                                          "max_cost_usd": 1})
        await client.running_run("a", budget_id="team")
        await client.running_run("b", budget_id="team")
        await client.running_run("loner")
        usage = {"model": "gpt-4o", "tokens_in": 300, "tokens_out": 100}
        for run_id in ("a", "loner", "b", "a", "b"):
            await client.ok("usage.record", usage | {"run_id": run_id})
        await client.ok("budget.raise", {"budget_id": "team", "max_tokens": 3000})
        for run_id in ("a", "b", "a", "loner", "b"):
            await client.ok("usage.record", usage | {"run_id": run_id})
        await client.ok("budget.close", {"budget_id": "team"})
        await client.ok("usage.record", usage | {"run_id": "a"})
    return store


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 1000])
async def test_a_budgets_charges_added_batch_by_batch_equal_a_recount_of_its_usage(
        tmp_path: Path, batch_size: int) -> None:
    store = await _team_budget_log()
    records = [r async for batch in store.read_all() for r in batch]
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    budget = ("SELECT state, spent_tokens, spent_cost_usd, charges, exhausted_at "
              "FROM budgets WHERE budget_id = 'team'")
    try:
        applier = BatchApplier(db)
        for start in range(0, len(records), batch_size):
            applier.apply(records[start:start + batch_size], records[-1].seq)
            added = db.con.execute(budget).fetchall()
            db.con.execute("BEGIN")  # the recount, seen and rolled back
            recount_budgets(db.con, ["team"])
            assert db.con.execute(budget).fetchall() == added, records[start].seq
            db.con.execute("ROLLBACK")
    finally:
        db.close()
    state, spent, _, charges, exhausted_at = added[0]
    assert (state, spent, charges) == ("closed", 3600, 9)  # the loner is on no budget
    assert exhausted_at is not None
