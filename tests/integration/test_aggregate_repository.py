"""The aggregate repository against a real stream: caching, refreshes, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from services.command_service import AggregateRepository
from services.store import JetStreamEventStore
from tests.integration.test_event_store import make_event

pytestmark = pytest.mark.nats


async def test_concurrent_refreshes_fold_each_event_once(store: JetStreamEventStore) -> None:
    created = await store.append([make_event("r1", 1, "c1", "RunCreated", run_id="r1",
                                             name="n")], 0)
    repository = AggregateRepository(store)
    cached = await repository.load("run", "r1")
    await store.append([make_event("r1", 2, "c2", "RunStarted", run_id="r1")], created.last_seq)
    refreshed = await asyncio.gather(*(repository.refresh("run", "r1") for _ in range(8)))
    assert {(r.version, r.status) for r in refreshed} == {(2, "running")}
    assert cached.status == "pending"  # what in-flight commands hold is never changed


async def test_load_serves_the_cache_and_refresh_sees_other_writers(
        store: JetStreamEventStore) -> None:
    created = await store.append([make_event("r1", 1, "c1", "RunCreated", run_id="r1",
                                             name="n")], 0)
    repository = AggregateRepository(store)
    first = await repository.load("run", "r1")
    await store.append([make_event("r1", 2, "c2", "RunStarted", run_id="r1")], created.last_seq)
    assert (await repository.load("run", "r1")) is first
    assert (await repository.refresh("run", "r1")).status == "running"
    assert (await repository.load("run", "r1")).last_seq == 2
    assert set((await repository.load("run", "r1")).commands) == {"c1", "c2"}
