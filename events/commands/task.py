"""Commands of the Task aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from events.base import Command, JsonObject, Kind, Label, ShortText
from events.catalog.task import ReportedErrorClass
from events.ids import Id

__all__ = [
    "BlockTask",
    "CancelTask",
    "ClaimTask",
    "DeferTask",
    "ExpireTaskLease",
    "FailTask",
    "HeartbeatTask",
    "QueueTask",
    "StartTask",
    "SubmitTask",
    "SucceedTask",
    "UnblockTask",
]

LeaseEpoch = Annotated[int, Field(ge=1, le=2**53)]


class _TaskCommand(Command):
    aggregate: ClassVar[str] = "task"
    id_field: ClassVar[str] = "task_id"


class _ExistingTask(_TaskCommand):
    task_id: Id


class _HolderCommand(_ExistingTask):
    """A command only the current lease holder may send."""

    worker_id: Id
    lease_epoch: LeaseEpoch


class SubmitTask(_TaskCommand):
    """Submit a task of a running run; ``task_id`` is generated when omitted.

    ``priority`` 9 is claimed first, 0 last; equal priorities go in submission order.
    """

    subject: ClassVar[str] = "task.submit"
    task_id: Id | None = None
    run_id: Id
    kind: Kind
    priority: int = Field(default=5, ge=0, le=9)
    resource: Label | None = None
    max_attempts: int = Field(default=3, ge=1, le=100)
    payload: JsonObject = Field(default_factory=dict)
    workstream_id: Id | None = None
    depends_on: list[Id] = Field(default_factory=list, max_length=64)


class ClaimTask(_TaskCommand):
    """Lease the best claimable task of ``kinds`` (default: the worker's kinds) to a worker.

    There is no ``task_id``: the service chooses the task, so ``target_id()`` is the
    worker. The reply carries ``task`` (with ``task_id`` and ``lease_epoch``) or null.
    """

    subject: ClassVar[str] = "task.claim"
    id_field: ClassVar[str] = "worker_id"
    worker_id: Id
    kinds: list[Kind] = Field(default_factory=list, max_length=64)


class StartTask(_HolderCommand):
    """The holder begins a leased task."""

    subject: ClassVar[str] = "task.start"


class HeartbeatTask(_HolderCommand):
    """The holder extends its lease by the lease's time to live."""

    subject: ClassVar[str] = "task.heartbeat"


class SucceedTask(_HolderCommand):
    """The holder finished the task successfully."""

    subject: ClassVar[str] = "task.succeed"
    result: JsonObject | None = None


class FailTask(_HolderCommand):
    """The holder's attempt failed; transient classes retry while attempts remain."""

    subject: ClassVar[str] = "task.fail"
    error_class: ReportedErrorClass
    message: ShortText = ""


class CancelTask(_ExistingTask):
    """Cancel a task that has not finished; a holder loses its lease."""

    subject: ClassVar[str] = "task.cancel"
    reason: ShortText = ""


class BlockTask(_ExistingTask):
    """Hold a waiting task back from claims."""

    subject: ClassVar[str] = "task.block"
    reason: ShortText = ""


class UnblockTask(_ExistingTask):
    """Queue a blocked task again (its dependencies must have succeeded)."""

    subject: ClassVar[str] = "task.unblock"


class DeferTask(_ExistingTask):
    """Park a queued task in ``pending`` (its workstream stopped running)."""

    subject: ClassVar[str] = "task.defer"


class QueueTask(_ExistingTask):
    """Queue a pending task (its workstream runs again)."""

    subject: ClassVar[str] = "task.queue"


class ExpireTaskLease(_ExistingTask):
    """Void a lapsed lease of ``lease_epoch`` (issued by the lease policy)."""

    subject: ClassVar[str] = "task.expire_lease"
    lease_epoch: LeaseEpoch
