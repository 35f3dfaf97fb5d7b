"""The ``runs`` read model: one row per run, with its usage totals, budget and task counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.money import ZERO_USD
from projections.columns import Col, ColType
from projections.decode import Event

from .entity import EntityProjection, EntitySpec, Row

__all__ = ["RUNS", "runs_projection"]


def _budget(row: Mapping[str, Any], event: Event) -> Row:
    budget = event.data.get("budget") or {}
    if not isinstance(budget, dict):
        raise TypeError("budget must be an object")
    tokens, cost = budget.get("max_tokens"), budget.get("max_cost_usd")
    return {
        "budget_max_tokens": None if tokens is None else ColType.BIGINT.convert(tokens),
        "budget_max_cost_usd": None if cost is None else ColType.MONEY.convert(cost),
    }


def _limit(row: Mapping[str, Any], event: Event) -> Row:
    # Written even when null: a run.configure may lift the limit.
    limit = event.data.get("max_concurrency")
    return {"max_concurrency": None if limit is None else ColType.INT.convert(limit)}


def _created(row: Mapping[str, Any], event: Event) -> Row:
    return _budget(row, event) | _limit(row, event)


def _usage(row: Mapping[str, Any], event: Event) -> Row:
    data = event.data
    totals = {
        "tokens_in": row["tokens_in"] + ColType.BIGINT.convert(data["tokens_in"]),
        "tokens_out": row["tokens_out"] + ColType.BIGINT.convert(data["tokens_out"]),
        "cost_usd": row["cost_usd"] + ColType.MONEY.convert(data["cost_usd"]),
        "cached_tokens_in": row["cached_tokens_in"] + _count(data, "cached_tokens_in"),
        "cache_write_tokens_in": (row["cache_write_tokens_in"]
                                  + _count(data, "cache_write_tokens_in")),
        "usage_count": row["usage_count"] + 1,
    }
    if row["over_budget"] or not _over(row, totals):
        return totals
    # Crossing its own budget is a fact of the usage itself (older logs also wrote
    # RunBudgetExceeded, which says the same).
    return totals | {"over_budget": True, "over_budget_at": event.occurred_at}


def _count(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    return 0 if value is None else ColType.BIGINT.convert(value)


def _over(row: Mapping[str, Any], totals: Mapping[str, Any]) -> bool:
    tokens, cost = row["budget_max_tokens"], row["budget_max_cost_usd"]
    used = totals["tokens_in"] + totals["tokens_out"]
    return (tokens is not None and used > tokens) or (cost is not None
                                                      and totals["cost_usd"] > cost)


def _over_budget(row: Mapping[str, Any], event: Event) -> Row:
    if row["over_budget"]:
        return {}  # the usage that crossed it said so already
    return {"over_budget": True, "over_budget_at": event.occurred_at}


RUNS = EntitySpec(
    name="runs",
    aggregate="run",
    key="run_id",
    doc="One row per run: lifecycle, labels, budget, usage totals and its tasks by state.",
    columns=(
        Col("run_id", ColType.TEXT, doc="the run's id"),
        Col("name", ColType.TEXT, doc="its name"),
        Col("state", ColType.TEXT, doc="pending, running, succeeded, failed or cancelled"),
        Col("labels", ColType.JSON, doc="labels given at creation ({name: value})"),
        Col("started_at", ColType.TIME, doc="when it started"),
        Col("ended_at", ColType.TIME, doc="when it succeeded, failed or was cancelled"),
        Col("reason", ColType.TEXT, doc="why it failed or was cancelled"),
        Col("tokens_in", ColType.BIGINT, 0, "input tokens of all its usage"),
        Col("tokens_out", ColType.BIGINT, 0, "output tokens of all its usage"),
        Col("cost_usd", ColType.MONEY, ZERO_USD,
            "cost of all its usage, at the prices frozen on it (exact)"),
        Col("usage_count", ColType.BIGINT, 0, "number of UsageRecorded events"),
        Col("budget_id", ColType.TEXT, doc="the shared budget it draws on, if any"),
        Col("session_id", ColType.TEXT, doc="the session it belongs to, if any"),
        Col("budget_max_tokens", ColType.BIGINT, doc="its own token limit (null: none)"),
        Col("budget_max_cost_usd", ColType.MONEY, doc="its own cost limit (null: none)"),
        Col("over_budget", ColType.BOOL, False, "whether its usage crossed its budget"),
        Col("max_concurrency", ColType.INT, doc="at most this many of its tasks leased at once"),
        Col("auto_end", ColType.BOOL, False, "whether it ends by itself when its work is done"),
        Col("over_budget_at", ColType.TIME, doc="when it crossed its budget"),
        Col("cached_tokens_in", ColType.BIGINT, 0, "input tokens read from the prompt cache"),
        Col("cache_write_tokens_in", ColType.BIGINT, 0,
            "input tokens written to the prompt cache"),
        Col("tasks_total", ColType.BIGINT, 0, "number of its tasks", derived=True),
        Col("task_counts", ColType.COUNTS, doc="its tasks by state, e.g. task_counts['running']",
            derived=True),
    ),
    copy={"name": "name", "labels": "labels", "reason": "reason", "budget_id": "budget_id",
          "auto_end": "auto_end", "session_id": "session_id"},
    stamps={
        "RunStarted": "started_at",
        "RunSucceeded": "ended_at",
        "RunFailed": "ended_at",
        "RunCancelled": "ended_at",
    },
    hooks={"RunCreated": _created, "UsageRecorded": _usage, "RunBudgetExceeded": _over_budget,
           "RunConfigured": _limit},
)


def runs_projection() -> EntityProjection:
    """Returns the runs projection."""
    return EntityProjection(RUNS)
