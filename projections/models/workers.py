"""The ``workers`` read model: one row per worker, its liveness and the tasks it holds.

What a worker holds is not an event of the worker: it is its tasks' live leases,
recounted from the ``tasks`` rows (``derived.recount_workers``).
"""

from __future__ import annotations

import duckdb

from projections.columns import Col, ColType

from .base import ErrorSink
from .derived import recount_workers
from .entity import EntityProjection, EntitySpec, Row

__all__ = ["WORKERS", "workers_projection"]


WORKERS = EntitySpec(
    name="workers",
    aggregate="worker",
    key="worker_id",
    doc="One row per worker: state, kinds, capacity, last heartbeat and the tasks it holds.",
    columns=(
        Col("worker_id", ColType.TEXT, doc="the worker's id"),
        Col("state", ColType.TEXT, doc="idle, busy (holding a task), draining, lost or offline"),
        Col("kinds", ColType.TEXT_LIST, doc="work kinds it serves"),
        Col("capacity", ColType.INT, doc="tasks it may hold at once"),
        Col("active_tasks", ColType.INT, 0, "tasks it holds now: its live leases",
            derived=True),
        Col("active_task_ids", ColType.TEXT_LIST, doc="ids of the tasks it holds now",
            derived=True),
        Col("last_heartbeat_at", ColType.TIME, doc="its latest sign of life"),
        Col("registered_at", ColType.TIME, doc="when it last registered"),
        Col("lost_at", ColType.TIME, doc="when it was last declared lost"),
    ),
    copy={
        "kinds": "kinds", "capacity": "capacity", "at": "last_heartbeat_at",
        "last_heartbeat_at": "last_heartbeat_at",
    },
    stamps={"WorkerRegistered": "registered_at", "WorkerLost": "lost_at"},
)


class WorkerProjection(EntityProjection):
    """Workers, with what they hold derived from their tasks' live leases."""

    def __init__(self) -> None:
        super().__init__(WORKERS)

    def after_write(self, con: duckdb.DuckDBPyConnection, rows: dict[str, Row],
                    sink: ErrorSink) -> None:
        """Recounts the held tasks of every worker the batch touched."""
        recount_workers(con, rows)


def workers_projection() -> EntityProjection:
    """Returns the workers projection."""
    return WorkerProjection()
