"""The ``cache_entries`` read model: one row per keyed task, its stored result and its hits.

A row is made by a ``TaskSubmitted`` with a ``cache_key``; its usage adds up what the
result cost; ``TaskSucceeded`` stores it; each ``TaskSatisfiedFromCache`` it answers
counts a hit and the tokens and cost it saved; ``CacheInvalidated`` marks the stored
results under its key or prefix invalidated. Events are folded in stream order, so an
invalidation only reaches results stored before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb

from events.money import ZERO_USD, parse_usd
from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink, TableDoc, load_rows, upsert_rows

__all__ = ["CACHE_COLUMNS", "CacheEntryProjection"]

CACHE_COLUMNS = (
    Col("task_id", ColType.TEXT, doc="the keyed task (the result's source)"),
    Col("cache_key", ColType.TEXT, doc="its cache key"),
    Col("run_id", ColType.TEXT, doc="its run"),
    Col("kind", ColType.TEXT, doc="its kind"),
    Col("state", ColType.TEXT, doc="pending (not succeeded yet), stored, invalidated, or "
        "not_stored (it failed or was cancelled)"),
    Col("submitted_at", ColType.TIME, doc="when it was submitted"),
    Col("stored_at", ColType.TIME, doc="when it succeeded and its result was stored"),
    Col("tokens", ColType.BIGINT, 0, "tokens its own usage spent"),
    Col("cost_usd", ColType.MONEY, ZERO_USD, "what its own usage cost"),
    Col("hits", ColType.BIGINT, 0, "submissions its result answered"),
    Col("tokens_saved", ColType.BIGINT, 0, "tokens those submissions did not spend"),
    Col("cost_saved_usd", ColType.MONEY, ZERO_USD, "USD those submissions did not spend"),
    Col("last_hit_at", ColType.TIME, doc="when it last answered a submission"),
    Col("invalidated_at", ColType.TIME, doc="when cache.invalidate dropped it"),
    Col("last_seq", ColType.BIGINT, doc="stream sequence of its latest change"),
)
_DEFAULTS = {c.name: c.default for c in CACHE_COLUMNS}
_RELEVANT = frozenset({"TaskSubmitted", "TaskSucceeded", "TaskFailed", "TaskCancelled",
                       "TaskSatisfiedFromCache", "UsageRecorded", "CacheInvalidated"})

_INVALIDATE_SQL = """
UPDATE cache_entries SET state = 'invalidated', invalidated_at = ?::TIMESTAMPTZ, last_seq = ?
WHERE state = 'stored' AND stored_at <= ?::TIMESTAMPTZ
  AND (cache_key = ? OR (? IS NOT NULL AND starts_with(cache_key, ?)))
"""

Row = dict[str, Any]


def _task_of(event: Event) -> str | None:
    """The cache entry an event concerns (None: none, or an invalidation)."""
    if event.type == "UsageRecorded":
        task_id = event.data.get("task_id")
        return task_id if isinstance(task_id, str) else None
    if event.type == "TaskSatisfiedFromCache":
        return str(event.data["source_task_id"])
    return event.aggregate_id if event.aggregate == "task" else None


class CacheEntryProjection:
    """Keeps one row per keyed task."""

    name = "cache_entries"

    def __init__(self) -> None:
        # Whether the table holds no entry (None: not asked since the last reset). Most
        # logs key no task: then a batch of task events needs no query (3.3 of a 17-event
        # task batch's 37 ms of CPU went to loading entries that could not exist).
        self._empty: bool | None = None

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the cache_entries table."""
        return (TableDoc("cache_entries", "One row per keyed task: its result cache entry, "
                         "what producing it cost, its hits and the tokens and USD they saved.",
                         CACHE_COLUMNS, ("task_id",)),)

    def reset(self) -> None:
        """Forgets whether the table is empty (a rollback may have undone its first rows)."""
        self._empty = None

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Folds the batch in stream order; invalidations reach untouched rows by SQL."""
        events = [e for e in batch.events if e.type in _RELEVANT]
        if not events or (self._holds_nothing(con) and not any(map(_keyed, events))):
            return  # every event would find no entry to change
        ids = {t for t in map(_task_of, events) if t is not None}
        rows = load_rows(con, "cache_entries", "task_id", CACHE_COLUMNS, ids) if ids else {}
        touched: dict[str, Row] = {}
        for event in events:
            try:
                self._fold(con, rows, touched, event)
            except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                sink.reject(self.name, event.seq, event, error)
        upsert_rows(con, "cache_entries", CACHE_COLUMNS, list(touched.values()), ("task_id",))
        if touched:
            self._empty = False

    def _holds_nothing(self, con: duckdb.DuckDBPyConnection) -> bool:
        if self._empty is None:
            # fetchall, not fetchone: a result not read to its end makes DuckDB refuse the
            # connection's next statement (ResourceInUseException).
            found = con.execute("SELECT 1 FROM cache_entries LIMIT 1").fetchall()
            self._empty = not found
        return self._empty

    def _fold(self, con: duckdb.DuckDBPyConnection, rows: dict[str, Row],
              touched: dict[str, Row], event: Event) -> None:
        if event.type == "CacheInvalidated":
            self._invalidate(con, rows.values(), touched, event)
            return
        task_id = _task_of(event)
        if task_id is None:
            return
        if event.type == "TaskSubmitted":
            if not event.data.get("cache_key"):
                return
            rows[task_id] = _new_row(task_id, event)
        row = rows.get(task_id)
        if row is None:
            return
        row.update(_change(row, event))
        row["last_seq"] = event.seq
        touched[task_id] = row

    def _invalidate(self, con: duckdb.DuckDBPyConnection, rows: Iterable[Row],
                    touched: dict[str, Row], event: Event) -> None:
        key, prefix = event.data.get("cache_key"), event.data.get("prefix")
        at = event.occurred_at
        con.execute(_INVALIDATE_SQL, [at, event.seq, at, key, prefix, prefix])
        for row in rows:  # the rows of this batch, held in memory, are written after
            hit = row["cache_key"] == key or (prefix is not None
                                              and str(row["cache_key"]).startswith(prefix))
            if hit and row["state"] == "stored":
                row.update(state="invalidated", invalidated_at=at, last_seq=event.seq)
                touched[row["task_id"]] = row


def _keyed(event: Event) -> bool:
    """Whether the event is a task submitted with a cache key (its entry's first event)."""
    return event.type == "TaskSubmitted" and bool(event.data.get("cache_key"))


def _new_row(task_id: str, event: Event) -> Row:
    data = event.data
    return _DEFAULTS | {"task_id": task_id, "cache_key": str(data["cache_key"]),
                        "run_id": data.get("run_id"), "kind": data.get("kind"),
                        "state": "pending", "submitted_at": event.occurred_at}


def _change(row: Row, event: Event) -> Row:
    data = event.data
    match event.type:
        case "UsageRecorded":
            return {"tokens": row["tokens"] + int(data["tokens_in"]) + int(data["tokens_out"]),
                    "cost_usd": row["cost_usd"] + parse_usd(data["cost_usd"])}
        case "TaskSucceeded":
            return {"state": "stored", "stored_at": event.occurred_at}
        case "TaskFailed" | "TaskCancelled":
            return {"state": "not_stored"} if row["state"] == "pending" else {}
        case "TaskSatisfiedFromCache":
            return {"hits": row["hits"] + 1,
                    "tokens_saved": row["tokens_saved"] + int(data["tokens_saved"]),
                    "cost_saved_usd": row["cost_saved_usd"] + parse_usd(data["cost_saved_usd"]),
                    "last_hit_at": event.occurred_at}
    return {}
