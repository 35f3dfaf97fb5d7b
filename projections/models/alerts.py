"""The ``alerts`` read model: what someone should look at, one row per event that says so.

A budget crossing an alert threshold (``BudgetThresholdCrossed``, once per threshold
and period), a breaker opening (by itself or forced open by an operator), a worker
declared lost, a task failing for good (a dead letter). Rows are appended in stream
order; the log decides, the table only lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import Batch, ErrorSink, TableDoc, insert_rows

__all__ = ["ALERT_COLUMNS", "AlertProjection"]

ALERT_COLUMNS = (
    Col("seq", ColType.BIGINT, doc="stream sequence of the event"),
    Col("occurred_at", ColType.TIME, doc="when it happened"),
    Col("kind", ColType.TEXT, doc="budget_threshold, breaker_opened, worker_lost or "
        "dead_letter"),
    Col("severity", ColType.TEXT, doc="warning, or critical (a bound reached, a breaker "
        "open, a worker lost, a dead letter)"),
    Col("aggregate_id", ColType.TEXT, doc="the budget, breaker, worker or task"),
    Col("detail", ColType.TEXT, doc="one line for people"),
    Col("threshold", ColType.INT, doc="budget_threshold: the percentage crossed"),
    Col("period", ColType.TEXT, doc="budget_threshold: the day of a daily budget, else empty"),
)


def _budget(event: Event) -> tuple[str, str, str]:
    data = event.data
    threshold = int(data["threshold"])
    period = f" on {data['period']}" if data.get("period") else ""
    return ("budget_threshold", "critical" if threshold >= 100 else "warning",
            f"budget {event.aggregate_id} reached {threshold}%{period}: {data['tokens']} "
            f"tokens, ${data['cost_usd']} settled")


def _breaker(event: Event) -> tuple[str, str, str]:
    data = event.data
    cause = f" ({data['error_class']})" if data.get("error_class") else ""
    return ("breaker_opened", "critical",
            f"breaker {event.aggregate_id} opened after {data['consecutive_failures']} "
            f"failures{cause}, until {data['until']}")


def _forced(event: Event) -> tuple[str, str, str]:
    data = event.data
    until = f"until {data['until']}" if data.get("until") else "until forced closed"
    reason = f": {data['reason']}" if data.get("reason") else ""
    return ("breaker_opened", "critical",
            f"breaker {event.aggregate_id} forced open by an operator {until}{reason}")


def _worker(event: Event) -> tuple[str, str, str]:
    tasks = event.data.get("task_ids") or []
    return ("worker_lost", "critical",
            f"worker {event.aggregate_id} lost, holding {len(tasks)} task(s)")


def _dead_letter(event: Event) -> tuple[str, str, str]:
    data = event.data
    return ("dead_letter", "critical",
            f"task {event.aggregate_id} failed for good after attempt {data['attempt']}: "
            f"{data['error_class']} {data.get('message') or ''}".rstrip())


_ALERTS: dict[str, Callable[[Event], tuple[str, str, str]]] = {
    "BudgetThresholdCrossed": _budget, "BreakerOpened": _breaker,
    "BreakerForcedOpen": _forced, "WorkerLost": _worker, "TaskFailed": _dead_letter,
}


class AlertProjection:
    """Appends one alert row per alerting event."""

    name = "alerts"

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the alerts table."""
        return (TableDoc("alerts", "What needs attention: budget thresholds crossed (once per "
                         "threshold and period), breakers opened, workers lost, dead letters.",
                         ALERT_COLUMNS),)

    def reset(self) -> None:
        """Holds nothing between batches."""

    def apply(self, con: duckdb.DuckDBPyConnection, batch: Batch, sink: ErrorSink) -> None:
        """Appends the batch's alerts in one statement."""
        rows: list[dict[str, Any]] = []
        for event in batch.events:
            describe = _ALERTS.get(event.type)
            if describe is None:
                continue
            try:
                kind, severity, detail = describe(event)
            except (KeyError, TypeError, ValueError) as error:
                sink.reject(self.name, event.seq, event, error)
                continue
            rows.append({"seq": event.seq, "occurred_at": event.occurred_at, "kind": kind,
                         "severity": severity, "aggregate_id": event.aggregate_id,
                         "detail": detail, "threshold": event.data.get("threshold"),
                         "period": event.data.get("period")})
        insert_rows(con, "alerts", ALERT_COLUMNS, rows)
