"""An event that cannot be applied lands in projection_errors; the rest of the log still applies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from projections import ProjectionHalted, ReadModelDb, ReadSide
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore
from tests.support.nats_server import wait_until
from tests.support.read_side import EventLog, append_all, append_raw

T = TypeVar("T")

pytestmark = pytest.mark.nats


def rows(db: ReadModelDb, sql: str) -> list[tuple[object, ...]]:
    return db.con.execute(sql).fetchall()


async def poisoned_log(store: JetStreamEventStore) -> tuple[EventLog, dict[str, int]]:
    """Good runs and tasks around three kinds of poison; returns the poison seqs."""
    log = EventLog()
    log.emit("run", "r1", "RunCreated", "pending", run_id="r1", name="one")
    good = log.emit("task", "t1", "TaskSubmitted", "queued", task_id="t1", run_id="r1",
                    kind="llm", priority=5, max_attempts=3, submitted_at=log.now())
    await append_all(store, log.envelopes)
    seqs = {"not_json": await append_raw(store, good, b"{not json")}
    bad_type = log.emit("task", "t2", "TaskSubmitted", "queued", task_id="t2", run_id="r1",
                        kind="llm", priority="high", max_attempts=3, submitted_at=log.now())
    seqs["bad_type"] = await append_all(store, [bad_type])
    # Folded into cached rows before the batch fails: must not count twice after the retry.
    usage = log.emit("run", "r1", "UsageRecorded", "pending", run_id="r1", model="m",
                     provider="p", tokens_in=10, tokens_out=5, input_usd_per_mtok=1.0,
                     output_usd_per_mtok=1.0, price_effective_from=log.now(), cost_usd=0.5)
    await append_all(store, [usage])
    # Passes every Python check; only DuckDB's cast refuses it, failing the whole batch.
    bad_time = log.emit("task", "t3", "TaskSubmitted", "queued", task_id="t3", run_id="r1",
                        kind="llm", priority=1, max_attempts=3, submitted_at="yesterday")
    seqs["bad_time"] = await append_all(store, [bad_time])
    after = [log.emit("task", "t4", "TaskSubmitted", "queued", task_id="t4", run_id="r1",
                      kind="llm", priority=2, max_attempts=3, submitted_at=log.now()),
             log.emit("run", "r1", "RunStarted", "running", run_id="r1")]
    await append_all(store, after)
    return log, seqs


async def test_poison_events_are_recorded_and_skipped(
    store: JetStreamEventStore, db_path: Path
) -> None:
    _, poison = await poisoned_log(store)
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db, ProjectorConfig(batch_size=1000))
    assert await projector.catch_up() == await store.last_seq()
    errors = rows(db, "SELECT projection, seq, event_type FROM projection_errors ORDER BY seq")
    assert errors == [("all", poison["not_json"], None),
                      ("tasks", poison["bad_type"], "TaskSubmitted"),
                      ("tasks", poison["bad_time"], "TaskSubmitted")]
    assert rows(db, "SELECT task_id FROM tasks ORDER BY 1") == [("t1",), ("t4",)]
    assert rows(db, "SELECT state, tasks_total, tokens_in, usage_count FROM runs") == [
        ("running", 2, 10, 1)]
    assert rows(db, "SELECT count(*) FROM usage") == [(1,)]
    # Other projections still apply the events only the tasks projection refused.
    assert rows(db, "SELECT count(*) FROM transitions WHERE aggregate_id IN ('t2', 't3')") == [
        (2,)]
    health = rows(db, "SELECT name, value FROM health WHERE component = 'projection_errors' "
                      "ORDER BY name")
    assert health == [("all", 1.0), ("tasks", 2.0)]
    db.close()


async def test_strict_mode_halts_before_the_poison_event(
    store: JetStreamEventStore, db_path: Path
) -> None:
    _, poison = await poisoned_log(store)
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db, ProjectorConfig(batch_size=1, max_batch_size=1, strict=True))
    with pytest.raises(ProjectionHalted, match=f"seq {poison['not_json']}"):
        await projector.catch_up()
    assert projector.position == poison["not_json"] - 1
    assert rows(db, "SELECT count(*) FROM projection_errors") == [(0,)]
    assert rows(db, "SELECT min(last_seq) FROM checkpoints") == [(poison["not_json"] - 1,)]
    db.close()


async def test_strict_mode_halts_on_a_database_refusal_too(
    store: JetStreamEventStore, db_path: Path
) -> None:
    log = EventLog()
    bad_time = log.emit("task", "t3", "TaskSubmitted", "queued", task_id="t3", run_id="r1",
                        kind="llm", priority=1, max_attempts=3, submitted_at="yesterday")
    seq = await append_all(store, [bad_time])
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db, ProjectorConfig(strict=True))
    with pytest.raises(ProjectionHalted, match="tasks"):
        await projector.catch_up()
    assert projector.position == seq - 1
    db.close()


async def test_a_strict_read_side_reports_the_halt(
    store: JetStreamEventStore, db_path: Path, sql_prefix: str
) -> None:
    _, poison = await poisoned_log(store)
    async with ReadSide(store, db_path, ProjectorConfig(strict=True),
                        subject_prefix=sql_prefix) as read_side:
        await wait_until(_async(lambda: read_side.halted), lambda halted: halted is not None)
        with pytest.raises(ProjectionHalted, match=f"seq {poison['not_json']}"):
            await read_side.wait_for_seq(poison["not_json"], timeout_s=1)
        # Still serving reads; the halted batch (the poison's) was rolled back whole.
        answer = await read_side.query("SELECT count(*) FROM runs")
        assert answer.rows == [[0]]


def _async(probe: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def call() -> T:
        return probe()

    return call
