"""Consistent read-only snapshots of the read models, for BI tools and other processes.

Every table (and view) is read inside one read transaction, so the snapshot is one
point in the log even while the projector keeps writing. Two forms: a directory of
Parquet files (one per table or view), or a DuckDB file (tables only; the views are
recreated by the schema) that ``runlog sql --db`` can open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from events import is_valid_id

from .database import ReadModelDb
from .errors import ProjectionError, QueryRefused
from .limits import DEFAULT_LIMITS, SqlLimits
from .models import default_projections
from .query import QueryWatch
from .schema import all_tables, write_info

_UNBOUNDED_S = 365 * 24 * 3600.0
"""The time limit of an export nobody bounds (a local ``runlog export``)."""

__all__ = ["SNAPSHOT_FORMATS", "export_snapshot", "snapshot_path"]

SNAPSHOT_FORMATS = ("parquet", "duckdb")


def snapshot_path(db_path: Path, name: str, fmt: str) -> Path:
    """Returns where a named snapshot lives: ``<data dir>/snapshots/<name>[.duckdb]``."""
    if not is_valid_id(name):
        raise QueryRefused(f"snapshot name {name!r} must be 1-128 of [A-Za-z0-9_-]")
    if fmt not in SNAPSHOT_FORMATS:
        raise QueryRefused(f"unknown snapshot format {fmt!r}: use parquet or duckdb")
    folder = db_path.parent / "snapshots"
    return folder / (f"{name}.duckdb" if fmt == "duckdb" else name)


def export_snapshot(db: ReadModelDb, dest: Path, fmt: str = "parquet",
                    watch: QueryWatch | None = None, limits: SqlLimits = DEFAULT_LIMITS) -> Path:
    """Writes every table of ``db`` as it is now to ``dest``; returns ``dest``.

    ``watch`` bounds it like a query (its time limit, a stop of the service): the read is
    interrupted, and the writing stops between tables. ``limits`` caps a DuckDB copy's memory.
    """
    watch = watch or QueryWatch(_UNBOUNDED_S)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tables = _read_all(db, watch)
    building = dest.with_name(f"{dest.name}.part-{os.getpid()}")
    _remove(building)
    try:
        if fmt == "parquet":
            _write_parquet(building, tables, watch)
        else:
            _write_duckdb(building, tables, watch, limits)
    except BaseException:
        _remove(building)
        raise
    _remove(dest)
    os.replace(building, dest)
    return dest


def _read_all(db: ReadModelDb, watch: QueryWatch) -> dict[str, tuple[str, pa.Table]]:
    """Every table and view, read in one transaction under ``watch``."""
    try:
        with _read_transaction(db, watch) as cursor:
            tables = {}
            for table in all_tables(default_projections()):
                watch.raise_if_fired()
                tables[table.name] = (table.kind, _fetch(cursor, table.name))
            return tables
    except duckdb.Error as error:
        failure = watch.failure(error)
        if watch.fired:
            raise failure from None
        raise ProjectionError(f"snapshot failed: {str(error).splitlines()[0]}") from None


@contextlib.contextmanager
def _read_transaction(db: ReadModelDb, watch: QueryWatch
                      ) -> Iterator[duckdb.DuckDBPyConnection]:
    cursor = db.cursor()
    watch.attach(cursor)
    try:
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        yield cursor
    finally:
        watch.detach()
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        cursor.close()


def _fetch(cursor: duckdb.DuckDBPyConnection, name: str) -> pa.Table:
    return cursor.sql(f"SELECT * FROM {name}").to_arrow_table()


def _write_parquet(folder: Path, tables: dict[str, tuple[str, pa.Table]],
                   watch: QueryWatch) -> None:
    folder.mkdir(parents=True)
    for name, (_, table) in tables.items():
        watch.raise_if_fired()
        pq.write_table(table, folder / f"{name}.parquet")


def _write_duckdb(path: Path, tables: dict[str, tuple[str, pa.Table]], watch: QueryWatch,
                  limits: SqlLimits) -> None:
    snapshot = ReadModelDb.open_writer(path, limits=limits)
    try:
        con = snapshot.con
        con.execute("BEGIN")
        for name, (kind, table) in tables.items():
            watch.raise_if_fired()
            if kind == "table" and name != "read_model_info":
                con.register("_snapshot_rows", table)
                con.execute(f"INSERT INTO {name} SELECT * FROM _snapshot_rows")
                con.unregister("_snapshot_rows")
        write_info(con, {"built_by": "snapshot",
                         "built_at": datetime.now(UTC).isoformat()})
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        snapshot.close()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        for stale in (path, Path(f"{path}.wal")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
