"""The ``transitions`` read model: the audit trail, one row per event that sets a state."""

from __future__ import annotations

import re

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink, TableDoc, insert_values

__all__ = ["TRANSITION_COLUMNS", "TransitionProjection"]

TRANSITION_COLUMNS = (
    Col("seq", ColType.BIGINT, doc="stream sequence of the event"),
    Col("occurred_at", ColType.TIME, doc="when it occurred"),
    Col("aggregate", ColType.TEXT, doc="aggregate type (run, task, worker, ...)"),
    Col("aggregate_id", ColType.TEXT, doc="aggregate id"),
    Col("event_type", ColType.TEXT, doc="the event's type, e.g. TaskLeased"),
    Col("from_state", ColType.TEXT, doc="state before (null for a creation)"),
    Col("to_state", ColType.TEXT, doc="state after"),
    Col("version", ColType.INT, doc="the aggregate's version after the event"),
    Col("command_id", ColType.TEXT, doc="the command that wrote it"),
    Col("trace_id", ColType.TEXT, doc="W3C trace id of the command (from traceparent)"),
    Col("span_id", ColType.TEXT, doc="W3C span id of the writer"),
)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def _trace_ids(traceparent: str | None) -> tuple[str | None, str | None]:
    found = _TRACEPARENT.match(traceparent) if traceparent else None
    return (found[1], found[2]) if found else (None, None)


def _transitions(events: list[Event]) -> list[tuple[object, ...]]:
    """The batch's rows, a value per column in the table's order."""
    rows: list[tuple[object, ...]] = []
    for e in events:
        if e.to_state is not None:
            trace, span = _trace_ids(e.traceparent)
            rows.append((e.seq, e.occurred_at, e.aggregate, e.aggregate_id, e.type,
                         e.from_state, e.to_state, e.version, e.command_id, trace, span))
    return rows


class TransitionProjection:
    """Appends one row per event that carries a ``to_state``."""

    name = "transitions"

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the transitions table."""
        return (TableDoc("transitions", "The audit trail: one row per event that carries a "
                         "to_state, with the trace id of the command that wrote it.",
                         TRANSITION_COLUMNS),)

    def reset(self) -> None:
        """Holds nothing between batches."""

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Appends the batch's transitions in one statement."""
        insert_values(con, "transitions", TRANSITION_COLUMNS, _transitions(batch.events))
