"""Events of the Worker aggregate: a process that claims tasks of some kinds."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, Kind
from events.ids import Id

__all__ = [
    "WorkerBecameIdle",
    "WorkerDeregistered",
    "WorkerDraining",
    "WorkerHeartbeatReceived",
    "WorkerLost",
    "WorkerRegistered",
    "WorkerTaskAssigned",
    "WorkerTaskReleased",
]


class _WorkerEvent(DomainEvent):
    aggregate: ClassVar[str] = "worker"

    worker_id: Id


class WorkerRegistered(_WorkerEvent):
    """The worker (re)joined, ``idle``, serving ``kinds`` with ``capacity`` slots."""

    kinds: list[Kind] = Field(default_factory=list)
    capacity: int = Field(ge=1, le=1000)
    at: datetime


class WorkerHeartbeatReceived(_WorkerEvent):
    """The worker is alive at ``at``; a ``lost`` worker is back (``idle``)."""

    at: datetime


class WorkerTaskAssigned(_WorkerEvent):
    """The worker holds one more task (appended with the task's ``TaskLeased``)."""

    task_id: Id


class WorkerTaskReleased(_WorkerEvent):
    """The worker no longer holds the task (it ended, failed, expired or was cancelled)."""

    task_id: Id


class WorkerBecameIdle(_WorkerEvent):
    """A busy worker released its last task."""


class WorkerDraining(_WorkerEvent):
    """The worker takes no new tasks; it goes ``offline`` when its last task is released."""


class WorkerDeregistered(_WorkerEvent):
    """The worker left; it is ``offline`` until it registers again."""


class WorkerLost(_WorkerEvent):
    """The worker stopped heartbeating; its slots are freed and ``task_ids`` must expire."""

    task_ids: list[Id] = Field(default_factory=list)
    last_heartbeat_at: datetime | None = None
