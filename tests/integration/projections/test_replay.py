"""Replay rebuilds what the live projector built; time travel builds the past; upcasters apply."""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest
from nats.aio.client import Client

from events import EventEnvelope, registry, utc_now
from events.catalog import EVENT_TYPES
from events.catalog.run import RunCreated
from events.codec import EventCodec
from projections import (
    BoundOutsideLog,
    ReadModelDb,
    ReadSide,
    ReplayRefused,
    SchemaMismatch,
    as_of_path,
    build_read_models,
    replay,
    run_sql_async,
)
from projections.replay_applier import apply_stream
from projections.replay_frames import encode_batch
from projections.runtime import Projector, ProjectorConfig
from services.store import InMemoryEventStore, JetStreamEventStore, RecordedEvent
from tests.support.log import append_events, make_event
from tests.support.nats_server import unique_prefix, unique_stream_name
from tests.support.read_side import EventLog, append_all, dump_tables

pytestmark = pytest.mark.nats

TABLES = ["runs", "tasks", "workers", "usage", "models", "model_prices", "transitions",
          "checkpoints", "projection_errors"]


def scalar(path: Path, sql: str) -> Any:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        con.close()


async def test_replay_equals_live(store: JetStreamEventStore, tmp_path: Path,
                                  history: EventLog, sql_prefix: str) -> None:
    live = tmp_path / "live.duckdb"
    async with ReadSide(store, live, ProjectorConfig(batch_size=5, linger_s=0.001),
                        subject_prefix=sql_prefix) as read_side:
        for envelope in history.envelopes:  # one append at a time: many small live batches
            last = await append_all(store, [envelope])
        await read_side.wait_for_seq(last, timeout_s=10)
    rebuilt = await replay(store, db_path=tmp_path / "replayed.duckdb")
    assert rebuilt.position == last
    assert dump_tables(live, TABLES) == dump_tables(rebuilt.path, TABLES)


async def test_time_travel_to_a_seq_and_to_a_time(store: JetStreamEventStore, db_path: Path,
                                                  history: EventLog) -> None:
    seqs = [await append_all(store, [e]) for e in history.envelopes]
    cut = next(i for i, e in enumerate(history.envelopes)
               if e.type == "RunStarted" and e.aggregate_id == "r2")
    by_seq = await replay(store, db_path=db_path, until_seq=seqs[cut])
    assert by_seq.path == as_of_path(db_path, until_seq=seqs[cut])
    moment = history.envelopes[cut].occurred_at + timedelta(milliseconds=500)
    by_time = await replay(store, db_path=db_path, until=moment)
    assert by_time.position == seqs[cut]
    assert not await asyncio.to_thread(db_path.exists)  # time travel leaves the live file be
    for path in (by_seq.path, by_time.path):
        assert scalar(path, "SELECT state FROM runs WHERE run_id = 'r2'") == "running"
        assert scalar(path, "SELECT count(*) FROM runs WHERE run_id = 'r3'") == 0
        assert scalar(path, "SELECT min(last_seq) FROM checkpoints") == seqs[cut]
    assert scalar(by_time.path, "SELECT value FROM read_model_info WHERE key = 'until'")
    assert dump_tables(by_seq.path, TABLES[:-2]) == dump_tables(by_time.path, TABLES[:-2])
    table = await run_sql_async("SELECT run_id, state FROM runs ORDER BY run_id",
                                db_path=by_seq.path, fmt="csv")
    assert table.splitlines() == ["run_id,state", "r1,succeeded", "r2,running"]


def old_run_created(run_id: str, title: str) -> EventEnvelope:
    return EventEnvelope(
        type="RunCreated", schema_version=2, event_id=uuid.uuid4().hex, aggregate="run",
        aggregate_id=run_id, version=1, occurred_at=utc_now(), command_id=uuid.uuid4().hex,
        to_state="pending", data={"run_id": run_id, "title": title},
    )


class _RunCreatedV3(RunCreated):
    """RunCreated whose v2 called its name ``title``."""

    schema_version: ClassVar[int] = 3


async def test_old_schema_events_are_upcast_on_replay(store: JetStreamEventStore,
                                                      db_path: Path) -> None:
    upcasters = registry.copy()  # the catalog's own, and this one

    @upcasters.register("RunCreated", 2)
    def _title_became_name(data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = data.pop("title")
        return data

    current = EventEnvelope(
        type="RunCreated", schema_version=3, event_id=uuid.uuid4().hex, aggregate="run",
        aggregate_id="new", version=1, occurred_at=utc_now(), command_id=uuid.uuid4().hex,
        to_state="pending", data={"run_id": "new", "name": "written today"},
    )
    await append_all(store, [old_run_created("old", "written long ago"), current])
    codec = EventCodec({**EVENT_TYPES, "RunCreated": _RunCreatedV3}, upcasters)
    result = await build_read_models(store, db_path, codec=codec)
    assert result.position == 2
    con = duckdb.connect(str(db_path), read_only=True)
    assert con.execute("SELECT run_id, name FROM runs ORDER BY 1").fetchall() == [
        ("new", "written today"), ("old", "written long ago")]
    assert con.execute("SELECT count(*) FROM projection_errors").fetchone() == (0,)
    con.close()


async def test_replay_refuses_to_swap_a_file_another_process_holds(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    await append_all(store, history.envelopes[:5])
    holder = ReadModelDb.open_writer(db_path)  # same process: DuckDB refuses a second open too
    try:
        with pytest.raises(ReplayRefused, match="held by a running runlog"):
            await build_read_models(store, db_path)
    finally:
        holder.close()
    assert not list(db_path.parent.glob("*.building-*"))


async def test_replay_while_running_is_done_by_the_owner(
    store: JetStreamEventStore, db_path: Path, history: EventLog, sql_prefix: str
) -> None:
    last = await append_all(store, history.envelopes)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix) as read_side:
        await read_side.wait_for_seq(last, timeout_s=10)
        result = await replay(store, db_path=db_path, subject_prefix=sql_prefix)
        assert result.position == last
        extra = await append_all(store, [history.emit("run", "r9", "RunCreated", "pending",
                                                      run_id="r9", name="after the swap")])
        await read_side.wait_for_seq(extra, timeout_s=10)
        answer = await read_side.query("SELECT count(*) FROM runs")
        assert answer.rows == [[4]]
        assert (await read_side.query("SELECT count(*) FROM usage")).rows == [[8]]
    assert scalar(db_path, "SELECT value FROM read_model_info WHERE key = 'built_by'") == "replay"


async def test_catch_up_stops_at_the_stream_head(store: JetStreamEventStore,
                                                 db_path: Path, history: EventLog) -> None:
    last = await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    projector = Projector(store, db, ProjectorConfig(batch_size=4))
    assert await projector.catch_up(until_seq=last + 100) == last
    assert await projector.catch_up() == last  # nothing new: returns at once
    db.close()


async def test_a_file_of_another_schema_version_is_rebuilt_at_start(
    store: JetStreamEventStore, db_path: Path, history: EventLog, sql_prefix: str
) -> None:
    last = await append_all(store, history.envelopes)
    ReadModelDb.open_writer(db_path).close()
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE read_model_info SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaMismatch, match="runlog replay"):
        ReadModelDb.open_writer(db_path)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix) as read_side:
        await read_side.wait_for_seq(last, timeout_s=10)
        assert (await read_side.query("SELECT count(*) FROM runs")).rows == [[3]]


@pytest.fixture
async def purgeable(nc: Client) -> AsyncIterator[JetStreamEventStore]:
    """A log whose stream allows purges and deletes (made by hand, as an old deployment's was)."""
    store = JetStreamEventStore(nc, stream=unique_stream_name(), subject_prefix=unique_prefix())
    await store.js.add_stream(name=store.stream, subjects=[f"{store.subject_prefix}.>"],
                              allow_direct=True)
    yield store
    await store.js.delete_stream(store.stream)


async def test_time_travel_outside_the_log_is_refused_before_anything_is_built(
    purgeable: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    store = purgeable
    with pytest.raises(BoundOutsideLog, match="holds no events"):
        await build_read_models(store, as_of_path(db_path, until_seq=1), until_seq=1)
    last = await append_all(store, history.envelopes)
    first_time, last_time = history.envelopes[0].occurred_at, history.envelopes[-1].occurred_at
    refusals = [
        ({"until_seq": last + 1}, rf"seq {last + 1} is past the last event .*\(seq {last}\)"),
        ({"until_seq": 0}, r"seq 0 is before the first event the log holds \(seq 1\)"),
        ({"until_seq": -5}, "before the first event"),
        ({"until": first_time - timedelta(seconds=1)}, "before the first event .*seq 1"),
        ({"until": datetime.now(UTC) + timedelta(hours=1)}, r"is in the future \(now is "),
    ]
    for bound, message in refusals:
        with pytest.raises(BoundOutsideLog, match=message):
            await replay(store, db_path=db_path, **bound)  # type: ignore[arg-type]
    assert list(db_path.parent.iterdir()) == []  # nothing written
    assert (await replay(store, db_path=db_path, until_seq=last)).position == last
    assert (await replay(store, db_path=db_path, until=last_time)).position == last
    later = await replay(store, db_path=db_path, until=last_time + timedelta(seconds=1))
    assert later.position == last  # after the last event: the state as of the last, said so
    assert later.note is not None
    assert f"the log's last event (seq {last}, " in later.note
    assert later.describe().endswith("this is the state as of that event")


async def test_after_a_purge_old_bounds_are_refused_and_nothing_hangs(
    purgeable: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    store = purgeable
    middle = await append_all(store, history.envelopes[:20])
    await store.js.purge_stream(store.stream, keep=5)  # seqs 16..20 are left
    with pytest.raises(BoundOutsideLog, match="before the first event the log holds "
                                              r"\(seq 16\); the events before it were deleted"):
        await asyncio.wait_for(replay(store, db_path=db_path, until_seq=10), 10)
    partial = await asyncio.wait_for(replay(store, db_path=db_path, until_seq=18), 10)
    assert partial.position == 18
    await store.js.delete_msg(store.stream, middle)  # the last message goes: the head stays
    assert (await asyncio.wait_for(build_read_models(store, db_path), 10)).position == 19
    await store.js.purge_stream(store.stream)
    rebuilt = await asyncio.wait_for(build_read_models(store, db_path), 10)
    assert rebuilt.position == 0  # an empty log builds empty read models, at once
    with pytest.raises(BoundOutsideLog, match="holds no events"):
        await replay(store, db_path=db_path, until_seq=middle)


def appliers_of(path: Path) -> list[int]:
    """Live ``projections.replay_applier`` processes building a file beside ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"projections.replay_applier" in cmdline and str(
                path.parent).encode() in cmdline:
            found.append(int(proc.name))
    return found


async def test_a_replay_runs_its_applier_in_another_process_and_a_cancel_ends_it(
    store: JetStreamEventStore, tmp_path: Path
) -> None:
    log = EventLog()
    for index in range(300):
        log.emit("run", f"r{index}", "RunCreated", "pending", run_id=f"r{index}",
                 name="n", labels={}, budget=None)
    last = await append_all(store, log.envelopes)
    result = await build_read_models(store, tmp_path / "whole.duckdb", processes=2)
    assert result.position == last
    assert scalar(result.path, "SELECT count(*) FROM runs") == 300
    assert appliers_of(tmp_path / "whole.duckdb") == []  # it exited once done

    building = asyncio.create_task(build_read_models(store, tmp_path / "cut" / "x.duckdb",
                                                     processes=2))
    deadline = asyncio.get_running_loop().time() + 30
    while not appliers_of(tmp_path / "cut" / "x.duckdb"):
        assert asyncio.get_running_loop().time() < deadline, "no applier process started"
        await asyncio.sleep(0.01)
    building.cancel()
    with pytest.raises(asyncio.CancelledError):
        await building
    assert appliers_of(tmp_path / "cut" / "x.duckdb") == []


@pytest.mark.parametrize("bound", ["seq", "time", "none"])
async def test_two_processes_build_the_same_read_models_as_one(
    store: JetStreamEventStore, tmp_path: Path, history: EventLog, bound: str
) -> None:
    await append_all(store, history.envelopes)
    middle = history.envelopes[len(history.envelopes) // 2]
    until_seq = len(history.envelopes) // 2 if bound == "seq" else None
    until = middle.occurred_at if bound == "time" else None
    built = [await build_read_models(store, tmp_path / f"p{n}.duckdb", until_seq=until_seq,
                                     until=until, processes=n) for n in (1, 2)]
    assert built[0].position == built[1].position
    tables = ["runs", "tasks", "workers", "usage", "transitions"]
    assert dump_tables(built[0].path, tables) == dump_tables(built[1].path, tables)
    info = [dict(duckdb.connect(str(b.path), read_only=True).execute(
        "SELECT key, value FROM read_model_info WHERE key <> 'built_at'").fetchall())
        for b in built]
    assert info[0] == info[1]  # the applier notes the build and its bound as one process does
    assert info[1]["position"] == str(built[1].position)
    assert info[1].get("until_seq") == (str(until_seq) if until_seq is not None else None)


@pytest.mark.parametrize("idle", [0.0, 2.0])
async def test_an_applier_started_before_the_cpus_are_sampled_is_stopped_if_none_is_idle(
    store: JetStreamEventStore, tmp_path: Path, history: EventLog,
    monkeypatch: pytest.MonkeyPatch, idle: float
) -> None:
    replay_module = importlib.import_module("projections.replay")
    sampled_beside: list[int | None] = []

    async def idle_cpus(sample_s: float = 0.2, beside: int | None = None) -> float:
        sampled_beside.append(beside)
        return idle

    monkeypatch.setattr(replay_module, "TWO_PROCESSES_FROM", 1)
    monkeypatch.setattr(replay_module, "idle_cpus", idle_cpus)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    last = await append_all(store, history.envelopes)
    dest = tmp_path / "chosen" / "runlog.duckdb"
    result = await build_read_models(store, dest)
    assert result.position == last
    assert len(sampled_beside) == 1
    assert sampled_beside[0] is not None  # the pid of the applier, already started
    assert appliers_of(dest) == []
    assert sorted(p.name for p in dest.parent.iterdir()) == ["runlog.duckdb"]  # no leftovers
    one = await build_read_models(store, tmp_path / "one.duckdb", processes=1)
    tables = ["runs", "tasks", "workers", "usage", "transitions"]
    assert dump_tables(dest, tables) == dump_tables(one.path, tables)


async def test_a_failed_build_leaves_no_half_built_file(
    store: JetStreamEventStore, tmp_path: Path, history: EventLog,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    await append_all(store, history.envelopes)
    reader = importlib.import_module("projections.replay_reader")

    async def broken_feed(*args: object, **kwargs: object) -> object:
        raise ConnectionError("the feed went away")

    monkeypatch.setattr(reader, "open_feed", broken_feed)
    dest = tmp_path / "failed" / "runlog.duckdb"
    dest.parent.mkdir()
    with pytest.raises(ConnectionError, match="the feed went away"):
        await build_read_models(store, dest, processes=2)
    assert list(dest.parent.iterdir()) == []
    assert appliers_of(dest) == []


async def test_an_event_with_an_odd_traceparent_is_built_in_two_processes_as_in_one(
    tmp_path: Path
) -> None:
    store = InMemoryEventStore()
    for n in range(40):
        # One writer put a non-ASCII traceparent on one event: the frames once refused it,
        # and the applier took that for the end of its input and the replay for a success.
        headers = {"traceparent": "00-\u00e9-x-01"} if n == 20 else None
        await append_events(store, [make_event(f"r{n}", 1, f"c{n}", "RunCreated", name="x")],
                            0, headers=headers)
    built = [await asyncio.wait_for(build_read_models(store, tmp_path / f"p{n}.duckdb",
                                                      processes=n), 60) for n in (1, 2)]
    assert [b.position for b in built] == [40, 40]
    assert [scalar(b.path, "SELECT count(*) FROM runs") for b in built] == [40, 40]


def test_an_applier_whose_input_stops_short_of_the_end_frame_says_so_after_what_came(
    tmp_path: Path
) -> None:
    whole = [RecordedEvent(1, "runlog.evt.run.r1", make_event(
        "r1", 1, "c1", "RunCreated", name="x").to_json(), {})]
    cut = encode_batch(whole, 2) + encode_batch(whole, 2)[:-1]  # the second frame cut short
    db = ReadModelDb.open_writer(tmp_path / "cut.duckdb")
    reports = io.StringIO()
    try:
        with pytest.raises(EOFError):
            apply_stream(db, io.BytesIO(cut), reports)
        runs = db.con.execute("SELECT count(*) FROM runs").fetchone()
    finally:
        db.close()
    assert reports.getvalue() == "P 1\n"  # the whole frame was applied and reported
    assert runs == (1,)
