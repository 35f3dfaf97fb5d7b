"""One codec for every reader: an upcaster registered once reaches the claim index, the
policies, the caches and the read models alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from events.catalog import EVENT_TYPES
from events.catalog.task import TaskSubmitted
from events.catalog.worker import WorkerRegistered
from events.codec import EventCodec
from events.versions import UpcasterRegistry
from projections import build_read_models
from services.settings import Settings
from services.store import InMemoryEventStore
from tests.support.nats_server import wait_until
from tests.support.service_client import memory_service

SHIFT = timedelta(hours=3)


class _TaskSubmittedV2(TaskSubmitted):
    """Version 2 turned the priority scale around (9 was the least urgent in version 1)."""

    schema_version: ClassVar[int] = 2


class _WorkerRegisteredV2(WorkerRegistered):
    """Version 2 records registrations in UTC; version 1 wrote local time, three hours ahead."""

    schema_version: ClassVar[int] = 2


# The new versions are stored under the same type names as the classes they replace.
_TaskSubmittedV2.__name__ = "TaskSubmitted"
_WorkerRegisteredV2.__name__ = "WorkerRegistered"


def _codec_v2() -> EventCodec:
    upcasters = UpcasterRegistry()

    @upcasters.register("TaskSubmitted", 1)
    def _invert_priority(data: dict[str, Any]) -> dict[str, Any]:
        data["priority"] = 9 - data["priority"]
        return data

    @upcasters.register("WorkerRegistered", 1)
    def _to_utc(data: dict[str, Any]) -> dict[str, Any]:
        data["at"] = (datetime.fromisoformat(data["at"]) - SHIFT).isoformat()
        return data

    return EventCodec({**EVENT_TYPES, "TaskSubmitted": _TaskSubmittedV2,
                       "WorkerRegistered": _WorkerRegisteredV2}, upcasters)


async def test_the_claim_index_policies_and_read_models_see_version_2(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    async with memory_service(store) as written_by_v1:
        await written_by_v1.running_run("r1")
        await written_by_v1.submit("urgent-in-v1", priority=8)
        await written_by_v1.submit("idle-in-v1", priority=1)
        await written_by_v1.worker("w1", capacity=2)

    settings = Settings(data_dir=tmp_path, worker_timeout_s=3600)
    async with memory_service(store, settings, _codec_v2()) as v2:
        # The claim index: v2's priorities, so the task v1 called idle is now the urgent one.
        first = await v2.claim("w1")
        assert first is not None
        assert (first["task_id"], first["priority"]) == ("idle-in-v1", 8)
        # The policies: v2's registration time is three hours back, past the worker timeout.
        lost = await wait_until(lambda: v2.types_of("worker", "w1"),
                                lambda types: "WorkerLost" in types)
        assert lost == ["WorkerRegistered", "WorkerLost"]

    db_path = tmp_path / "read-models.duckdb"
    await build_read_models(store, db_path, codec=_codec_v2())
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.execute("SELECT task_id, priority FROM tasks ORDER BY task_id").fetchall()
    assert rows == [("idle-in-v1", 8), ("urgent-in-v1", 1)]
