"""The ``workers`` read model: one row per worker, its liveness and the tasks it holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.columns import Col, ColType
from projections.decode import Event

from .entity import EntityProjection, EntitySpec, Row

__all__ = ["WORKERS", "workers_projection"]


def _held(row: Mapping[str, Any]) -> list[str]:
    return list(row["active_task_ids"] or [])


def _assigned(row: Mapping[str, Any], event: Event) -> Row:
    task_id = ColType.TEXT.convert(event.data["task_id"])
    held = _held(row)
    if task_id not in held:
        held.append(task_id)
    return {"active_task_ids": held, "active_tasks": len(held)}


def _released(row: Mapping[str, Any], event: Event) -> Row:
    task_id = ColType.TEXT.convert(event.data["task_id"])
    held = [t for t in _held(row) if t != task_id]
    return {"active_task_ids": held, "active_tasks": len(held)}


def _lost(row: Mapping[str, Any], event: Event) -> Row:
    # A lost worker's slots are freed at once; its tasks expire on their own events.
    return {"active_task_ids": [], "active_tasks": 0}


WORKERS = EntitySpec(
    name="workers",
    aggregate="worker",
    key="worker_id",
    doc="One row per worker: state, kinds, capacity, last heartbeat and the tasks it holds.",
    columns=(
        Col("worker_id", ColType.TEXT, doc="the worker's id"),
        Col("state", ColType.TEXT, doc="idle, busy, draining, lost or offline"),
        Col("kinds", ColType.TEXT_LIST, doc="work kinds it serves"),
        Col("capacity", ColType.INT, doc="tasks it may hold at once"),
        Col("active_tasks", ColType.INT, 0, "tasks it holds now"),
        Col("active_task_ids", ColType.TEXT_LIST, doc="ids of the tasks it holds now"),
        Col("last_heartbeat_at", ColType.TIME, doc="its latest sign of life"),
        Col("registered_at", ColType.TIME, doc="when it last registered"),
        Col("lost_at", ColType.TIME, doc="when it was last declared lost"),
    ),
    copy={
        "kinds": "kinds", "capacity": "capacity", "at": "last_heartbeat_at",
        "last_heartbeat_at": "last_heartbeat_at",
    },
    stamps={"WorkerRegistered": "registered_at", "WorkerLost": "lost_at"},
    hooks={"WorkerTaskAssigned": _assigned, "WorkerTaskReleased": _released, "WorkerLost": _lost},
)


def workers_projection() -> EntityProjection:
    """Returns the workers projection."""
    return EntityProjection(WORKERS)
