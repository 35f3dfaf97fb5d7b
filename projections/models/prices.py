"""The ``models`` and ``model_prices`` read models: each model's price history with effective dates.

A price applies from its ``effective_from`` on; a later ``ModelPriceSet`` with the same
``effective_from`` corrects that entry, so ``model_prices`` is keyed by both. The
``models`` row shows the entry with the latest ``effective_from``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event, parse_time

from .base import ErrorSink, TableDoc, upsert_rows
from .entity import EntityProjection, EntitySpec, Row

__all__ = ["CACHE_PRICE_COLUMNS", "MODELS", "MODEL_PRICE_COLUMNS", "ModelProjection"]


def _price(row: Mapping[str, Any], event: Event) -> Row:
    data = event.data
    entry = {
        "input_usd_per_mtok": ColType.MONEY.convert(data["input_usd_per_mtok"]),
        "output_usd_per_mtok": ColType.MONEY.convert(data["output_usd_per_mtok"]),
        "cached_input_usd_per_mtok": _cache_price(data, "cached_input_usd_per_mtok"),
        "cache_write_usd_per_mtok": _cache_price(data, "cache_write_usd_per_mtok"),
        "effective_from": ColType.TIME.convert(data["effective_from"]),
    }
    current = row.get("effective_from")
    if current is not None and parse_time(entry["effective_from"]) < parse_time(current):
        return {"price_entries": row["price_entries"] + 1}
    return entry | {"price_entries": row["price_entries"] + 1}


def _cache_price(data: Mapping[str, Any], name: str) -> Any:
    # Without a price of its own, cached input is billed at the input price.
    value = data.get(name)
    return ColType.MONEY.convert(data["input_usd_per_mtok"] if value is None else value)


CACHE_PRICE_COLUMNS = (
    Col("cached_input_usd_per_mtok", ColType.MONEY,
        doc="USD per million input tokens read from the prompt cache"),
    Col("cache_write_usd_per_mtok", ColType.MONEY,
        doc="USD per million input tokens written to the prompt cache"),
)

def _quota(row: Mapping[str, Any], event: Event) -> Row:
    # Written even when null: a later model.set_quota may lift a bound.
    tokens, calls, cost = (event.data.get(name) for name in (
        "max_tokens_per_day", "max_requests_per_day", "max_cost_usd_per_day"))
    return {
        "quota_tokens_per_day": None if tokens is None else ColType.BIGINT.convert(tokens),
        "quota_requests_per_day": None if calls is None else ColType.BIGINT.convert(calls),
        "quota_cost_usd_per_day": None if cost is None else ColType.MONEY.convert(cost),
    }


MODELS = EntitySpec(
    name="models",
    aggregate="model",
    key="model_id",
    doc="One row per model: provider and the price with the latest effective date.",
    columns=(
        Col("model_id", ColType.TEXT, doc="the model aggregate's id (the name, escaped)"),
        Col("model", ColType.TEXT, doc="the model's name as users write it"),
        Col("provider", ColType.TEXT, doc="who serves it"),
        Col("state", ColType.TEXT, doc="active"),
        Col("input_usd_per_mtok", ColType.MONEY, doc="USD per million input tokens"),
        Col("output_usd_per_mtok", ColType.MONEY, doc="USD per million output tokens"),
        *CACHE_PRICE_COLUMNS,
        Col("effective_from", ColType.TIME, doc="when that price applies from"),
        Col("price_entries", ColType.INT, 0, "ModelPriceSet events so far"),
        Col("quota_tokens_per_day", ColType.BIGINT, doc="daily token quota (null: none)"),
        Col("quota_requests_per_day", ColType.BIGINT, doc="daily call quota (null: none)"),
        Col("quota_cost_usd_per_day", ColType.MONEY, doc="daily cost quota (null: none)"),
    ),
    copy={"model": "model", "provider": "provider"},
    hooks={"ModelPriceSet": _price, "ModelQuotaSet": _quota},
)

MODEL_PRICE_COLUMNS = (
    Col("model_id", ColType.TEXT, doc="the model aggregate's id"),
    Col("model", ColType.TEXT, doc="the model's name"),
    Col("provider", ColType.TEXT, doc="who serves it"),
    Col("effective_from", ColType.TIME, doc="the price applies from this instant on"),
    Col("input_usd_per_mtok", ColType.MONEY, doc="USD per million input tokens"),
    Col("output_usd_per_mtok", ColType.MONEY, doc="USD per million output tokens"),
    *CACHE_PRICE_COLUMNS,
    Col("set_at", ColType.TIME, doc="when this entry was (last) set"),
    Col("seq", ColType.BIGINT, doc="stream sequence of the event that set it"),
)


class ModelProjection(EntityProjection):
    """Models, plus one ``model_prices`` row per (model, effective_from)."""

    def __init__(self) -> None:
        super().__init__(MODELS)
        self._entries: dict[tuple[str, Any], Row] = {}

    def tables(self) -> tuple[TableDoc, ...]:
        """Returns the models and model_prices tables."""
        prices = TableDoc("model_prices", "Price history: one row per model and effective date "
                          "(a correction replaces the entry).", MODEL_PRICE_COLUMNS,
                          ("model_id", "effective_from"))
        return (*super().tables(), prices)

    def fold(self, rows: dict[str, Row], events: list[Event], sink: ErrorSink) -> dict[str, Row]:
        """Folds the models and remembers the price entries this batch sets."""
        self._entries = {}
        changed = super().fold(rows, events, sink)
        rejected = {r.seq for r in sink.rejected if r.projection == self.name}
        for event in events:
            if event.type == "ModelPriceSet" and event.seq not in rejected:
                self._remember_price(changed[event.aggregate_id], event)
        return changed

    def _remember_price(self, model: Row, event: Event) -> None:
        entry = _price({"effective_from": None, "price_entries": 0}, event)
        self._entries[(event.aggregate_id, entry["effective_from"])] = entry | {
            "model_id": event.aggregate_id, "model": model["model"],
            "provider": event.data.get("provider") or model["provider"],
            "set_at": event.occurred_at, "seq": event.seq,
        }

    def after_write(self, con: duckdb.DuckDBPyConnection, rows: dict[str, Row],
                    sink: ErrorSink) -> None:
        """Writes the price entries, a correction replacing its entry."""
        upsert_rows(con, "model_prices", MODEL_PRICE_COLUMNS, list(self._entries.values()),
                    ("model_id", "effective_from"))
        self._entries = {}
