"""The result cache's read model: the same entries whatever the batches, across a restart.

While the table holds no entry, a batch without a keyed task is skipped without a query;
these check that the first keyed task, and an entry written before a restart, still
reach the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from projections.applier import BatchApplier
from projections.database import ReadModelDb
from services.store import InMemoryEventStore, RecordedEvent
from tests.support.service_client import InProcessClient, memory_service

_ENTRIES = ("SELECT task_id, cache_key, state, hits, tokens, tokens_saved, cost_saved_usd "
            "FROM cache_entries ORDER BY task_id")


async def _task(client: InProcessClient, run_id: str, task_id: str, tokens: int) -> None:
    await client.ok("task.submit", {"task_id": task_id, "run_id": run_id, "kind": "summarise",
                                    "payload": {"doc": task_id}})
    task = await client.claim("w1")
    assert task is not None
    assert task["task_id"] == task_id
    await client.ok("usage.record", {"run_id": run_id, "task_id": task_id, "model": "gpt-4o",
                                     "tokens_in": tokens, "tokens_out": tokens})
    await client.ok("task.succeed", {"task_id": task_id, "worker_id": "w1",
                                     "lease_epoch": task["lease_epoch"], "result": {"s": 1}})


async def _log() -> list[RecordedEvent]:
    """Unkeyed tasks first, then a keyed one stored and hit by a second submission."""
    store = InMemoryEventStore()
    async with memory_service(store) as client:
        await client.ok("worker.register", {"worker_id": "w1", "kinds": ["summarise"]})
        await client.running_run("plain")
        for index in range(3):
            await _task(client, "plain", f"p{index}", 100)
        await client.running_run("cached", cache_results=True)
        await _task(client, "cached", "c1", 1000)
        hit = await client.ok("task.submit", {"task_id": "c2", "run_id": "cached",
                                              "kind": "summarise", "payload": {"doc": "c1"}},
                              "cached")
        assert hit["events"] == ["TaskSatisfiedFromCache"]
    return [record async for batch in store.read_all() for record in batch]


def _apply(path: Path, records: list[RecordedEvent]) -> list[tuple[Any, ...]]:
    db = ReadModelDb.open_writer(path)
    try:
        applier = BatchApplier(db)
        for record in records:  # one event a batch: the keyed task lands on an empty table
            applier.apply([record], records[-1].seq)
        return db.con.execute(_ENTRIES).fetchall()
    finally:
        db.close()


async def test_entries_applied_an_event_at_a_time_equal_a_rebuild(tmp_path: Path) -> None:
    records = await _log()
    one_by_one = _apply(tmp_path / "live.duckdb", records)
    assert [(r[0], r[2], r[3]) for r in one_by_one] == [("c1", "stored", 1)]
    rebuilt = tmp_path / "rebuilt.duckdb"
    whole = ReadModelDb.open_writer(rebuilt)
    try:
        BatchApplier(whole).apply(records, records[-1].seq)
        assert whole.con.execute(_ENTRIES).fetchall() == one_by_one
    finally:
        whole.close()


async def test_an_entry_written_before_a_restart_is_found_after_it(tmp_path: Path) -> None:
    records = await _log()
    path = tmp_path / "rm.duckdb"
    stored_at = next(i for i, r in enumerate(records) if b'"TaskSucceeded"' in r.payload
                     and b'"c1"' in r.payload)
    _apply(path, records[:stored_at])  # the entry exists, still pending
    after = _apply(path, records[stored_at:])  # a new applier: it must ask the table
    assert [(r[0], r[2], r[3]) for r in after] == [("c1", "stored", 1)]
