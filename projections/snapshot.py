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

BATCH_ROWS = 50_000
"""Rows an export holds in memory at a time."""

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

    Rows go from the read transaction to the files in batches of ``BATCH_ROWS``, so an
    export holds one batch in memory, not the tables. ``watch`` bounds it like a query (its
    time limit, a stop of the service): the read is interrupted, the writing stops between
    batches. ``limits`` caps a DuckDB copy's memory as the read models' own.
    """
    watch = watch or QueryWatch(_UNBOUNDED_S)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = dest.with_name(f"{dest.name}.part-{os.getpid()}")
    _remove(building)
    try:
        with _failing_as(watch), _read_transaction(db, watch) as cursor:
            if fmt == "parquet":
                _write_parquet(cursor, building, watch)
            else:
                _write_duckdb(cursor, building, watch, limits)
    except BaseException:
        _remove(building)
        raise
    _remove(dest)
    os.replace(building, dest)
    return dest


@contextlib.contextmanager
def _failing_as(watch: QueryWatch) -> Iterator[None]:
    """DuckDB's errors as runlog's: why the export was stopped, else its first line."""
    try:
        yield
    except duckdb.Error as error:
        if watch.fired:
            raise watch.failure(error) from None
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


def _batches(cursor: duckdb.DuckDBPyConnection, name: str, watch: QueryWatch
             ) -> pa.RecordBatchReader:
    watch.raise_if_fired()
    # arrow() streams batch by batch (to_arrow_reader() would run the whole query first).
    return cursor.sql(f"SELECT * FROM {name}").arrow(BATCH_ROWS)


def _watched(batches: pa.RecordBatchReader, watch: QueryWatch) -> pa.RecordBatchReader:
    """The same batches, checking ``watch`` before each."""
    def checked() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            watch.raise_if_fired()
            yield batch
    return pa.RecordBatchReader.from_batches(batches.schema, checked())


def _write_parquet(cursor: duckdb.DuckDBPyConnection, folder: Path, watch: QueryWatch) -> None:
    folder.mkdir(parents=True)
    for table in all_tables(default_projections()):
        batches = _batches(cursor, table.name, watch)
        with pq.ParquetWriter(folder / f"{table.name}.parquet", batches.schema) as writer:
            for batch in _watched(batches, watch):
                writer.write_batch(batch)


def _write_duckdb(cursor: duckdb.DuckDBPyConnection, path: Path, watch: QueryWatch,
                  limits: SqlLimits) -> None:
    snapshot = ReadModelDb.open_writer(path, limits=limits)
    try:
        con = snapshot.con
        con.execute("BEGIN")
        for table in all_tables(default_projections()):
            if table.kind == "table" and table.name != "read_model_info":
                con.register("_snapshot_rows", _watched(_batches(cursor, table.name, watch),
                                                        watch))
                con.execute(f"INSERT INTO {table.name} SELECT * FROM _snapshot_rows")
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
