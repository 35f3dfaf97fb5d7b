"""Opening the DuckDB file of the read models, and translating DuckDB's errors.

DuckDB lets one process open a file read-write, or any number open it read-only. The
owner (the projector's process) opens it with external access disabled, so no query it
serves can read or write other files; a read-only open does the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from .errors import DatabaseBusy, DatabaseMissing, ProjectionError
from .models import Projection, default_projections
from .schema import ensure_schema

__all__ = ["ReadModelDb", "checkpoint_positions", "is_lock_conflict"]

_SAFE_CONFIG: dict[str, Any] = {"enable_external_access": False}


def is_lock_conflict(error: BaseException) -> bool:
    """Tells whether DuckDB refused a file because another process (or this one) holds it."""
    text = str(error).lower()
    if isinstance(error, duckdb.ConnectionException):
        return "same database file" in text  # held read-write by this very process
    return isinstance(error, duckdb.IOException) and "lock" in text


def _connect(path: Path, read_only: bool, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.Error as error:
        if is_lock_conflict(error):
            raise DatabaseBusy(f"{path} is held by another process (is `runlog up` running?)"
                               ) from None
        raise ProjectionError(f"cannot open {path}: {str(error).splitlines()[0]}") from None


class ReadModelDb:
    """One open read-model file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    @classmethod
    def open_writer(
        cls,
        path: Path,
        projections: Sequence[Projection] | None = None,
        wait_s: float = 10.0,
        memory_limit: str | None = None,
    ) -> ReadModelDb:
        """Opens (creating) the file read-write, waiting out short read-only opens by others."""
        path.parent.mkdir(parents=True, exist_ok=True)
        config = dict(_SAFE_CONFIG)
        if memory_limit:
            config["memory_limit"] = memory_limit
        deadline = time.monotonic() + wait_s
        while True:
            try:
                con = _connect(path, False, config)
                break
            except DatabaseBusy:
                # A `runlog sql` reading the file holds it for a moment only.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        db = cls(con, path, read_only=False)
        try:
            ensure_schema(con, projections if projections is not None else default_projections())
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def open_reader(cls, path: Path) -> ReadModelDb:
        """Opens the file read-only; raises ``DatabaseBusy`` while a writer holds it."""
        if not path.exists():
            raise DatabaseMissing(f"no read models at {path}: run `runlog up` or `runlog replay`")
        return cls(_connect(path, True, dict(_SAFE_CONFIG)), path, read_only=True)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Returns a new connection to the same database (one per thread or query)."""
        return self.con.cursor()

    def positions(self) -> dict[str, int]:
        """Returns each projection's checkpoint."""
        return checkpoint_positions(self.con)

    def close(self) -> None:
        """Closes the file (the writer checkpoints it first)."""
        try:
            self.con.close()
        except duckdb.Error as error:
            raise ProjectionError(f"closing {self.path}: {str(error).splitlines()[0]}") from None


def checkpoint_positions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Returns ``{projection: last_seq}`` from the checkpoints table."""
    rows = con.execute("SELECT projection, last_seq FROM checkpoints").fetchall()
    return {str(name): int(seq) for name, seq in rows}
