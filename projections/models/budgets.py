"""The ``budgets`` read model: one row per shared budget, its bounds and what runs spent on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.columns import Col, ColType
from projections.decode import Event

from .entity import EntityProjection, EntitySpec, Row

__all__ = ["BUDGETS", "budgets_projection"]


def _optional(convert: ColType, value: Any) -> Any:
    return None if value is None else convert.convert(value)


def _bounds(row: Mapping[str, Any], event: Event) -> Row:
    # An absent bound means unlimited, so it is written even when null.
    return {
        "max_cost_usd": _optional(ColType.DOUBLE, event.data.get("max_cost_usd")),
        "max_tokens": _optional(ColType.BIGINT, event.data.get("max_tokens")),
    }


def _charged(row: Mapping[str, Any], event: Event) -> Row:
    return {
        "spent_tokens": row["spent_tokens"] + ColType.BIGINT.convert(event.data["tokens"]),
        "spent_cost_usd": row["spent_cost_usd"] + ColType.DOUBLE.convert(event.data["cost_usd"]),
        "charges": row["charges"] + 1,
    }


BUDGETS = EntitySpec(
    name="budgets",
    aggregate="budget",
    key="budget_id",
    doc="One row per shared budget: bounds, spending so far, exhaustion.",
    columns=(
        Col("budget_id", ColType.TEXT, doc="the budget's id"),
        Col("name", ColType.TEXT, doc="its name"),
        Col("state", ColType.TEXT, doc="active, exhausted or closed"),
        Col("max_cost_usd", ColType.DOUBLE, doc="cost bound (null: unlimited)"),
        Col("max_tokens", ColType.BIGINT, doc="token bound (null: unlimited)"),
        Col("spent_tokens", ColType.BIGINT, 0, "tokens charged so far"),
        Col("spent_cost_usd", ColType.DOUBLE, 0.0, "cost charged so far"),
        Col("charges", ColType.BIGINT, 0, "number of BudgetCharged events"),
        Col("exhausted_at", ColType.TIME, doc="when spending reached a bound"),
        Col("closed_at", ColType.TIME, doc="when it was closed"),
    ),
    copy={"name": "name"},
    stamps={"BudgetExhausted": "exhausted_at", "BudgetClosed": "closed_at"},
    hooks={"BudgetCreated": _bounds, "BudgetRaised": _bounds, "BudgetCharged": _charged},
)


def budgets_projection() -> EntityProjection:
    """Returns the budgets projection."""
    return EntityProjection(BUDGETS)
