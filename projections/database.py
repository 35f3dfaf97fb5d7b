"""Opening the DuckDB file of the read models, and translating DuckDB's errors.

DuckDB lets one process open a file read-write, or any number open it read-only. The
owner (the projector's process) opens it with external access disabled, so no query it
serves can read or write other files; a read-only open does the same. Both open it with
the memory and temp-space caps of ``SqlLimits``.

A writer that finds the file open elsewhere leaves ``<file>.writer-waiting`` (holding
its pid) while it waits: a local ``runlog sql`` reading the file sees it and stops its
query, so ``runlog up`` never waits on one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from .errors import DatabaseBusy, DatabaseMissing, ProjectionError
from .limits import DEFAULT_LIMITS, SqlLimits
from .models import Projection, default_projections
from .schema import ensure_schema

__all__ = [
    "ReadModelDb",
    "checkpoint_positions",
    "is_lock_conflict",
    "is_memory_error",
    "writer_waiting",
]

log = logging.getLogger(__name__)

# No files, no extensions, no Python objects of this process as tables.
_SAFE_CONFIG: dict[str, Any] = {"enable_external_access": False,
                                "python_enable_replacements": False}
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def is_lock_conflict(error: BaseException) -> bool:
    """Tells whether DuckDB refused a file because another process (or this one) holds it."""
    text = str(error).lower()
    if isinstance(error, duckdb.ConnectionException):
        return "same database file" in text  # held read-write by this very process
    return isinstance(error, duckdb.IOException) and "lock" in text


def is_memory_error(error: BaseException) -> bool:
    """Tells whether DuckDB failed for want of memory (under its ``memory_limit``)."""
    if isinstance(error, (duckdb.OutOfMemoryException, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, duckdb.Error) and ("Out of Memory" in text
                                                or "failed to allocate" in text)


def _connect(path: Path, read_only: bool, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.Error as error:
        if is_lock_conflict(error):
            raise DatabaseBusy(f"{path} is open in {_holder(error)}") from None
        raise ProjectionError(f"cannot open {path}: {str(error).splitlines()[0]}") from None


def _holder(error: BaseException) -> str:
    """Who holds the file, as DuckDB's lock error names it."""
    found = _HOLDER.search(str(error))
    if found is None:
        return "another process (is `runlog up` running?)"
    return f"another process (PID {found['pid']}, {Path(found['exe']).name})"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".writer-waiting")


def writer_waiting(path: Path) -> int | None:
    """The pid of a live process waiting to open ``path`` read-write, if any."""
    try:
        pid = int(_marker(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a writer that died while it waited
    except PermissionError:
        pass
    return pid


@contextlib.contextmanager
def _announced_wait(path: Path) -> Iterator[None]:
    """Tells readers (through the marker file) that a writer waits for the file."""
    marker = _marker(path)
    marker.write_text(str(os.getpid()))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


class ReadModelDb:
    """One open read-model file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._kept = threading.local()
        """Each thread's query cursor, kept across its queries."""

    @classmethod
    def open_writer(
        cls,
        path: Path,
        projections: Sequence[Projection] | None = None,
        wait_s: float = 10.0,
        limits: SqlLimits = DEFAULT_LIMITS,
    ) -> ReadModelDb:
        """Opens (creating) the file read-write; a reader holding it is asked to let go."""
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {**_SAFE_CONFIG, **limits.duckdb_config()}
        try:
            con = _connect(path, False, config)
        except DatabaseBusy as busy:
            con = _wait_for_readers(path, config, wait_s, busy)
        db = cls(con, path, read_only=False)
        try:
            ensure_schema(con, projections if projections is not None else default_projections())
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def open_reader(cls, path: Path, limits: SqlLimits = DEFAULT_LIMITS) -> ReadModelDb:
        """Opens the file read-only; raises ``DatabaseBusy`` while a writer holds it."""
        if not path.exists():
            raise DatabaseMissing(f"no read models at {path}: run `runlog up` or `runlog replay`")
        if writer_waiting(path) is not None:
            raise DatabaseBusy(f"{path} is about to be opened by a starting runlog")
        config = {**_SAFE_CONFIG, **limits.duckdb_config()}
        return cls(_connect(path, True, config), path, read_only=True)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Returns a new connection to the same database (one per thread or query)."""
        return self.con.cursor()

    def query_cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor for queries, made on its first query and kept after.

        A new cursor and its setting cost 0.3 of a point query's 2.1 ms of CPU. The
        cursors close with the file (``close`` closes every cursor made from it).
        """
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._kept, "cursor", None)
        if cursor is None:
            cursor = self.con.cursor()
            cursor.execute("SET enable_progress_bar = false")  # it would print amid the rows
            self._kept.cursor = cursor
        return cursor

    def drop_query_cursor(self) -> None:
        """Closes this thread's query cursor (after a failed query: its state is unknown)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._kept, "cursor", None)
        self._kept.cursor = None
        if cursor is not None:
            with contextlib.suppress(duckdb.Error):
                cursor.close()

    def positions(self) -> dict[str, int]:
        """Returns each projection's checkpoint."""
        return checkpoint_positions(self.con)

    def close(self) -> None:
        """Closes the file (the writer checkpoints it first)."""
        try:
            self.con.close()
        except duckdb.Error as error:
            raise ProjectionError(f"closing {self.path}: {str(error).splitlines()[0]}") from None


def _wait_for_readers(path: Path, config: dict[str, Any], wait_s: float,
                      busy: DatabaseBusy) -> duckdb.DuckDBPyConnection:
    """Waits (saying so) until the processes reading ``path`` close it; a `runlog sql` stops
    its query at once, other readers (a DuckDB shell, a BI tool) get ``wait_s`` seconds."""
    log.warning("%s; waiting up to %g s for it to close", busy, wait_s)
    deadline = time.monotonic() + wait_s
    with _announced_wait(path):
        while True:
            time.sleep(0.05)
            try:
                return _connect(path, False, config)
            except DatabaseBusy as still:
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(
                        f"{still} and it did not close within {wait_s:g} s: close it (a DuckDB "
                        "shell or another tool reading the read models?) and start again"
                    ) from None


def checkpoint_positions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Returns ``{projection: last_seq}`` from the checkpoints table."""
    rows = con.execute("SELECT projection, last_seq FROM checkpoints").fetchall()
    return {str(name): int(seq) for name, seq in rows}
