"""The read models, one module each, and the set the projector applies by default."""

from __future__ import annotations

from .alerts import AlertProjection
from .base import Batch, ErrorSink, Projection, RejectedEvent, TableDoc
from .breakers import breakers_projection
from .budgets import budgets_projection
from .cache_entries import CacheEntryProjection
from .entity import REPLAY_CACHE_ROWS, EntityProjection, EntitySpec
from .gates import gates_projection
from .patches import patches_projection
from .prices import ModelProjection
from .queues import queues_projection
from .reservations import ReservationProjection
from .routing import RoutingProjection
from .runs import runs_projection
from .tasks import TaskProjection
from .transitions import TransitionProjection
from .usage import UsageProjection
from .workers import workers_projection
from .workstreams import workstreams_projection

__all__ = [
    "REPLAY_CACHE_ROWS",
    "Batch",
    "EntityProjection",
    "EntitySpec",
    "ErrorSink",
    "Projection",
    "RejectedEvent",
    "TableDoc",
    "default_projections",
]


def default_projections(cache_rows: int | None = None) -> list[Projection]:
    """Returns every read model, runs before tasks (tasks recount their runs' tasks);
    ``cache_rows`` bounds each entity table's cache of rows (None: its default)."""
    projections: list[Projection] = [
        runs_projection(),
        workstreams_projection(),
        workers_projection(),
        TaskProjection(),
        budgets_projection(),
        ModelProjection(),
        breakers_projection(),
        patches_projection(),
        gates_projection(),
        queues_projection(),
        ReservationProjection(),
        UsageProjection(),
        RoutingProjection(),
        CacheEntryProjection(),
        TransitionProjection(),
        AlertProjection(),
    ]
    if cache_rows is not None:
        for projection in projections:
            if isinstance(projection, EntityProjection):
                projection.cache_rows = cache_rows
    return projections
