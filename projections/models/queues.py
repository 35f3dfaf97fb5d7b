"""The ``queues`` read model: one row per work kind with a queue setting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.columns import Col, ColType
from projections.decode import Event

from .entity import EntityProjection, EntitySpec, Row

__all__ = ["QUEUES", "queues_projection"]


def _limit(row: Mapping[str, Any], event: Event) -> Row:
    # Written even when null: the limit may be lifted.
    limit = event.data.get("max_running")
    return {"max_running": None if limit is None else ColType.INT.convert(limit)}


QUEUES = EntitySpec(
    name="queues",
    aggregate="queue",
    key="queue_id",
    doc="One row per work kind configured with queue.configure: its limit over all runs.",
    columns=(
        Col("queue_id", ColType.TEXT, doc="the queue aggregate's id (the kind, escaped)"),
        Col("kind", ColType.TEXT, doc="the work kind"),
        Col("state", ColType.TEXT, doc="configured"),
        Col("max_running", ColType.INT, doc="at most this many leased tasks of the kind "
            "(null: no limit)"),
    ),
    copy={"kind": "kind"},
    hooks={"QueueConfigured": _limit},
)


def queues_projection() -> EntityProjection:
    """Returns the queues projection."""
    return EntityProjection(QUEUES)
