"""The ``budgets`` read model: one row per shared budget, its bounds and what runs spent on it.

Spending is its runs' usage, recounted from the ``usage`` and ``runs`` rows
(``derived.recount_budgets``); ``BudgetCharged`` events of older logs are not needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from events.money import ZERO_USD
from projections.columns import Col, ColType
from projections.decode import Event

from .base import ErrorSink
from .derived import recount_budgets
from .entity import EntityProjection, EntitySpec, Row

__all__ = ["BUDGETS", "budgets_projection"]


def _optional(convert: ColType, value: Any) -> Any:
    return None if value is None else convert.convert(value)


def _bounds(row: Mapping[str, Any], event: Event) -> Row:
    # An absent bound means unlimited, so it is written even when null.
    return {
        "max_cost_usd": _optional(ColType.MONEY, event.data.get("max_cost_usd")),
        "max_tokens": _optional(ColType.BIGINT, event.data.get("max_tokens")),
    }


def _created(row: Mapping[str, Any], event: Event) -> Row:
    # The period is the budget's own, set when it is created: a BudgetThresholdCrossed
    # names the day it crossed in a field of the same name, which a copy would take.
    return _bounds(row, event) | {"period": _optional(ColType.TEXT, event.data.get("period"))}


BUDGETS = EntitySpec(
    name="budgets",
    aggregate="budget",
    key="budget_id",
    doc="One row per budget: scope, bounds, spending so far and exhaustion (shared budgets, "
        "all days together); budget_ledger has settled and reserved amounts for every scope "
        "and period (a day of a daily budget, a session, a run).",
    columns=(
        Col("budget_id", ColType.TEXT, doc="the budget's id"),
        Col("name", ColType.TEXT, doc="its name"),
        Col("state", ColType.TEXT, doc="active, exhausted or closed: a shared budget's "
            "spending against its bounds (a daily one, whose bounds hold for each day, and a "
            "session, run or day budget stay active here: see budget_ledger)"),
        Col("max_cost_usd", ColType.MONEY, doc="cost bound (null: unlimited)"),
        Col("max_tokens", ColType.BIGINT, doc="token bound (null: unlimited)"),
        Col("scope", ColType.TEXT, "shared", "shared (runs naming it), run, session or day"),
        Col("period", ColType.TEXT, doc="day: the bounds apply to each day (else null)"),
        Col("time_zone", ColType.TEXT, "UTC", "the zone a daily budget's days are in"),
        Col("run_id", ColType.TEXT, doc="the run a run budget bounds"),
        Col("session_id", ColType.TEXT, doc="the session a session budget bounds"),
        Col("spent_tokens", ColType.BIGINT, 0, "tokens its runs used so far", derived=True),
        Col("spent_cost_usd", ColType.MONEY, ZERO_USD, "cost of its runs' usage so far",
            derived=True),
        Col("charges", ColType.BIGINT, 0, "number of usage records of its runs", derived=True),
        Col("exhausted_at", ColType.TIME, doc="when spending reached a bound", derived=True),
        Col("closed_at", ColType.TIME, doc="when it was closed"),
    ),
    copy={"name": "name", "scope": "scope", "time_zone": "time_zone",
          "run_id": "run_id", "session_id": "session_id"},
    stamps={"BudgetClosed": "closed_at"},
    hooks={"BudgetCreated": _created, "BudgetRaised": _bounds},
)


class BudgetProjection(EntityProjection):
    """Budgets, with their spending derived from their runs' usage."""

    def __init__(self) -> None:
        super().__init__(BUDGETS)

    def after_write(self, con: duckdb.DuckDBPyConnection, rows: dict[str, Row],
                    sink: ErrorSink) -> None:
        """Recounts the spending of every budget the batch touched (its bounds may move)."""
        recount_budgets(con, rows)


def budgets_projection() -> EntityProjection:
    """Returns the budgets projection."""
    return BudgetProjection()
