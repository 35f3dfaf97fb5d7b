"""Small writes go through kept appenders, larger ones through Arrow: the rows come out the same.

The two paths convert values differently (an appender as statement parameters, Arrow by
its schema and a cast in SQL), so each is checked against the other on every column type
a table has, in inserts and in updates; and an appender's failures must leave nothing
buffered for the next batch, and nothing written once its transaction is rolled back.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.database import ReadModelDb
from projections.models import appenders
from projections.models.appenders import KEPT_APPENDER_ROWS, KEPT_UPDATER_ROWS
from projections.models.base import insert_rows, write_rows
from projections.models.runs import RUNS
from projections.models.usage import USAGE_COLUMNS

_NOW = "2026-01-01T00:00:00.123456+00:00"
_LATER = "2026-01-02T03:04:05.000001+00:00"


@pytest.fixture
def db(tmp_path: Path) -> ReadModelDb:
    return ReadModelDb.open_writer(tmp_path / "rm.duckdb")


def _usage(seq: int) -> dict[str, Any]:
    return {"seq": seq, "occurred_at": _NOW, "run_id": f"r{seq}", "task_id": None,
            "worker_id": "w1", "model": "m", "provider": "p", "tokens_in": seq,
            "tokens_out": 2, "cost_usd": Decimal("0.000123456789"), "outcome": "ok",
            "latency_ms": 1.5, "input_usd_per_mtok": Decimal("3"),
            "output_usd_per_mtok": Decimal("15"), "price_effective_from": _LATER,
            "budget_id": None, "cached_tokens_in": 0, "cache_write_tokens_in": 0,
            "cached_input_usd_per_mtok": None, "cache_write_usd_per_mtok": None,
            "provider_cost_usd": None, "reservation_id": None, "session_id": "s1",
            "scopes": [f"run:r{seq}", "day@2026-01-01"]}


def _run(run_id: str, **values: Any) -> dict[str, Any]:
    row = {c.name: c.default for c in RUNS.all_columns if not c.derived}
    return row | {"run_id": run_id, "name": run_id, "state": "pending",
                  "labels": '{"team": "a", "n": [1, 2]}', "created_at": _NOW,
                  "updated_at": _NOW, "version": 1, "last_seq": 1} | values


def _in_transaction(db: ReadModelDb, write: Any) -> None:
    db.con.execute("BEGIN")
    write()
    db.con.execute("COMMIT")


def _table(db: ReadModelDb, table: str, key: str, offset: int = 0) -> list[tuple[Any, ...]]:
    """The rows as text, in key order, with their keys numbered from ``offset``."""
    rows = db.con.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
    return [tuple(str(v) for v in row[1:]) for row in rows[offset:]]


def test_usage_appended_a_few_at_a_time_equals_usage_appended_at_once(
        db: ReadModelDb, tmp_path: Path) -> None:
    many = [_usage(seq) for seq in range(1, KEPT_APPENDER_ROWS * 2 + 1)]
    for start in range(0, len(many), 3):  # through the appender
        _in_transaction(db, lambda s=start: insert_rows(db.con, "usage", USAGE_COLUMNS,
                                                        many[s:s + 3]))
    other = ReadModelDb.open_writer(tmp_path / "arrow.duckdb")
    _in_transaction(other, lambda: insert_rows(other.con, "usage", USAGE_COLUMNS, many))
    assert _table(db, "usage", "seq") == _table(other, "usage", "seq")
    assert db.con.execute("SELECT typeof(occurred_at), scopes FROM usage LIMIT 1").fetchone() == (
        "TIMESTAMP WITH TIME ZONE", ["run:r1", "day@2026-01-01"])


@pytest.mark.parametrize("count", [2, KEPT_APPENDER_ROWS + 5, KEPT_UPDATER_ROWS + 5])
def test_runs_written_and_updated_hold_the_same_whichever_path_wrote_them(
        db: ReadModelDb, count: int) -> None:
    """``count`` rows are written then updated: below each path's threshold through
    appenders, above it through Arrow; the result is compared with what each column
    should hold."""
    new = {f"r{i:03}": _run(f"r{i:03}") for i in range(count)}
    _in_transaction(db, lambda: write_rows(db.con, "runs", RUNS.all_columns, "run_id", new, {}))
    stored = {k: dict(v) for k, v in new.items()}
    changed = {k: v | {"state": "running", "started_at": _LATER, "cost_usd": Decimal("1.25"),
                       "labels": '{"b": true}', "version": 2, "updated_at": _LATER}
               for k, v in new.items()}
    _in_transaction(db, lambda: write_rows(db.con, "runs", RUNS.all_columns, "run_id", changed,
                                           stored))
    rows = db.con.execute(
        "SELECT run_id, state, CAST(started_at AS VARCHAR), cost_usd, labels::VARCHAR, version, "
        "CAST(created_at AS VARCHAR), tasks_total, task_counts FROM runs ORDER BY run_id"
    ).fetchall()
    assert len(rows) == count
    assert set(rows[1:]) | {rows[0]} == {
        (k, "running", "2026-01-02 03:04:05.000001+00", Decimal("1.25"), '{"b": true}', 2,
         "2026-01-01 00:00:00.123456+00", 0, None) for k in new}


def test_a_failed_flush_leaves_nothing_for_the_next_batch(db: ReadModelDb) -> None:
    first = [_usage(1)]
    _in_transaction(db, lambda: insert_rows(db.con, "usage", USAGE_COLUMNS, first))
    db.con.execute("BEGIN")
    with pytest.raises(duckdb.ConversionException):
        insert_rows(db.con, "usage", USAGE_COLUMNS, [_usage(2), _usage(3) | {"tokens_in": "x"}])
    db.con.execute("ROLLBACK")
    _in_transaction(db, lambda: insert_rows(db.con, "usage", USAGE_COLUMNS, [_usage(4)]))
    assert [r[0] for r in db.con.execute("SELECT seq FROM usage ORDER BY seq").fetchall()] == [
        1, 4]


def test_a_rolled_back_update_writes_nothing_and_the_appender_serves_on(db: ReadModelDb) -> None:
    rows = {"a": _run("a")}
    _in_transaction(db, lambda: write_rows(db.con, "runs", RUNS.all_columns, "run_id", rows, {}))
    stored = {"a": dict(rows["a"])}
    db.con.execute("BEGIN")
    write_rows(db.con, "runs", RUNS.all_columns, "run_id", {"a": _run("a", state="running")},
               stored)
    db.con.execute("ROLLBACK")
    assert db.con.execute("SELECT state FROM runs").fetchall() == [("pending",)]
    _in_transaction(db, lambda: write_rows(db.con, "runs", RUNS.all_columns, "run_id",
                                           {"a": _run("a", state="failed")}, stored))
    assert db.con.execute("SELECT state FROM runs").fetchall() == [("failed",)]


def test_a_connection_keeps_a_bounded_number_of_appenders(
        db: ReadModelDb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(appenders, "_KEPT_PER_CONNECTION", 3)
    stored = _run("a")
    _in_transaction(db, lambda: write_rows(db.con, "runs", RUNS.all_columns, "run_id",
                                           {"a": dict(stored)}, {}))
    numbers = ["tokens_in", "tokens_out", "usage_count", "cached_tokens_in",
               "cache_write_tokens_in"]
    for number in numbers:  # each update binds its own column: an appender of its own
        changed = stored | {number: 7}
        _in_transaction(db, lambda c=changed, s=stored: write_rows(
            db.con, "runs", RUNS.all_columns, "run_id", {"a": dict(c)}, {"a": s}))
        stored = changed
    kept = appenders._kept[db.con]
    # The insert appender was the least recently used: dropped with the first two updates.
    assert list(kept) == [("runs", ("run_id", name), "update") for name in numbers[-3:]]
    assert db.con.execute(f"SELECT {', '.join(numbers)} FROM runs").fetchone() == (7,) * 5
