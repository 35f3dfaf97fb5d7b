"""Commands of the Worker aggregate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import Command, Kind
from events.ids import Id

__all__ = [
    "DeregisterWorker",
    "DrainWorker",
    "HeartbeatWorker",
    "MarkWorkerLost",
    "RegisterWorker",
]


class _WorkerCommand(Command):
    aggregate: ClassVar[str] = "worker"
    id_field: ClassVar[str] = "worker_id"

    worker_id: Id


class RegisterWorker(_WorkerCommand):
    """Register a worker, ``idle``; an ``offline`` or ``lost`` worker registers again."""

    subject: ClassVar[str] = "worker.register"
    kinds: list[Kind] = Field(default_factory=list, max_length=64)
    capacity: int = Field(default=1, ge=1, le=1000)


class HeartbeatWorker(_WorkerCommand):
    """Report the worker alive; a ``lost`` worker comes back ``idle``."""

    subject: ClassVar[str] = "worker.heartbeat"


class DrainWorker(_WorkerCommand):
    """Stop giving the worker tasks; it goes ``offline`` once it holds none."""

    subject: ClassVar[str] = "worker.drain"


class DeregisterWorker(_WorkerCommand):
    """Take the worker ``offline`` now, or once its held tasks are released (``draining``)."""

    subject: ClassVar[str] = "worker.deregister"


class MarkWorkerLost(_WorkerCommand):
    """Declare a silent worker ``lost`` (issued by the lease policy)."""

    subject: ClassVar[str] = "worker.mark_lost"
