"""One codec for every reader: an upcaster registered once reaches the claim index, the
policies, the caches and the read models alike."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from events import event_subject
from events.catalog import EVENT_TYPES
from events.catalog.task import TaskSubmitted
from events.catalog.worker import WorkerRegistered
from events.codec import CODEC, EventCodec
from events.versions import registry
from projections import build_read_models
from services.settings import Settings
from services.store import InMemoryEventStore, OutgoingMessage
from tests.support.nats_server import wait_until
from tests.support.read_side import EventLog
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
    upcasters = registry.copy()  # the catalog's own upcasters, and these

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


def _float_money_log() -> EventLog:
    """A log as version 1 wrote it: prices, bounds and costs as JSON numbers (floats)."""
    log = EventLog()
    log.emit("model", "m1", "ModelRegistered", "active", model="m1", provider="acme")
    log.emit("model", "m1", "ModelPriceSet", "active", model="m1", provider="acme",
             input_usd_per_mtok=0.1, output_usd_per_mtok=0.3,
             effective_from="2024-01-01T00:00:00+00:00")
    log.emit("budget", "b1", "BudgetCreated", "active", budget_id="b1", name="team",
             max_cost_usd=0.2, max_tokens=None)
    log.emit("budget", "b1", "BudgetRaised", "active", budget_id="b1", max_cost_usd=0.3,
             max_tokens=None)
    log.emit("run", "r1", "RunCreated", "pending", run_id="r1", name="r1", labels={},
             budget={"max_tokens": None, "max_cost_usd": 0.05}, budget_id="b1")
    log.emit("run", "r1", "RunStarted", "running", run_id="r1")
    for _ in range(97):
        log.emit("run", "r1", "UsageRecorded", "running", run_id="r1", model="m1",
                 provider="acme", tokens_in=1000, tokens_out=3000, outcome="ok",
                 input_usd_per_mtok=0.1, output_usd_per_mtok=0.3, cost_usd=0.001,
                 price_effective_from="2024-01-01T00:00:00+00:00", budget_id="b1")
    # Version 1 summed floats into this one: the noise must not survive the upcast.
    log.emit("run", "r1", "RunBudgetExceeded", "running", run_id="r1", tokens=388_000,
             cost_usd=sum([0.001] * 97), max_tokens=None, max_cost_usd=0.05)
    return log


async def _store_of(log: EventLog) -> InMemoryEventStore:
    store = InMemoryEventStore()
    for envelope in log.envelopes:
        subject = event_subject(envelope.aggregate, envelope.aggregate_id, store.subject_prefix)
        await store.append([OutgoingMessage(subject, envelope.to_json(),
                                            f"{envelope.command_id}:0", {})])
    return store


async def test_float_money_of_version_1_replays_exactly(tmp_path: Path) -> None:
    assert sum([0.001] * 97) != 0.097  # what summing the stored floats would give
    store = await _store_of(_float_money_log())
    db_path = tmp_path / "read-models.duckdb"
    await build_read_models(store, db_path)
    with duckdb.connect(str(db_path), read_only=True) as con:
        run = con.execute("SELECT cost_usd, budget_max_cost_usd FROM runs").fetchone()
        budget = con.execute("SELECT spent_cost_usd, max_cost_usd FROM budgets").fetchone()
        usage = con.execute("SELECT sum(cost_usd), min(input_usd_per_mtok) FROM usage").fetchone()
        kind = con.execute("SELECT typeof(cost_usd) FROM runs").fetchone()
    assert run == (Decimal("0.097"), Decimal("0.05"))
    assert budget == (Decimal("0.097"), Decimal("0.3"))
    assert usage == (Decimal("0.097"), Decimal("0.1"))
    assert kind == ("DECIMAL(38,12)",)

    async with memory_service(store) as service:
        state = await service.state_of("run", "r1")
        assert (state.cost_usd, state.over_budget) == (Decimal("0.097"), True)
        assert (await service.state_of("budget", "b1")).max_cost_usd == Decimal("0.3")
        (stored,) = [e for e in await service.events_of("run", "r1")
                     if e["type"] == "RunBudgetExceeded"]
        assert (stored["schema_version"], stored["cost_usd"]) == (1, sum([0.001] * 97))
        exceeded = CODEC.decode(json.dumps(stored).encode())
        assert (exceeded.schema_version, exceeded.data["cost_usd"]) == (2, "0.097")
        # The float price of version 1 prices new usage exactly: 1000 x 0.1 + 3000 x 0.3.
        await service.ok("usage.record", {"run_id": "r1", "model": "m1", "tokens_in": 1000,
                                          "tokens_out": 3000})
        assert (await service.events_of("run", "r1"))[-1]["cost_usd"] == "0.001"
        assert (await service.state_of("run", "r1")).cost_usd == Decimal("0.098")
