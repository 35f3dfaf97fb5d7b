"""SQL cannot hurt the service: per-client turns, a bounded queue, capped time, capped memory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import nats
import pytest
from nats.aio.client import Client

from projections import (
    DatabaseBusy,
    QueryError,
    QueryInterrupted,
    QueryTimeout,
    ReadModelDb,
    ReadSide,
    SqlLimits,
    execute_query,
    export_async,
    run_sql_async,
    snapshot,
)
from projections.models import default_projections
from projections.query import QueryWatch
from projections.runtime import Projector, ProjectorConfig
from projections.schema import all_tables
from projections.snapshot import export_snapshot
from services.store import JetStreamEventStore
from tests.support.nats_server import wait_until
from tests.support.read_side import EventLog, append_all

pytestmark = pytest.mark.nats

SLOW = "SELECT sleep_ms(60000) AS slept"
TINY = SqlLimits(memory_limit="64MB", temp_limit="0KiB")


async def ask(nc: Client, prefix: str, sql: str, **fields: Any) -> dict[str, Any]:
    """One request as any NATS client sends it; returns the decoded reply."""
    body = json.dumps({"sql": sql, **fields}).encode()
    reply: dict[str, Any] = json.loads((await nc.request(f"{prefix}.query", body, 90)).data)
    return reply


async def test_a_slow_client_waits_its_turn_and_another_client_is_answered(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    limits = SqlLimits(workers=4, per_client=2, queue=4, max_timeout_s=120)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix, limits=limits) as read_side:
        await read_side.wait_for_seq(await append_all(store, history.envelopes))
        greedy = await nats.connect(nats_url)
        try:
            slow = [asyncio.create_task(ask(greedy, sql_prefix, SLOW, timeout_s=100))
                    for _ in range(4)]
            queue = read_side.sql.queue
            await wait_until(lambda: current((queue.running, queue.waiting)),
                             lambda load: load == (2, 2))
            refused = await ask(greedy, sql_prefix, SLOW)  # its share of the queue is full
            assert refused["error"]["code"] == "unavailable", refused
            assert "too many queries waiting" in refused["error"]["message"]
            answer = await run_sql_async("SELECT count(*) AS n FROM runs", db_path=db_path,
                                         nats_url=nats_url, subject_prefix=sql_prefix,
                                         fmt="csv")
            assert answer == "n\n3"
            assert not any(task.done() for task in slow)  # answered while the slow ones ran
        finally:
            await read_side.stop()  # interrupts the sleepers, refuses the waiting ones
            replies = await asyncio.gather(*slow)
            await greedy.close()
    codes = sorted(reply["error"]["code"] for reply in replies)
    assert codes == ["query_interrupted", "query_interrupted", "unavailable", "unavailable"]
    assert all("stopping" in reply["error"]["message"] for reply in replies)


async def current(value: Any) -> Any:
    """A value as an awaitable probe for ``wait_until``."""
    return value


async def test_timeouts_are_capped_for_the_service_and_for_local_opens(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    limits = SqlLimits(max_timeout_s=0.3)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix, limits=limits) as read_side:
        await read_side.wait_for_seq(await append_all(store, history.envelopes))
        with pytest.raises(QueryTimeout, match=r"after 0\.3 s"):
            await run_sql_async(SLOW, db_path=db_path, nats_url=nats_url, timeout_s=1000,
                                subject_prefix=sql_prefix)
    with pytest.raises(QueryTimeout, match=r"after 0\.3 s"):
        await run_sql_async(SLOW, db_path=db_path, timeout_s=1000, limits=limits)


async def test_memory_and_temp_space_are_capped_and_the_projector_goes_on(
    store: JetStreamEventStore, db_path: Path, history: EventLog, sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, subject_prefix=sql_prefix, limits=TINY) as read_side:
        settings = await read_side.query("SELECT current_setting('memory_limit'), "
                                         "current_setting('max_temp_directory_size')")
        assert settings.rows == [["61.0 MiB", "0 bytes"]]
        with pytest.raises(QueryError, match="needs more memory than the read models may use"):
            await read_side.query("SELECT length(string_agg(n::VARCHAR, ',')) "
                                  "FROM range(50000000) r(n)", timeout_s=60)
        await read_side.wait_for_seq(await append_all(store, history.envelopes))
        assert (await read_side.query("SELECT count(*) FROM runs")).rows == [[3]]
        assert read_side.halted is None
    reader = ReadModelDb.open_reader(db_path, TINY)  # a local open has the same caps
    try:
        assert execute_query(reader, "SELECT current_setting('memory_limit')").rows == [
            ["61.0 MiB"]]
    finally:
        reader.close()


async def test_a_batch_short_of_memory_waits_for_the_queries_to_give_it_back(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    db = ReadModelDb.open_writer(db_path, limits=TINY)
    projector = Projector(store, db, ProjectorConfig(batch_size=1000))
    hogs = fill_memory(db)
    strains: list[int] = []

    def give_back() -> int:
        strains.append(len(hogs))
        for hog in hogs:
            hog.close()
        hogs.clear()
        return strains[-1]

    projector.on_strain = give_back
    try:
        last = await append_all(store, history.envelopes)
        assert await asyncio.wait_for(projector.catch_up(), 30) == last
        assert strains  # the batch did run short, and was retried
        assert strains[0] > 0
        assert db.con.execute("SELECT count(*) FROM runs").fetchall() == [(3,)]
        assert db.con.execute("SELECT count(*) FROM projection_errors").fetchall() == [(0,)]
    finally:
        db.close()


def fill_memory(db: ReadModelDb) -> list[duckdb.DuckDBPyConnection]:
    """Cursors each holding an unread result, until the database has no memory left."""
    hogs = []
    for size in (500_000, 50_000, 5_000, 500):
        while True:
            hog = db.cursor()
            try:
                hog.execute(f"SELECT list(n) FROM range({size}) r(n)")
            except duckdb.OutOfMemoryException:
                hog.close()
                break
            hogs.append(hog)
    return hogs


def test_a_writer_names_a_reader_that_will_not_let_go(tmp_path: Path) -> None:
    path = tmp_path / "runlog.duckdb"
    ReadModelDb.open_writer(path).close()
    other = subprocess.Popen(  # a DuckDB client that is not runlog: it ignores the marker
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('open', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        assert other.stdout.readline() == "open\n"
        with pytest.raises(DatabaseBusy, match=rf"open in another process \(PID {other.pid}, "
                                               r"python.*\) and it did not close within 0\.2 s"):
            ReadModelDb.open_writer(path, wait_s=0.2)
        assert not path.with_name("runlog.duckdb.writer-waiting").exists()
    finally:
        other.kill()
        other.wait()


async def test_exports_take_their_turn_and_obey_the_time_limit(
    store: JetStreamEventStore, db_path: Path, history: EventLog, sql_prefix: str
) -> None:
    limits = SqlLimits(workers=2, per_client=1, queue=4, max_timeout_s=120)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix, limits=limits) as read_side:
        await read_side.wait_for_seq(await append_all(store, history.envelopes))
        slow = asyncio.create_task(read_side.query(SLOW, timeout_s=100, client="greedy"))
        queue = read_side.sql.queue
        await wait_until(lambda: current(queue.load("greedy")), lambda load: load == (1, 0))
        waiting = asyncio.create_task(read_side.export("mine", client="greedy"))
        await wait_until(lambda: current(queue.load("greedy")), lambda load: load == (1, 1))
        other = await read_side.export("theirs", client="patient")  # a free worker, its turn
        assert (other / "runs.parquet").exists()
        assert not waiting.done()
        await read_side.stop()
        outcomes = await asyncio.gather(slow, waiting, return_exceptions=True)
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "QueryInterrupted", "QueryUnavailable"]
    assert not (db_path.parent / "snapshots" / "mine").exists()
    hurried = SqlLimits(max_timeout_s=0.001)
    with pytest.raises(QueryTimeout):  # the file itself, bounded the same way
        await export_async("hurried", db_path=db_path, limits=hurried)
    async with ReadSide(store, db_path, subject_prefix=sql_prefix, limits=hurried) as read_side:
        with pytest.raises(QueryTimeout):
            await read_side.export("hurried")
    assert not (db_path.parent / "snapshots" / "hurried").exists()


class CountingWatch(QueryWatch):
    """A watch that stops the export at its ``stop_at``-th check."""

    def __init__(self, stop_at: int) -> None:
        super().__init__(60)
        self.stop_at = stop_at
        self.checks = 0

    def raise_if_fired(self) -> None:
        self.checks += 1
        if self.checks == self.stop_at:
            self.cancel("the service is stopping")
        super().raise_if_fired()


@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
async def test_an_export_streams_batches_and_stops_between_them(
    store: JetStreamEventStore, db_path: Path, history: EventLog, fmt: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ReadModelDb.open_writer(db_path)
    try:
        await Projector(store, db).catch_up(await append_all(store, history.envelopes))
        monkeypatch.setattr(snapshot, "BATCH_ROWS", 1)  # one row a batch: many checks
        whole = CountingWatch(stop_at=10**9)
        export_snapshot(db, db_path.parent / "whole", fmt, whole)
        tables = len(all_tables(default_projections()))
        assert whole.checks > tables + 6  # checked before each batch, not once a table
        stopped = CountingWatch(stop_at=whole.checks // 2)
        dest = db_path.parent / "stopped"
        with pytest.raises(QueryInterrupted, match="the service is stopping"):
            export_snapshot(db, dest, fmt, stopped)
    finally:
        db.close()
    assert not dest.exists()
    assert [p.name for p in db_path.parent.iterdir() if ".part-" in p.name] == []
