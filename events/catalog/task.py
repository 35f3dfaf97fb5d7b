"""Events of the Task aggregate: one unit of work, leased to one worker at a time."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from events.base import DomainEvent, JsonObject, Kind, Label, ShortText
from events.ids import Id
from events.money import Usd

from .model import ModelName

__all__ = [
    "ERROR_CLASSES",
    "ErrorClass",
    "RecoveryStrategy",
    "ReportedErrorClass",
    "RetryInstruction",
    "TaskBlocked",
    "TaskCancelled",
    "TaskDeferred",
    "TaskFailed",
    "TaskHeartbeatReceived",
    "TaskLeaseExpired",
    "TaskLeased",
    "TaskPostponed",
    "TaskQueued",
    "TaskRequeued",
    "TaskRequeuedByOperator",
    "TaskRetryScheduled",
    "TaskSatisfiedFromCache",
    "TaskStarted",
    "TaskSubmitted",
    "TaskSucceeded",
    "TaskUnblocked",
]

ReportedErrorClass = Literal[
    "rate_limit",
    "timeout",
    "server_error",
    "network",
    "context_overflow",
    "invalid_request",
    "auth",
    "content_filter",
    "tool_error",
    "unknown",
]
"""Why an attempt failed, as a worker reports it on ``task.fail``.

``rate_limit`` (429), ``timeout``, ``server_error`` (5xx), ``network``: transient, retried.
``context_overflow``, ``invalid_request`` (4xx), ``auth``, ``content_filter``, ``tool_error``
and ``unknown``: retrying the same input would fail the same way, so the task fails.
"""

ErrorClass = ReportedErrorClass | Literal["lease_expired"]
"""Every failure class; ``lease_expired`` is recorded by runlog itself when a lease lapses."""

ERROR_CLASSES: tuple[str, ...] = (*get_args(ReportedErrorClass), "lease_expired")

RecoveryStrategy = Literal["backoff", "fallback", "truncate", "fail_fast", "escalate"]
"""What runlog does with a failed attempt, by its error class (services/domain/recovery.py).

``backoff``: retry after a jittered exponential delay; ``fallback``: retry on the next
model of the task's fallback chain; ``truncate``: retry with the ``truncate`` hint;
``fail_fast``: fail at once; ``escalate``: fail at once and flag it for an operator.
"""


class RetryInstruction(BaseModel):
    """What the next attempt of a retried task should do differently; its lease carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName | None = None
    """The model to call (a fallback); None: the task's own model."""
    truncate: bool = False
    """Shorten the input before calling (after ``context_overflow``)."""


class _TaskEvent(DomainEvent):
    aggregate: ClassVar[str] = "task"

    task_id: Id


class TaskSubmitted(_TaskEvent):
    """A task was submitted for a run; it starts ``queued``, or held back by ``hold``.

    ``hold`` ``blocked``: it waits for its dependencies; ``pending``: for its workstream
    to run. (Logs written before ``hold`` existed follow a submission with a separate
    ``TaskBlocked`` or ``TaskDeferred``; both read the same.)
    """

    run_id: Id
    kind: Kind
    priority: int = Field(ge=0, le=9)
    resource: Label | None = None
    max_attempts: int = Field(ge=1, le=100)
    payload: JsonObject = Field(default_factory=dict)
    workstream_id: Id | None = None
    depends_on: list[Id] = Field(default_factory=list)
    submitted_at: datetime
    hold: Literal["blocked", "pending"] | None = None
    concurrency_key: Label | None = None
    max_concurrency: int | None = Field(default=None, ge=1)
    """With ``concurrency_key``: at most this many leased tasks share the key."""
    not_before: datetime | None = None
    deferrable: bool = False
    timeout_s: float | None = Field(default=None, gt=0)
    model: ModelName | None = None
    """The model the task calls first; a ``fallback`` retry moves along its chain."""
    cache_key: Label | None = None
    """Its result is cached under this key once it succeeds."""

    def chosen_state(self) -> str:
        """``queued``, or the hold it starts in."""
        return self.hold or "queued"


class TaskDeferred(_TaskEvent):
    """A queued task waits in ``pending`` until its workstream runs."""


class TaskQueued(_TaskEvent):
    """A pending task may be claimed again."""


class TaskPostponed(_TaskEvent):
    """A queued task stays queued but is not claimed before ``not_before``."""

    not_before: datetime


class TaskRequeuedByOperator(_TaskEvent):
    """A failed task is back in the queue with fresh attempts (``task.requeue``)."""

    max_attempts: int = Field(ge=1, le=100)
    reason: ShortText = ""


class TaskBlocked(_TaskEvent):
    """The task waits on its dependencies or on something outside it."""

    reason: ShortText = ""


class TaskUnblocked(_TaskEvent):
    """The block was lifted; the task is ``queued``."""


class TaskLeased(_TaskEvent):
    """A worker holds the task until ``lease_expires_at``; only this epoch may act on it."""

    worker_id: Id
    lease_epoch: int = Field(ge=1)
    lease_expires_at: datetime
    lease_ttl_s: float = Field(gt=0)
    attempt: int = Field(ge=1)
    attempt_deadline: datetime | None = None
    """From the task's ``timeout_s``: past it, the attempt fails with ``timeout``."""
    instruction: RetryInstruction | None = None
    """What this attempt should do differently, decided when the previous one failed."""


class TaskRequeued(_TaskEvent):
    """A task whose retry time came is ``queued`` again."""


class TaskStarted(_TaskEvent):
    """The lease holder began working on the task."""

    worker_id: Id
    lease_epoch: int


class TaskHeartbeatReceived(_TaskEvent):
    """The lease holder is alive; the lease now runs until ``lease_expires_at``."""

    worker_id: Id
    lease_epoch: int
    lease_expires_at: datetime


class TaskSucceeded(_TaskEvent):
    """The task finished successfully."""

    worker_id: Id
    lease_epoch: int
    attempt: int
    result: JsonObject | None = None


class TaskRetryScheduled(_TaskEvent):
    """An attempt failed transiently; the task waits in ``retry_wait`` until ``retry_at``.

    ``lease_epoch`` is set when runlog itself ended the attempt (its lease lapsed, its
    worker was lost): that epoch is void from then on, and its holder is refused.
    """

    worker_id: Id | None = None
    attempt: int
    error_class: ErrorClass
    message: ShortText = ""
    retry_at: datetime
    lease_epoch: int | None = None
    strategy: RecoveryStrategy | None = None
    """The error class's recovery strategy that chose the retry."""
    instruction: RetryInstruction | None = None
    """What the next attempt should do differently (its lease carries it)."""


class TaskFailed(_TaskEvent):
    """The task failed for good: a permanent error, or its last attempt failed.

    ``lease_epoch`` as for ``TaskRetryScheduled``.
    """

    worker_id: Id | None = None
    attempt: int
    error_class: ErrorClass
    message: ShortText = ""
    lease_epoch: int | None = None
    strategy: RecoveryStrategy | None = None
    """``fail_fast``, ``escalate`` (an operator should look), or the retrying strategy
    whose attempts ran out."""


class TaskSatisfiedFromCache(_TaskEvent):
    """A submitted task was answered from the result cache: it starts (and ends) succeeded.

    ``source_task_id`` is the task that produced ``result``; ``tokens_saved`` and
    ``cost_saved_usd`` are what that task's usage cost, not spent again.
    """

    run_id: Id
    kind: Kind
    priority: int = Field(ge=0, le=9)
    payload: JsonObject = Field(default_factory=dict)
    workstream_id: Id | None = None
    submitted_at: datetime
    cache_key: Label
    source_task_id: Id
    result: JsonObject | None = None
    tokens_saved: int = Field(ge=0)
    cost_saved_usd: Usd


class TaskLeaseExpired(_TaskEvent):
    """The holder missed its lease; its epoch is void and the attempt counts as failed.

    Written by older versions, always followed in the same append by
    ``TaskRetryScheduled`` or ``TaskFailed`` with ``error_class`` ``lease_expired``;
    an expiry is now that one event, with its ``lease_epoch``.
    """

    worker_id: Id
    lease_epoch: int
    """The epoch that expired; the task's epoch is one more from now on."""
    lease_expires_at: datetime


class TaskCancelled(_TaskEvent):
    """The task was cancelled; a holder (``worker_id``) must stop and loses its lease."""

    reason: ShortText = ""
    worker_id: Id | None = None
