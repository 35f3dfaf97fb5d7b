"""How folded rows reach DuckDB: appended by position, updated in the columns that changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.applier import _ERROR_COLUMNS
from projections.columns import Col
from projections.database import ReadModelDb
from projections.models.alerts import ALERT_COLUMNS
from projections.models.base import write_rows
from projections.models.routing import ROUTING_COLUMNS
from projections.models.runs import RUNS
from projections.models.transitions import TRANSITION_COLUMNS
from projections.models.usage import USAGE_COLUMNS

_NOW = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def db(tmp_path: Path) -> ReadModelDb:
    return ReadModelDb.open_writer(tmp_path / "rm.duckdb")


@pytest.mark.parametrize(("table", "columns"), [
    ("usage", USAGE_COLUMNS), ("routing_decisions", ROUTING_COLUMNS), ("alerts", ALERT_COLUMNS),
    ("transitions", TRANSITION_COLUMNS), ("projection_errors", _ERROR_COLUMNS),
    ("runs", RUNS.all_columns),
])
def test_rows_appended_by_position_name_the_table_columns_in_order(
        db: ReadModelDb, table: str, columns: tuple[Col, ...]) -> None:
    described = [row[0] for row in db.con.execute(f"DESCRIBE {table}").fetchall()]
    assert described == [c.name for c in columns]


def _run(run_id: str, **values: Any) -> dict[str, Any]:
    row = {c.name: c.default for c in RUNS.all_columns if not c.derived}
    return row | {"run_id": run_id, "name": run_id, "state": "pending", "labels": "{}",
                  "created_at": _NOW, "updated_at": _NOW, "version": 1, "last_seq": 1} | values


def _write(db: ReadModelDb, rows: list[dict[str, Any]],
           stored: list[dict[str, Any]] | None = None) -> None:
    db.con.execute("BEGIN")
    write_rows(db.con, "runs", RUNS.all_columns, "run_id", {r["run_id"]: r for r in rows},
               {r["run_id"]: r for r in stored or []})
    db.con.execute("COMMIT")


def _select(db: ReadModelDb, columns: str) -> list[tuple[Any, ...]]:
    return db.con.execute(f"SELECT {columns} FROM runs ORDER BY run_id").fetchall()


def test_new_rows_start_their_derived_columns_at_the_table_default(db: ReadModelDb) -> None:
    _write(db, [_run("a"), _run("b", state="running")])
    assert _select(db, "run_id, state, tokens_in, tasks_total, task_counts") == [
        ("a", "pending", 0, 0, None), ("b", "running", 0, 0, None)]


def test_a_stored_row_is_updated_only_in_what_changed(db: ReadModelDb) -> None:
    stored = _run("a")
    _write(db, [stored])
    # What SQL maintains (a derived column) and what the fold did not change stay as stored.
    db.con.execute("UPDATE runs SET tasks_total = 3, reason = 'kept'")
    _write(db, [_run("a", state="running", version=2, last_seq=7)], stored=[stored])
    assert _select(db, "state, version, last_seq, tasks_total, reason") == [
        ("running", 2, 7, 3, "kept")]


def test_one_batch_appends_new_rows_and_updates_stored_ones(db: ReadModelDb) -> None:
    stored = _run("a")
    _write(db, [stored])
    _write(db, [_run("a", tokens_in=10, version=2), _run("b")], stored=[stored])
    assert _select(db, "run_id, tokens_in, version") == [("a", 10, 2), ("b", 0, 1)]


def test_a_row_that_changed_nothing_writes_nothing(db: ReadModelDb) -> None:
    stored = _run("a")
    _write(db, [stored])
    db.con.execute("UPDATE runs SET reason = 'kept'")
    _write(db, [dict(stored)], stored=[stored])
    assert _select(db, "reason") == [("kept",)]


def test_a_new_row_whose_key_exists_fails_instead_of_overwriting(db: ReadModelDb) -> None:
    _write(db, [_run("a")])
    with pytest.raises(duckdb.ConstraintException):
        _write(db, [_run("a", state="running")])
    db.con.execute("ROLLBACK")
    assert _select(db, "state") == [("pending",)]


def _indexes(db: ReadModelDb) -> set[tuple[str, str]]:
    found = db.con.execute("SELECT table_name, expressions FROM duckdb_indexes()").fetchall()
    return {(table, expressions) for table, expressions in found}


def test_tasks_are_indexed_by_run_and_state_in_a_new_file_and_in_one_built_before(
        tmp_path: Path) -> None:
    # Without them, recounting the tasks of the runs a batch touched, and the live leases
    # of its workers, read every task: a live batch's cost grew with the table (at
    # 3,000,000 tasks, 55-70 and 51 ms).
    wanted = {("tasks", "[run_id]"), ("tasks", "[state]")}
    path = tmp_path / "rm.duckdb"
    db = ReadModelDb.open_writer(path)
    assert wanted <= _indexes(db)
    for index in ("tasks_run_id", "tasks_state"):  # as a file built before them
        db.con.execute(f"DROP INDEX {index}")
    db.close()
    again = ReadModelDb.open_writer(path)
    try:
        assert wanted <= _indexes(again)
    finally:
        again.close()


def test_task_counts_recount_only_the_runs_a_batch_touched(db: ReadModelDb) -> None:
    from projections.models.task_counts import _COUNT_SQL

    _write(db, [_run("a"), _run("b")])
    db.con.execute("INSERT INTO tasks (task_id, run_id, state) VALUES ('t1', 'a', 'queued'), "
                   "('t2', 'a', 'running'), ('t3', 'a', 'running'), ('t4', 'b', 'queued')")
    db.con.execute(_COUNT_SQL, {"runs": ["a", "nobody"]})
    assert _select(db, "run_id, task_counts, tasks_total") == [
        ("a", {"queued": 1, "running": 2}, 3), ("b", None, 0)]


def test_a_workers_recount_holds_only_its_leased_and_running_tasks(db: ReadModelDb) -> None:
    from projections.models.derived import recount_workers

    db.con.execute("INSERT INTO workers (worker_id, state) VALUES ('w1', 'idle'), "
                   "('w2', 'busy'), ('w3', 'draining')")
    db.con.execute("INSERT INTO tasks (task_id, run_id, state, worker_id) VALUES "
                   "('t2', 'a', 'running', 'w1'), ('t1', 'a', 'leased', 'w1'), "
                   "('t3', 'a', 'succeeded', 'w1'), ('t4', 'a', 'failed', 'w2'), "
                   "('t5', 'a', 'running', 'w3')")
    recount_workers(db.con, ["w1", "w2", "w3", None])
    assert db.con.execute("SELECT worker_id, state, active_tasks, active_task_ids FROM workers "
                          "ORDER BY worker_id").fetchall() == [
        ("w1", "busy", 2, ["t1", "t2"]), ("w2", "idle", 0, []), ("w3", "draining", 1, ["t5"])]


def _recounted(db: ReadModelDb) -> list[tuple[Any, ...]]:
    """Every run's counts as a recount of its tasks would give them."""
    return db.con.execute(
        "SELECT run_id, map_from_entries(list({'k': state, 'v': n} ORDER BY state)), sum(n) "
        "FROM (SELECT run_id, state, count(*) AS n FROM tasks GROUP BY ALL) "
        "GROUP BY run_id ORDER BY run_id").fetchall()


def _moved(db: ReadModelDb, counts: Any, sql: str, *moves: Any, commit: bool = True) -> None:
    db.con.execute("BEGIN")
    db.con.execute(sql)
    counts.apply(db.con, moves, cache_runs=10)
    db.con.execute("COMMIT" if commit else "ROLLBACK")


def test_task_counts_moved_from_cached_ones_equal_a_recount_after_a_rollback(
        db: ReadModelDb) -> None:
    from projections.models.task_counts import RunTaskCounts

    counts = RunTaskCounts()
    _write(db, [_run("a"), _run("b")])
    _moved(db, counts, "INSERT INTO tasks (task_id, run_id, state) VALUES ('t1', 'a', 'queued'),"
           " ('t2', 'a', 'queued'), ('t3', 'b', 'queued')",  # not cached: counted in SQL
           ((None, None), ("a", "queued")), ((None, None), ("a", "queued")),
           ((None, None), ("b", "queued")))
    _moved(db, counts, "UPDATE tasks SET state = 'running' WHERE task_id = 't1'",  # cached
           (("a", "queued"), ("a", "running")))
    _moved(db, counts, "UPDATE tasks SET state = 'failed' WHERE task_id = 't2'",
           (("a", "queued"), ("a", "failed")), commit=False)
    counts.reset()  # as the applier does after a rollback
    _moved(db, counts, "UPDATE tasks SET state = 'succeeded' WHERE task_id IN ('t1', 't3')",
           (("a", "running"), ("a", "succeeded")), (("b", "queued"), ("b", "succeeded")))
    assert _select(db, "run_id, task_counts, tasks_total") == _recounted(db) == [
        ("a", {"queued": 1, "succeeded": 1}, 2), ("b", {"succeeded": 1}, 1)]
