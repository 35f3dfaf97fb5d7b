"""The projection port, the batch it folds, the error sink, and set-based DuckDB writes."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from projections.columns import Col, arrow_schema
from projections.decode import Event
from projections.errors import ProjectionHalted

__all__ = [
    "Batch",
    "ErrorSink",
    "Projection",
    "RejectedEvent",
    "TableDoc",
    "insert_rows",
    "load_rows",
    "unregister",
    "upsert_rows",
]

_names = itertools.count()


@dataclass(frozen=True, slots=True)
class TableDoc:
    """What ``docs/schema.md`` says about one table or view."""

    name: str
    doc: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()
    kind: str = "table"


_STAGING_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("type", pa.string()), ("aggregate", pa.string()),
    ("aggregate_id", pa.string()), ("version", pa.int32()), ("occurred_at", pa.string()),
    ("command_id", pa.string()), ("from_state", pa.string()), ("to_state", pa.string()),
    ("traceparent", pa.string()),
])


@dataclass
class Batch:
    """The decoded events one transaction applies, in stream order."""

    events: list[Event]
    _by_aggregate: dict[str, list[Event]] | None = field(default=None, repr=False)
    _staging: str | None = field(default=None, repr=False)

    def of(self, aggregate: str) -> list[Event]:
        """Returns the events of one aggregate type, in stream order."""
        if self._by_aggregate is None:
            groups: dict[str, list[Event]] = {}
            for event in self.events:
                groups.setdefault(event.aggregate, []).append(event)
            self._by_aggregate = groups
        return self._by_aggregate.get(aggregate, [])

    def staging(self, con: duckdb.DuckDBPyConnection) -> str:
        """Registers the envelopes as a relation SQL projections read; returns its name."""
        if self._staging is None:
            name = f"_staging_{next(_names)}"
            con.register(name, self._envelopes())
            self._staging = name
        return self._staging

    def release(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drops the staging relation, if any."""
        if self._staging is not None:
            unregister(con, self._staging)
            self._staging = None

    def _envelopes(self) -> pa.Table:
        events = self.events
        columns = [
            [e.seq for e in events], [e.type for e in events], [e.aggregate for e in events],
            [e.aggregate_id for e in events], [e.version for e in events],
            [e.occurred_at for e in events], [e.command_id for e in events],
            [e.from_state for e in events], [e.to_state for e in events],
            [e.traceparent for e in events],
        ]
        return pa.table(columns, schema=_STAGING_SCHEMA)


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One event a projection could not apply."""

    projection: str
    seq: int
    event_type: str | None
    aggregate: str | None
    aggregate_id: str | None
    error: str
    failed_at: str


class ErrorSink:
    """Collects rejected events (written in the batch's transaction), or halts in strict mode."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.rejected: list[RejectedEvent] = []

    def reject(self, projection: str, seq: int, event: Event | None, error: BaseException) -> None:
        """Records that ``projection`` skips the event at ``seq``."""
        message = _one_line(error)
        if self.strict:
            kind = f" ({event.type})" if event else ""
            raise ProjectionHalted(
                f"projection {projection} halted at seq {seq}{kind}: {message}", seq
            ) from error
        self.rejected.append(RejectedEvent(
            projection, seq, event.type if event else None, event.aggregate if event else None,
            event.aggregate_id if event else None, message, datetime.now(UTC).isoformat(),
        ))


class Projection(Protocol):
    """A read model kept up to date from the log; ``name`` is its checkpoint's key."""

    name: str

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the tables this projection writes."""
        ...

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Folds a batch into its tables inside the caller's transaction."""
        ...

    def reset(self) -> None:
        """Forgets what it holds in memory: the transaction was rolled back."""
        ...


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:500]


def unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drops a registered relation; after a failed statement DuckDB refuses until rollback,
    and the original error is the one worth raising."""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def _arrow(columns: tuple[Col, ...], rows: Sequence[dict[str, Any]]) -> pa.Table:
    # Rows carry every column: transpose them at C speed.
    pick = itemgetter(*(c.name for c in columns))
    data = [list(column) for column in zip(*map(pick, rows), strict=True)]
    return pa.table(data, schema=arrow_schema(columns))


def _with_view(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str) -> None:
    # A registered name (not a replacement scan) works with external access disabled.
    name = f"_batch_{next(_names)}"
    con.register(name, table)
    try:
        con.execute(sql.format(src=name))
    finally:
        unregister(con, name)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[Col, ...],
                rows: Sequence[dict[str, Any]]) -> None:
    """Appends rows in one statement."""
    if rows:
        names = ", ".join(c.ident for c in columns)
        values = ", ".join(c.sql_in() for c in columns)
        _with_view(con, _arrow(columns, rows),
                   f"INSERT INTO {table} ({names}) SELECT {values} FROM {{src}}")


def upsert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[Col, ...],
                rows: Sequence[dict[str, Any]], key: tuple[str, ...],
                whole_rows: bool = False) -> None:
    """Writes rows, updating these columns (only) where the key exists.

    ``whole_rows``: the rows carry every column of the table, so the old rows of their
    keys are deleted and the new ones inserted, which measured 2.5 times faster than
    ``INSERT ... ON CONFLICT DO UPDATE`` (27 columns, 80 rows: 3.2 against 7.9 ms).
    """
    if not rows:
        return
    names = ", ".join(c.ident for c in columns)
    values = ", ".join(c.sql_in() for c in columns)
    if whole_rows:
        match = " AND ".join(f'{table}."{k}" = {{src}}."{k}"' for k in key)
        _with_view(con, _arrow(columns, rows),
                   f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {{src}} WHERE {match}); "
                   f"INSERT INTO {table} ({names}) SELECT {values} FROM {{src}}")
        return
    updates = ", ".join(f"{c.ident} = excluded.{c.ident}" for c in columns if c.name not in key)
    conflict = ", ".join(f'"{k}"' for k in key)
    _with_view(con, _arrow(columns, rows),
               f"INSERT INTO {table} ({names}) SELECT {values} FROM {{src}} "
               f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}")


def load_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, columns: tuple[Col, ...],
              keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Returns the current rows of these keys, by key, in one query."""
    wanted = pa.table({"k": pa.array(list(keys), pa.string())})
    if wanted.num_rows == 0:
        return {}
    name = f"_keys_{next(_names)}"
    con.register(name, wanted)
    try:
        names = ", ".join(c.sql_out() for c in columns)
        found = con.sql(
            f"SELECT {names} FROM {table} WHERE {key} IN (SELECT k FROM {name})"
        ).to_arrow_table()
    finally:
        unregister(con, name)
    return {row[key]: row for row in found.to_pylist()}
