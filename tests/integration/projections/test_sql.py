"""Read-only SQL: the guard, the file path, the NATS path from another process, snapshots."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from projections import (
    QueryRefused,
    QueryTimeout,
    QueryUnavailable,
    ReadModelDb,
    ReadSide,
    WaitTimeout,
    check_read_only,
    execute_query,
    export_async,
    run_sql_async,
    sql_guard,
)
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore
from tests.support.read_side import EventLog, append_all

ROOT = Path(__file__).resolve().parents[3]

REFUSED = [
    ("INSERT INTO runs (run_id) VALUES ('x')", "INSERT statements are not allowed"),
    ("UPDATE runs SET name = 'x'", "UPDATE statements"),
    ("DELETE FROM runs", "DELETE statements"),
    ("DROP TABLE runs", "DROP TABLE statements"),
    ("CREATE TABLE x AS SELECT 1", "CREATE TABLE statements"),
    ("ATTACH 'other.duckdb' AS other", "ATTACH statements"),
    ("DETACH other", "DETACH statements"),
    ("COPY runs TO 'runs.csv'", "COPY statements"),
    ("EXPORT DATABASE 'dump'", "EXPORT statements"),
    ("PRAGMA version", "PRAGMA statements"),
    ("SET threads = 1", "SET statements"),
    ("CALL pragma_version()", "CALL statements"),
    ("INSTALL httpfs", "INSTALL statements"),
    ("LOAD httpfs", "LOAD statements"),
    ("CHECKPOINT", "CHECKPOINT statements"),
    ("FORCE CHECKPOINT", "FORCE CHECKPOINT statements"),
    ("VACUUM", "VACUUM statements"),
    ("UPDATE EXTENSIONS", "UPDATE statements"),
    ("BEGIN TRANSACTION", "BEGIN statements"),
    ("USE memory", "USE statements"),
    ("PIVOT runs ON state", "PIVOT needs its values listed"),
    ("SELECT * FROM (PIVOT runs ON state)", "PIVOT needs its values listed"),
    ("WITH d AS (DELETE FROM runs RETURNING *) SELECT * FROM d", "DELETE is not allowed, not"),
    ("SELECT 1 WHERE 1 IN (WITH d AS (INSERT INTO x VALUES (1) RETURNING 1) SELECT 1 FROM d)",
     "INSERT is not allowed"),
    ("WITH u AS (UPDATE runs SET name = 'x' RETURNING 1) SELECT * FROM u", "UPDATE is not"),
    ("SELECT * FROM checkpoint()", "table function checkpoint()"),
    ("FROM force_checkpoint()", "table function force_checkpoint()"),
    ("SELECT * FROM query('SELECT * FROM checkpoint()')", "table function query()"),
    ("SELECT * FROM enable_logging()", "table function enable_logging()"),
    ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv()"),
    ("SELECT nextval('s')", "nextval() changes state"),
    ("SELECT setseed(0.5)", "setseed() changes state"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("SELECT 1; DROP TABLE runs", "one statement at a time"),
    ("EXPLAIN ANALYZE INSERT INTO runs (run_id) VALUES ('x')", "EXPLAIN is allowed for"),
    ("EXPLAIN ANALYZE WITH d AS (DELETE FROM runs RETURNING 1) SELECT * FROM d", "DELETE is"),
    ("", "empty query"),
    ("SELEKT 1", "syntax error"),
]
ALLOWED = [
    "SELECT 1",
    "select 1;",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) FROM t",
    "EXPLAIN SELECT * FROM runs",
    "EXPLAIN ANALYZE SELECT 1",
    "EXPLAIN (FORMAT json) SELECT 1",
    "DESCRIBE runs",
    "SHOW TABLES",
    "SUMMARIZE runs",
    "FROM runs",
    "PIVOT runs ON state IN ('running', 'failed') USING count(*)",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM range(3), unnest([1, 2])",
    "-- a comment first\nSELECT 2",
]


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_the_guard_refuses_anything_but_one_read_only_statement(sql: str, message: str) -> None:
    with pytest.raises(QueryRefused, match=re.escape(message)) as refused:
        check_read_only(sql)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("sql", ALLOWED)
def test_the_guard_lets_reads_through(sql: str) -> None:
    assert check_read_only(sql)


def test_the_guard_answers_a_repeated_query_as_the_first_time() -> None:
    # Accepted statements are remembered by text; a refusal is checked afresh each time.
    assert check_read_only("SELECT 41 + 1") == check_read_only("SELECT 41 + 1") == "SELECT 41 + 1"
    for _ in range(2):
        with pytest.raises(QueryRefused):
            check_read_only("DELETE FROM runs")
    with pytest.raises(QueryRefused, match="longer than"):
        check_read_only("SELECT 1" + " " * 100_000)


def test_the_guard_checks_a_statement_once_whatever_its_literals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A client reading its own rows back sends one query with another id each time.
    parsed: list[str] = []
    syntax_tree = sql_guard._syntax_tree

    def counted(text: str) -> object:
        parsed.append(text)
        return syntax_tree(text)

    monkeypatch.setattr(sql_guard, "_syntax_tree", counted)
    sql_guard._accepted.cache_clear()
    sql_guard._accepted_shape.cache_clear()
    texts = [f"SELECT state FROM runs WHERE run_id = 'run-{n}' AND cost_usd > {n}.5"
             for n in range(5)]
    assert [check_read_only(text) for text in texts] == texts  # each keeps its own values
    assert parsed == ["SELECT state FROM runs WHERE run_id = '' AND cost_usd > 0"]
    assert check_read_only("SELECT state FROM runs WHERE run_id = 'x' OR true") != texts[0]
    assert len(parsed) == 2  # another shape is parsed again


def test_a_literal_that_reads_as_sql_stays_a_literal() -> None:
    sql = "SELECT 'x''; DELETE FROM runs; --' AS said, 1e3 AS n"
    assert check_read_only(sql) == sql
    check_read_only("SELECT lower('DELETE FROM runs')")
    with pytest.raises(QueryRefused, match=re.escape("nextval() changes state")):
        check_read_only("SELECT nextval('DELETE FROM runs')")  # same literal, refused by name
    with pytest.raises(QueryRefused, match=re.escape("table function query()")):
        check_read_only("SELECT * FROM query('SELECT 1')")


def test_every_kind_of_value_comes_out_json_ready(tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "types.duckdb")
    try:
        result = execute_query(db, """
            SELECT 42::HUGEINT AS big, 1.50::DECIMAL(4, 2) AS price, 2.00::DECIMAL(4, 2) AS whole,
                   'nan'::DOUBLE AS nan, 0.25::DOUBLE AS quarter,
                   TIMESTAMPTZ '2026-01-02 03:04:05+00' AS at, DATE '2026-01-02' AS day,
                   INTERVAL 90 SECOND AS took, '{"a": [1, 2]}'::JSON AS doc,
                   {'k': 1.5::DECIMAL(3, 1)} AS named, row(1, 'x') AS unnamed,
                   map(['a'], [1]) AS pairs, [1, NULL] AS list, 'ab'::BLOB AS bytes,
                   '00000000-0000-0000-0000-000000000001'::UUID AS id, NULL AS nothing
            """)
    finally:
        db.close()
    row = dict(zip(result.columns, result.rows[0], strict=True))
    at = datetime.fromisoformat(row.pop("at"))  # written in the session's time zone
    assert at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row == {
        "big": 42, "price": 1.5, "whole": 2, "nan": "nan", "quarter": 0.25,
        "day": "2026-01-02", "took": 90.0,
        "doc": {"a": [1, 2]}, "named": {"k": 1.5}, "unnamed": [1, "x"], "pairs": {"a": 1},
        "list": [1, None], "bytes": "6162", "id": "00000000-0000-0000-0000-000000000001",
        "nothing": None}
    assert result.types[:2] == ["HUGEINT", "DECIMAL(4,2)"]
    json.dumps(result.rows)


def test_a_thread_keeps_its_query_cursor_until_a_query_fails(tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "kept.duckdb")
    try:
        first = db.query_cursor()
        assert execute_query(db, "SELECT 1").rows == [[1]]
        assert db.query_cursor() is first  # kept across queries
        with pytest.raises(QueryTimeout):
            execute_query(db, "SELECT sum(a.range * b.range) FROM range(100000000) a, "
                              "range(1000) b", timeout_s=0.2)
        replaced = db.query_cursor()
        assert replaced is not first  # a failed query's cursor is not trusted again
        assert execute_query(db, "SELECT 2").rows == [[2]]
        other: list[object] = []
        thread = threading.Thread(target=lambda: other.append(db.query_cursor()))
        thread.start()
        thread.join()
        assert other[0] is not replaced  # each thread has its own
    finally:
        db.close()


def test_a_known_position_is_asked_before_the_snapshot(tmp_path: Path) -> None:
    db = ReadModelDb.open_writer(tmp_path / "position.duckdb")
    try:
        db.con.execute("INSERT INTO checkpoints (projection, last_seq) VALUES ('runs', 7)")
        assert execute_query(db, "SELECT 1").position == 7  # read in the snapshot
        # Committed between the ask and the snapshot: the answer holds it, the position
        # reported stays the lower bound asked for.
        def committed() -> int:
            db.con.execute("UPDATE checkpoints SET last_seq = 9")
            return 8
        result = execute_query(db, "SELECT min(last_seq) FROM checkpoints", position=committed)
        assert (result.position, result.rows) == (8, [[9]])
    finally:
        db.close()


async def run_child(*args: str) -> tuple[int, str, str]:
    """Runs Python in a child process without blocking this loop (the owner serves on it)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 60)
    return child.returncode or 0, out.decode(), err.decode()


async def build(store: JetStreamEventStore, db_path: Path, history: EventLog) -> int:
    last = await append_all(store, history.envelopes)
    db = ReadModelDb.open_writer(db_path)
    await Projector(store, db).catch_up()
    db.close()
    return last


@pytest.mark.nats
async def test_run_sql_reads_the_file_when_no_service_holds_it(
    store: JetStreamEventStore, db_path: Path, history: EventLog
) -> None:
    last = await build(store, db_path, history)
    sql = "SELECT run_id, state, task_counts, labels FROM runs ORDER BY run_id"
    table = await run_sql_async(sql, db_path=db_path)
    assert table.splitlines()[0].split() == ["run_id", "state", "task_counts", "labels"]
    assert table.splitlines()[-1] == "(3 rows)"
    rows = json.loads(await run_sql_async(sql, db_path=db_path, fmt="json", limit=1))
    assert rows == [{"run_id": "r1", "state": "succeeded", "task_counts": {"succeeded": 2},
                     "labels": {"team": "a"}}]
    csv = await run_sql_async("SELECT count(*) AS n FROM usage", db_path=db_path, fmt="csv",
                              wait_seq=last)
    assert csv == "n\n8"
    with pytest.raises(WaitTimeout, match="no running runlog"):
        await run_sql_async("SELECT 1", db_path=db_path, wait_seq=last + 1)
    reader = ReadModelDb.open_reader(db_path)  # past the guard, DuckDB itself refuses files
    try:
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            reader.con.execute("SELECT * FROM read_csv('/etc/passwd')")
    finally:
        reader.close()


@pytest.mark.nats
async def test_a_runaway_query_is_interrupted(store: JetStreamEventStore, db_path: Path,
                                              history: EventLog) -> None:
    await build(store, db_path, history)
    db = ReadModelDb.open_reader(db_path)
    try:
        with pytest.raises(QueryTimeout, match=r"0\.2 s"):
            execute_query(db, "SELECT sum(a.range * b.range) FROM range(100000000) a, "
                              "range(1000) b", timeout_s=0.2)
        assert execute_query(db, "SELECT 42").rows == [[42]]  # the connection still works
    finally:
        db.close()


@pytest.mark.nats
async def test_another_process_queries_through_the_owner(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, ProjectorConfig(linger_s=0.005),
                        subject_prefix=sql_prefix):
        last = await append_all(store, history.envelopes)
        script = (
            "import sys; from pathlib import Path; from projections import run_sql;"
            "print(run_sql(sys.argv[1], db_path=Path(sys.argv[2]), nats_url=sys.argv[3],"
            " fmt='json', wait_seq=int(sys.argv[4]), subject_prefix=sys.argv[5]))"
        )
        code, out, err = await run_child(
            "-c", script, "SELECT run_id, tokens_in FROM runs ORDER BY 1", str(db_path),
            nats_url, str(last), sql_prefix)
        assert code == 0, err
        assert json.loads(out) == [{"run_id": "r1", "tokens_in": 400},
                                   {"run_id": "r2", "tokens_in": 300},
                                   {"run_id": "r3", "tokens_in": 100}]
        code, out, err = await run_child("-c", script, "DROP TABLE runs", str(db_path),
                                         nats_url, "0", sql_prefix)
        assert code != 0
        assert "QueryRefused: DROP TABLE statements are not allowed" in err


@pytest.mark.nats
async def test_the_owner_answers_with_limits_and_typed_errors(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    async with ReadSide(store, db_path, subject_prefix=sql_prefix):
        last = await append_all(store, history.envelopes)
        ask = functools.partial(run_sql_async, db_path=db_path, nats_url=nats_url,
                                subject_prefix=sql_prefix)
        text = await ask("SELECT * FROM range(10)", limit=3, wait_seq=last)
        assert text.splitlines()[-1] == "(3 rows; limit reached, more rows exist)"
        with pytest.raises(QueryRefused):
            await ask("ATTACH 'x.duckdb'")
        with pytest.raises(WaitTimeout):
            await ask("SELECT 1", wait_seq=last + 10, wait_timeout_s=0.2)
        with pytest.raises(QueryTimeout):
            await ask("SELECT sum(a.range * b.range) FROM range(100000000) a, "
                      "range(1000) b", timeout_s=0.2)


@pytest.mark.nats
async def test_without_a_responder_a_held_file_is_a_clear_error(
    nats_url: str, db_path: Path, sql_prefix: str
) -> None:
    holder = ReadModelDb.open_writer(db_path)
    try:
        with pytest.raises(QueryUnavailable, match="no running runlog is known to answer"):
            await run_sql_async("SELECT 1", db_path=db_path)
        with pytest.raises(QueryUnavailable, match="no running runlog answers"):
            await run_sql_async("SELECT 1", db_path=db_path, nats_url=nats_url,
                                subject_prefix=sql_prefix)
    finally:
        holder.close()


@pytest.mark.nats
async def test_snapshots_from_the_file_and_from_the_owner(
    nats_url: str, store: JetStreamEventStore, db_path: Path, history: EventLog,
    sql_prefix: str
) -> None:
    await build(store, db_path, history)
    folder = await export_async("offline", db_path=db_path)
    assert pq.read_table(folder / "runs.parquet").num_rows == 3
    assert {p.stem for p in folder.iterdir()} >= {"runs", "tasks", "usage", "health"}
    async with ReadSide(store, db_path, subject_prefix=sql_prefix):
        copy = await export_async("online", db_path=db_path, nats_url=nats_url, fmt="duckdb",
                                  subject_prefix=sql_prefix)
    assert copy == db_path.parent / "snapshots" / "online.duckdb"
    result = await run_sql_async("SELECT count(*) AS n FROM tasks", db_path=copy, fmt="csv")
    assert result == "n\n6"
    with pytest.raises(QueryRefused, match="snapshot name"):
        await export_async("../escape", db_path=db_path)
