"""The ``usage`` read model: one row per ``UsageRecorded`` event, its price frozen on it."""

from __future__ import annotations

from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink, TableDoc, insert_rows
from .derived import charge_budgets, recount_budgets

__all__ = ["USAGE_COLUMNS", "UsageProjection"]

USAGE_COLUMNS = (
    Col("seq", ColType.BIGINT, doc="stream sequence of the event"),
    Col("occurred_at", ColType.TIME, doc="when the usage was recorded"),
    Col("run_id", ColType.TEXT, doc="the run that spent it"),
    Col("task_id", ColType.TEXT, doc="the task, if any"),
    Col("worker_id", ColType.TEXT, doc="the worker, if any"),
    Col("model", ColType.TEXT, doc="the model called"),
    Col("provider", ColType.TEXT, doc="who served it"),
    Col("tokens_in", ColType.BIGINT, doc="input tokens"),
    Col("tokens_out", ColType.BIGINT, doc="output tokens"),
    Col("cost_usd", ColType.MONEY, doc="its cost at the prices in effect when it was recorded"),
    Col("outcome", ColType.TEXT, doc="ok, or the error class of the call"),
    Col("latency_ms", ColType.DOUBLE, doc="the call's latency"),
    Col("input_usd_per_mtok", ColType.MONEY, doc="the input price applied"),
    Col("output_usd_per_mtok", ColType.MONEY, doc="the output price applied"),
    Col("price_effective_from", ColType.TIME, doc="effective date of the price applied"),
    Col("budget_id", ColType.TEXT, doc="the shared budget it was charged to, if any"),
    Col("cached_tokens_in", ColType.BIGINT, doc="input tokens read from the prompt cache"),
    Col("cache_write_tokens_in", ColType.BIGINT, doc="input tokens written to the prompt cache"),
    Col("cached_input_usd_per_mtok", ColType.MONEY, doc="the cache-read price applied"),
    Col("cache_write_usd_per_mtok", ColType.MONEY, doc="the cache-write price applied"),
    Col("provider_cost_usd", ColType.MONEY,
        doc="what the provider said the call cost, if it was reported"),
    Col("reservation_id", ColType.TEXT, doc="the reservation it settled, if any"),
    Col("session_id", ColType.TEXT, doc="the session of the call, if any"),
    Col("scopes", ColType.TEXT_LIST, doc="the budget ledgers it counts on (see budget_ledger)"),
)
_ZERO_COUNTS = frozenset({"cached_tokens_in", "cache_write_tokens_in"})
_FIELDS = tuple(c for c in USAGE_COLUMNS if c.name not in ("seq", "occurred_at"))
_REQUIRED = frozenset({"run_id", "model", "tokens_in", "tokens_out", "cost_usd"})


# Per field: its name, converter, whether it is required and whether null counts as 0
# (older events had no cached input), worked out once rather than per event.
_PLAN = tuple((c.name, c.type.convert, c.name in _REQUIRED, c.name in _ZERO_COUNTS)
              for c in _FIELDS)


def _row(event: Event) -> dict[str, Any]:
    data = event.data
    row: dict[str, Any] = {"seq": event.seq, "occurred_at": event.occurred_at}
    for name, convert, required, zero in _PLAN:
        value = data.get(name)
        if value is not None:
            row[name] = convert(value)
        elif required:
            raise ValueError(f"UsageRecorded without {name}")
        else:
            row[name] = 0 if zero else None
    return row


def _budgets_of(con: duckdb.DuckDBPyConnection, run_ids: set[str]) -> list[str]:
    """The shared budgets of these runs (older logs name them only on the run)."""
    found = con.execute("SELECT DISTINCT budget_id FROM runs WHERE budget_id IS NOT NULL "
                        "AND run_id IN (SELECT unnest(?))", [sorted(run_ids)]).fetchall()
    return [row[0] for row in found]


class UsageProjection:
    """Appends one usage row per ``UsageRecorded`` event."""

    name = "usage"

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the usage table."""
        return (TableDoc("usage", "One row per UsageRecorded event (tokens, cost, outcome); "
                         "the price is the one frozen on the event.", USAGE_COLUMNS),)

    def reset(self) -> None:
        """Holds nothing between batches."""

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Appends the batch's usage in one statement."""
        rows = []
        for event in batch.of("run"):
            if event.type != "UsageRecorded":
                continue
            try:
                rows.append(_row(event))
            except (KeyError, TypeError, ValueError) as error:
                sink.reject(self.name, event.seq, event, error)
        if not rows:
            return
        insert_rows(con, "usage", USAGE_COLUMNS, rows)
        recounted = _budgets_of_older_usage(con, rows)
        recount_budgets(con, recounted)
        named = [r for r in rows if r["budget_id"] and r["budget_id"] not in recounted]
        if named:
            charge_budgets(con, {r["budget_id"] for r in named}, named[0]["seq"],
                           named[-1]["seq"])


def _budgets_of_older_usage(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]
                            ) -> set[str]:
    """The shared budgets of usage rows that do not name theirs, recounted whole.

    A usage written with its ``scopes`` (every current one) names its budget itself, and
    its charge is added to the budget; only older ones leave it to the run, which costs
    a query (a millisecond or more a batch).
    """
    unnamed = {r["run_id"] for r in rows if not r["budget_id"] and r["scopes"] is None}
    return set(_budgets_of(con, unnamed)) if unnamed else set()
