"""The ``transitions`` read model: the audit trail, one row per event that sets a state."""

from __future__ import annotations

import duckdb

from projections.columns import Col, ColType

from .base import Batch, ErrorSink, TableDoc

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

_TRACEPARENT = r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}"

# Every column comes straight from the envelope, so the whole append is one SQL statement.
_INSERT = """
INSERT INTO transitions
SELECT seq, CAST(occurred_at AS TIMESTAMPTZ), aggregate, aggregate_id, type, from_state,
       to_state, version, command_id,
       nullif(regexp_extract(traceparent, '$TRACEPARENT', 1), ''),
       nullif(regexp_extract(traceparent, '$TRACEPARENT', 2), '')
FROM $SRC WHERE to_state IS NOT NULL
""".replace("$TRACEPARENT", _TRACEPARENT)


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
        if batch.events:
            con.execute(_INSERT.replace("$SRC", batch.staging(con)))
