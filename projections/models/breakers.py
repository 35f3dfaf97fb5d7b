"""The ``breakers`` read model: one row per circuit breaker, shared by every process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.columns import Col, ColType
from projections.decode import Event

from .entity import EntityProjection, EntitySpec, Row

__all__ = ["BREAKERS", "breakers_projection"]


def _opened(row: Mapping[str, Any], event: Event) -> Row:
    # Reopened by a failed probe: that probe is over, as the breaker aggregate says.
    return {"opens": row["opens"] + 1, "probe_id": None, "probe_deadline": None}


def _cleared(row: Mapping[str, Any], event: Event) -> Row:
    return {"consecutive_failures": 0}


def _closed(row: Mapping[str, Any], event: Event) -> Row:
    return {"consecutive_failures": 0, "open_until": None, "probe_id": None,
            "probe_deadline": None, "is_forced": False}


def _forced_open(row: Mapping[str, Any], event: Event) -> Row:
    # Written even when null: forced open with no deadline lasts until force_close.
    until = event.data.get("until")
    return {"opens": row["opens"] + 1, "is_forced": True, "forced_reason": event.data.get(
        "reason"), "open_until": ColType.TIME.convert(until) if until else None,
        "probe_id": None, "probe_deadline": None}


def _forced_closed(row: Mapping[str, Any], event: Event) -> Row:
    return _closed(row, event) | {"forced_reason": event.data.get("reason")}


def _half_opened(row: Mapping[str, Any], event: Event) -> Row:
    return {"is_forced": False}


BREAKERS = EntitySpec(
    name="breakers",
    aggregate="breaker",
    key="breaker_id",
    doc="One row per circuit breaker: state, failure count, when it opened and until when.",
    columns=(
        Col("breaker_id", ColType.TEXT, doc="the breaker's key (a provider, a model, ...)"),
        Col("state", ColType.TEXT, doc="closed, open or half_open"),
        Col("failure_threshold", ColType.INT, doc="consecutive failures that open it"),
        Col("cooldown_s", ColType.DOUBLE, doc="how long it stays open"),
        Col("consecutive_failures", ColType.INT, 0, "failures in a row so far"),
        Col("last_error_class", ColType.TEXT, doc="class of the latest failure"),
        Col("opens", ColType.BIGINT, 0, "how often it opened"),
        Col("opened_at", ColType.TIME, doc="when it last opened"),
        Col("open_until", ColType.TIME, doc="when an open breaker lets a probe through"),
        Col("half_opened_at", ColType.TIME, doc="when it last went half-open"),
        Col("probe_id", ColType.TEXT, doc="the one probe a half-open breaker lets through"),
        Col("probe_deadline", ColType.TIME, doc="until when that probe may call"),
        Col("closed_at", ColType.TIME, doc="when it last closed (or was reset)"),
        Col("is_forced", ColType.BOOL, False, "forced open by an operator (breaker.force_open)"),
        Col("forced_reason", ColType.TEXT, doc="the operator's reason for the last force_open "
            "or force_close"),
    ),
    copy={
        "failure_threshold": "failure_threshold", "cooldown_s": "cooldown_s",
        "consecutive_failures": "consecutive_failures", "error_class": "last_error_class",
        "until": "open_until", "probe_id": "probe_id", "probe_deadline": "probe_deadline",
    },
    stamps={
        "BreakerOpened": "opened_at",
        "BreakerHalfOpened": "half_opened_at",
        "BreakerClosed": "closed_at",
        "BreakerReset": "closed_at",
        "BreakerForcedOpen": "opened_at",
        "BreakerForcedClosed": "closed_at",
    },
    hooks={
        "BreakerOpened": _opened,
        "BreakerSuccessRecorded": _cleared,
        "BreakerClosed": _closed,
        "BreakerReset": _closed,
        "BreakerForcedOpen": _forced_open,
        "BreakerForcedClosed": _forced_closed,
        "BreakerHalfOpened": _half_opened,
    },
)


def breakers_projection() -> EntityProjection:
    """Returns the breakers projection."""
    return EntityProjection(BREAKERS)
