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
from .models import default_projections
from .schema import all_tables, write_info

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


def export_snapshot(db: ReadModelDb, dest: Path, fmt: str = "parquet") -> Path:
    """Writes every table of ``db`` as it is now to ``dest``; returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _read_transaction(db) as cursor:
            tables = {t.name: (t.kind, _fetch(cursor, t.name))
                      for t in all_tables(default_projections())}
    except duckdb.Error as error:
        raise ProjectionError(f"snapshot failed: {str(error).splitlines()[0]}") from None
    building = dest.with_name(f"{dest.name}.part-{os.getpid()}")
    _remove(building)
    if fmt == "parquet":
        _write_parquet(building, tables)
    else:
        _write_duckdb(building, tables)
    _remove(dest)
    os.replace(building, dest)
    return dest


@contextlib.contextmanager
def _read_transaction(db: ReadModelDb) -> Iterator[duckdb.DuckDBPyConnection]:
    cursor = db.cursor()
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        yield cursor
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        cursor.close()


def _fetch(cursor: duckdb.DuckDBPyConnection, name: str) -> pa.Table:
    return cursor.sql(f"SELECT * FROM {name}").to_arrow_table()


def _write_parquet(folder: Path, tables: dict[str, tuple[str, pa.Table]]) -> None:
    folder.mkdir(parents=True)
    for name, (_, table) in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")


def _write_duckdb(path: Path, tables: dict[str, tuple[str, pa.Table]]) -> None:
    snapshot = ReadModelDb.open_writer(path)
    try:
        con = snapshot.con
        con.execute("BEGIN")
        for name, (kind, table) in tables.items():
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
