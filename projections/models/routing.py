"""The ``routing_decisions`` read model: one row per ``model.recommend`` decision."""

from __future__ import annotations

from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink, TableDoc, insert_rows

__all__ = ["ROUTING_COLUMNS", "RoutingProjection"]

ROUTING_COLUMNS = (
    Col("seq", ColType.BIGINT, doc="stream sequence of the decision"),
    Col("occurred_at", ColType.TIME, doc="when it was decided"),
    Col("recommendation_id", ColType.TEXT, doc="the decision's id"),
    Col("run_id", ColType.TEXT, doc="the run whose budget left it had to fit, if any"),
    Col("tier", ColType.TEXT, doc="the capability tier asked for, if any"),
    Col("models", ColType.TEXT_LIST, doc="the allowed models asked for (empty: any)"),
    Col("max_usd_per_mtok", ColType.MONEY, doc="the price cap asked for, if any"),
    Col("estimate_tokens", ColType.BIGINT, doc="the tokens the call was estimated at"),
    Col("model", ColType.TEXT, doc="the model chosen (null: none fit)"),
    Col("reason", ColType.TEXT, doc="why"),
    Col("considered", ColType.JSON, doc="every candidate, cheapest first, with its price, "
        "estimated cost, whether it was chosen and why (not)"),
    Col("fallbacks", ColType.TEXT_LIST, doc="the chosen model's fallback chain"),
    Col("budget_left_tokens", ColType.BIGINT, doc="tokens the run had left (null: no limit)"),
    Col("budget_left_usd", ColType.MONEY, doc="USD the run had left (null: no limit)"),
)
_FIELDS = tuple(c for c in ROUTING_COLUMNS if c.name not in ("seq", "occurred_at"))


def _row(event: Event) -> dict[str, Any]:
    data = event.data
    row: dict[str, Any] = {"seq": event.seq, "occurred_at": event.occurred_at}
    for col in _FIELDS:
        value = data.get(col.name)
        row[col.name] = None if value is None else col.type.convert(value)
    if row["recommendation_id"] is None:
        raise ValueError("ModelRecommended without recommendation_id")
    return row


class RoutingProjection:
    """Appends one row per ``ModelRecommended``."""

    name = "routing_decisions"

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the routing_decisions table."""
        return (TableDoc("routing_decisions", "One row per model.recommend decision: what "
                         "was asked, the model chosen, why, and every candidate considered.",
                         ROUTING_COLUMNS),)

    def reset(self) -> None:
        """Holds nothing between batches."""

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Appends the batch's decisions in one statement."""
        rows = []
        for event in batch.of("routing"):
            if event.type != "ModelRecommended":
                continue
            try:
                rows.append(_row(event))
            except (KeyError, TypeError, ValueError) as error:
                sink.reject(self.name, event.seq, event, error)
        insert_rows(con, "routing_decisions", ROUTING_COLUMNS, rows)
