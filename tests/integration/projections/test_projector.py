"""The projector against a real nats-server and a real DuckDB file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from projections import ReadModelDb, ReadSide
from projections.errors import WaitTimeout
from projections.runtime import Projector, ProjectorConfig, wait_for_checkpoint
from projections.telemetry import ProjectorTelemetry
from services.store import JetStreamEventStore, JetStreamFeed, RecordedEvent
from tests.support.read_side import EventLog, append_all, dump_tables

pytestmark = pytest.mark.nats

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def rows(db: ReadModelDb, sql: str) -> list[tuple[object, ...]]:
    return db.con.execute(sql).fetchall()


async def test_runs_tasks_workers_usage_follow_the_log(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    last = await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db)
    assert await projector.catch_up() == last
    assert rows(db, "SELECT run_id, state, tokens_in, tokens_out, usage_count, tasks_total, "
                    "task_counts['succeeded'] FROM runs ORDER BY run_id") == [
        ("r1", "succeeded", 400, 200, 4, 2, 2),
        ("r2", "succeeded", 300, 150, 3, 3, 3),
        ("r3", "failed", 100, 50, 1, 1, 1),
    ]
    assert rows(db, "SELECT count(*), sum(cost_usd) FROM usage")[0][0] == 8
    assert rows(db, "SELECT worker_id, state, active_tasks FROM workers") == [("w1", "idle", 0)]
    assert rows(db, "SELECT count(*) FROM transitions") == [(len(history.envelopes),)]
    db.close()


async def test_a_whole_task_lifecycle_in_one_batch_folds_in_order(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    await Projector(store, db, ProjectorConfig(batch_size=10_000)).catch_up()
    task = rows(db, "SELECT state, attempts, worker_id, lease_epoch, started_at IS NOT NULL, "
                    "ended_at >= started_at, version FROM tasks WHERE task_id = 'r1-t0'")
    assert task == [("succeeded", 1, "w1", 1, True, True, 4)]
    db.close()


async def test_small_batches_give_the_same_tables_as_one_big_batch(
    store: JetStreamEventStore, tmp_path: Path, history: EventLog
) -> None:
    await append_all(store, history.envelopes)
    dumps = []
    for size in (1, 7, 10_000):
        db = ReadModelDb.open_writer(tmp_path / f"b{size}.duckdb")
        await Projector(store, db, ProjectorConfig(batch_size=size, linger_s=0.0)).catch_up()
        db.close()
        dumps.append(dump_tables(tmp_path / f"b{size}.duckdb", ["runs", "tasks", "workers",
                                                                 "usage", "transitions"]))
    assert dumps[0] == dumps[1] == dumps[2]


async def test_redelivered_events_count_once(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db)
    await projector.catch_up()
    everything = "SELECT * EXCLUDE (created_at, updated_at, started_at, ended_at) FROM runs"
    before = rows(db, everything)
    records = [r for batch in [b async for b in store.read_all()] for r in batch]
    result = projector.applier.apply(records, records[-1].seq)  # the whole log again
    assert result.events == 0
    assert rows(db, everything) == before
    assert rows(db, "SELECT count(*) FROM usage") == [(8,)]
    db.close()


async def test_transitions_keep_the_trace_id_and_batches_link_to_writers_and_join_their_trace(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    await append_all(store, history.envelopes[:5], headers={"traceparent": TRACEPARENT})
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry = ProjectorTelemetry("test", tracer_provider, MeterProvider([reader]))
    db = ReadModelDb.open_writer(db_path)
    await Projector(store, db, telemetry=telemetry).catch_up()
    assert rows(db, "SELECT DISTINCT trace_id, span_id FROM transitions") == [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")]
    spans = [s for s in exporter.get_finished_spans() if s.name == "runlog.projector.batch"]
    links = {format(link.context.trace_id, "032x") for s in spans for link in s.links}
    assert links == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    # The writer's own trace shows where its events were projected: a child of its span.
    [applied] = [s for s in exporter.get_finished_spans() if s.name == "runlog.projector.apply"]
    assert applied.parent is not None
    assert applied.context is not None
    assert format(applied.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(applied.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert [link.context.span_id for link in applied.links] == [
        s.context.span_id for s in spans if s.context is not None and s.links]
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert {"runlog.projector.batch.size", "runlog.projector.batch.duration",
            "runlog.projector.lag"} <= names
    db.close()


async def test_read_side_reads_its_writes_and_reports_health(
    store: JetStreamEventStore, db_path: Path, history: EventLog, sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, ProjectorConfig(linger_s=0.005),
                        subject_prefix=sql_prefix) as read_side:
        first = await append_all(store, history.envelopes[:10])
        assert await read_side.wait_for_seq(first, timeout_s=10) >= first
        last = await append_all(store, history.envelopes[10:])
        await read_side.wait_for_seq(last, timeout_s=10)
        result = await read_side.query("SELECT count(*) AS n FROM runs WHERE state <> 'pending'")
        assert result.rows == [[3]]
        assert result.position == last
        health = await read_side.query(
            "SELECT component, status, value FROM health WHERE component = 'projection'")
        assert {tuple(r) for r in health.rows} == {("projection", "ok", 0.0)}
        daily = await read_side.query("SELECT calls, tokens_in FROM usage_daily")
        assert daily.rows == [[8, 800]]
        await asyncio.wait_for(wait_for_checkpoint(read_side._require_db(), last, 5.0), 10)


async def test_events_a_feed_loses_are_read_again(
    store: JetStreamEventStore, db_path: Path, history: EventLog,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    last = await append_all(store, history.envelopes)
    lost: list[int] = []
    read = JetStreamFeed.next_batch

    async def lossy(feed: JetStreamFeed, max_size: int, linger_s: float) -> list[RecordedEvent]:
        batch = await read(feed, max_size, linger_s)
        if not lost and len(batch) > 3:
            lost.append(batch.pop(2).seq)  # what a client dropping a message looks like
        return batch

    monkeypatch.setattr(JetStreamFeed, "next_batch", lossy)
    db = ReadModelDb.open_writer(db_path)
    assert await Projector(store, db, ProjectorConfig(batch_size=10)).catch_up() == last
    assert lost
    assert rows(db, "SELECT count(*) FROM transitions") == [(len(history.envelopes),)]
    assert rows(db, "SELECT count(*) FROM usage") == [(8,)]
    db.close()


async def test_a_caught_up_projector_applies_a_new_event_at_once_whatever_its_linger(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    db = ReadModelDb.open_writer(db_path)
    # Lingering is for a projector that is behind: a fresh event must not wait a minute.
    projector = Projector(store, db, ProjectorConfig(linger_s=60.0))
    running = asyncio.create_task(projector.run())
    try:
        for envelope in history.envelopes[:3]:
            seq = await append_all(store, [envelope])
            assert await projector.wait_for_seq(seq, timeout_s=10) == seq
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        db.close()


async def test_waits_for_a_seq_are_woken_by_the_commit_that_reaches_it_and_forget_a_timeout(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db)
    running = asyncio.create_task(projector.run())
    try:
        first = await append_all(store, history.envelopes[:2])
        waits = [asyncio.create_task(projector.wait_for_seq(first + n, timeout_s=10))
                 for n in (3, 1, 2)]
        late = asyncio.create_task(projector.wait_for_seq(first + 1000, timeout_s=0.2))
        cancelled = asyncio.create_task(projector.wait_for_seq(first + 2000, timeout_s=10))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        last = await append_all(store, history.envelopes[2:5])
        assert last == first + 3
        reached = await asyncio.gather(*waits)
        assert all(position >= first + n for position, n in zip(reached, (3, 1, 2), strict=True))
        assert projector.position == last
        with pytest.raises(WaitTimeout, match=f"not {first + 1000}"):
            await late
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert projector._waiters == []  # nothing left behind by the timeout or the cancel
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        db.close()


async def test_a_live_projector_counts_each_events_time_from_the_log_to_sql(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db)
    await append_all(store, history.envelopes[:3])
    await projector.catch_up()
    assert projector.telemetry.freshness.count == 0  # a catch-up's events are just old
    running = asyncio.create_task(projector.run())
    try:
        last = await append_all(store, history.envelopes[3:8])
        await projector.wait_for_seq(last, timeout_s=10)
        freshness = projector.telemetry.freshness
        assert freshness.count == 5
        slowest = freshness.quantile(1.0)
        assert slowest is not None
        assert 0 < slowest < 10  # stored by the server, committed moments later
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        db.close()


async def test_a_projector_behind_takes_batches_that_grow_with_its_lag(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    last = await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    positions: list[int] = []
    projector = Projector(store, db, ProjectorConfig(batch_size=2, max_batch_size=8,
                                                     linger_s=0.5))
    await projector.catch_up(progress=lambda position, _head: positions.append(position))
    db.close()
    sizes = [b - a for a, b in zip([0, *positions], positions, strict=False)]
    assert positions[-1] == last
    assert max(sizes) == 8  # far behind: four times the caught-up size
    assert all(size <= 8 for size in sizes)
