"""Commands of the Task aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from events.base import Command, JsonObject, Kind, Label, Limit, Moment, ShortText
from events.catalog.task import ReportedErrorClass
from events.commands.model import EscapableModelName
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
    "RequeueTask",
    "StartTask",
    "SubmitTask",
    "SucceedTask",
    "TimeOutTask",
    "UnblockTask",
]

LeaseEpoch = Annotated[int, Field(ge=1, le=2**53)]
TimeoutS = Annotated[float, Field(gt=0, le=7 * 24 * 3600, allow_inf_nan=False)]



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
    ``concurrency_key`` with ``max_concurrency``: at most that many leased tasks share the
    key. ``resource``: at most one leased task per resource. ``not_before``: not claimed
    before then. ``deferrable``: waits while its run's budget is spent instead of being
    refused. ``timeout_s``: an attempt past it (from its lease) fails with ``timeout``.
    ``model``: the model it calls first (a ``fallback`` retry moves along its chain).
    ``cache_key``: answered from the result cache when a task with that key succeeded
    within the run's cache TTL (a run with ``cache_results`` keys every task by default).
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
    concurrency_key: Label | None = None
    max_concurrency: Limit | None = None
    not_before: Moment | None = None
    deferrable: bool = False
    timeout_s: TimeoutS | None = None
    model: EscapableModelName | None = None
    cache_key: Label | None = None

    @model_validator(mode="after")
    def _key_and_limit_together(self) -> Self:
        if (self.concurrency_key is None) != (self.max_concurrency is None):
            raise ValueError("concurrency_key and max_concurrency go together")
        return self


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
    """The holder's attempt failed; its error class's recovery strategy decides what follows.

    ``retry_after_s``: the provider's ``Retry-After`` (a ``rate_limit``): the retry waits
    at least that long.
    """

    subject: ClassVar[str] = "task.fail"
    error_class: ReportedErrorClass
    message: ShortText = ""
    retry_after_s: float | None = Field(default=None, ge=0, le=86_400, allow_inf_nan=False)


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
    """Push a queued task back: it is not claimed before ``not_before``."""

    subject: ClassVar[str] = "task.defer"
    not_before: Moment


class QueueTask(_ExistingTask):
    """Queue a pending task (its workstream runs again)."""

    subject: ClassVar[str] = "task.queue"


class ExpireTaskLease(_ExistingTask):
    """Void a lapsed lease of ``lease_epoch`` (issued by the lease policy)."""

    subject: ClassVar[str] = "task.expire_lease"
    lease_epoch: LeaseEpoch


class TimeOutTask(_ExistingTask):
    """Fail the attempt of ``lease_epoch`` that ran past its ``timeout_s`` (the timeout policy)."""

    subject: ClassVar[str] = "task.time_out"
    lease_epoch: LeaseEpoch


class RequeueTask(_ExistingTask):
    """An operator sends a failed task back to the queue, with fresh attempts."""

    subject: ClassVar[str] = "task.requeue"
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    reason: ShortText = ""
