"""The Task state machine: submission, leases with epochs, retries with backoff, outcomes.

A task is held by at most one worker at a time. Each lease has an epoch, one more
than the last; only the current holder with the current epoch may start, heartbeat,
succeed or fail the task. A lease is void once ``TaskLeaseExpired`` is written (its
epoch goes up then); until that event, its holder may still finish, so an expiry
never lets two workers run the same attempt.

``task.claim`` has no task id: the service picks the task with ``is_claimable`` and
``claim_order`` from its index and appends ``lease(...)`` together with the worker's
``assign(...)`` (services/domain/worker.py) in one atomic batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from events.base import Command, DomainEvent
from events.catalog.task import (
    TaskBlocked,
    TaskCancelled,
    TaskDeferred,
    TaskFailed,
    TaskHeartbeatReceived,
    TaskLeased,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetryScheduled,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    TaskUnblocked,
)
from events.commands.task import (
    BlockTask,
    CancelTask,
    ClaimTask,
    DeferTask,
    ExpireTaskLease,
    FailTask,
    HeartbeatTask,
    QueueTask,
    StartTask,
    SubmitTask,
    SucceedTask,
    UnblockTask,
)
from events.errors import ErrorCode

from .budget import BudgetState
from .checks import action_of, require_dependencies_done, require_run
from .context import Context
from .machine import DomainError, TransitionTable
from .run import RunState
from .workstream import WorkstreamState

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "BACKOFF_FACTOR",
    "DEFAULT_LEASE_TTL_S",
    "RETRYABLE",
    "TABLE",
    "SubmitFacts",
    "TaskState",
    "backoff_s",
    "claim_order",
    "decide",
    "evolve",
    "expire_lease",
    "is_claimable",
    "lease",
]

RETRYABLE = frozenset({"rate_limit", "timeout", "server_error", "network", "lease_expired"})
"""Error classes worth another attempt: the same input may well succeed later.

Every other class (``context_overflow``, ``invalid_request``, ``auth``, ...) fails the
task at once, since retrying identical input would fail identically.
"""

BACKOFF_BASE_S = 1.0
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_S = 300.0
DEFAULT_LEASE_TTL_S = 30.0

_HELD = ("leased", "running")
_ENDED = ("succeeded", "failed", "cancelled")
_OPEN = ("pending", "queued", "blocked", "retry_wait", *_HELD)

TABLE = TransitionTable(
    aggregate="task",
    states=("pending", "queued", "blocked", "leased", "running", "retry_wait", *_ENDED),
    edges={
        (None, "TaskSubmitted"): "queued",
        ("queued", "TaskDeferred"): "pending",
        ("pending", "TaskQueued"): "queued",
        ("pending", "TaskBlocked"): "blocked",
        ("queued", "TaskBlocked"): "blocked",
        ("blocked", "TaskUnblocked"): "queued",
        ("queued", "TaskLeased"): "leased",
        ("retry_wait", "TaskRequeued"): "queued",
        ("leased", "TaskStarted"): "running",
        # A worker may finish or fail without reporting the start: a quick task
        # should not pay a round trip, and the outcome is what matters.
        **{(s, "TaskSucceeded"): "succeeded" for s in _HELD},
        **{(s, "TaskRetryScheduled"): "retry_wait" for s in _HELD},
        **{(s, "TaskFailed"): "failed" for s in _HELD},
        **{(s, "TaskHeartbeatReceived"): s for s in _HELD},
        # The expiry only voids the epoch; the retry or failure that always follows
        # it in the same append decides the next state, exactly as task.fail does.
        **{(s, "TaskLeaseExpired"): s for s in _HELD},
        **{(s, "TaskCancelled"): "cancelled" for s in _OPEN},
    },
    terminal=frozenset(_ENDED),
)


@dataclass(frozen=True, slots=True)
class TaskState:
    """What the rules, the scheduler and the projections need to know about a task."""

    task_id: str
    run_id: str
    kind: str
    state: str
    submitted_at: datetime
    """With ``priority``, the claim order: older first."""
    priority: int = 5
    max_attempts: int = 3
    attempts: int = 0
    """Attempts begun (leases granted) so far."""
    worker_id: str | None = None
    """The current holder, or the last one once the lease ended."""
    lease_epoch: int = 0
    lease_expires_at: datetime | None = None
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    retry_at: datetime | None = None
    resource: str | None = None
    workstream_id: str | None = None
    depends_on: tuple[str, ...] = ()
    last_error_class: str | None = None

    @property
    def held(self) -> bool:
        """Whether a worker holds the task now."""
        return self.state in _HELD


@dataclass(frozen=True, slots=True)
class SubmitFacts:
    """What ``task.submit`` needs loaded besides the task (passed as ``ctx.related``).

    ``workstream`` is required when the command names one, ``budget`` when the run
    draws on a shared budget; a bare ``RunState`` in ``ctx.related`` also works for
    a task with neither.
    """

    run: RunState | None
    workstream: WorkstreamState | None = None
    budget: BudgetState | None = None


def backoff_s(task_id: str, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, full jitter.

    The ceiling is ``BACKOFF_BASE_S * BACKOFF_FACTOR ** (attempt - 1)``, capped at
    ``BACKOFF_CAP_S``; the delay is a fraction of it in [0, 1) taken from a hash of
    ``task_id`` and ``attempt``. Jitter spreads the retries of tasks that failed
    together (a provider's rate limit), and deriving it from a hash instead of a
    random source keeps ``decide`` pure: replaying a command decides the same delay.
    """
    exponent = min(max(attempt - 1, 0), 64)  # past the cap anyway; bounds the float
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * BACKOFF_FACTOR**exponent)
    digest = hashlib.sha256(f"{task_id}:{attempt}".encode()).digest()
    return ceiling * int.from_bytes(digest[:8], "big") / 2**64


def is_claimable(state: TaskState, kinds: Collection[str], now: datetime) -> bool:
    """Whether ``lease`` would accept the task now for a worker serving ``kinds`` (empty: any)."""
    if kinds and state.kind not in kinds:
        return False
    if state.state == "retry_wait":
        return state.retry_at is not None and state.retry_at <= now
    return state.state == "queued"


def claim_order(state: TaskState) -> tuple[int, datetime, str]:
    """Sort key of claimable tasks: higher priority first, then older, then by id."""
    return (-state.priority, state.submitted_at, state.task_id)


def lease(
    state: TaskState, worker_id: str, ctx: Context, lease_ttl_s: float = DEFAULT_LEASE_TTL_S
) -> list[DomainEvent]:
    """Leases the task to ``worker_id`` until ``now + lease_ttl_s``, with the next epoch.

    A ``retry_wait`` task whose retry time came yields ``TaskRequeued`` then ``TaskLeased``.
    """
    if not lease_ttl_s > 0:
        raise ValueError("lease_ttl_s must be positive")
    if state.state == "retry_wait":
        if state.retry_at is None or state.retry_at > ctx.now:
            raise DomainError(
                ErrorCode.INVALID_TRANSITION,
                f"task {state.task_id} is retry_wait until {state.retry_at}; lease needs queued",
                {"state": state.state, "retry_at": str(state.retry_at)},
            )
        requeued = TaskRequeued(task_id=state.task_id)
        return [requeued, _leased(evolve(state, requeued), worker_id, ctx, lease_ttl_s)]
    TABLE.require(state.state, "TaskLeased", "lease", state.task_id)
    return [_leased(state, worker_id, ctx, lease_ttl_s)]


def _leased(state: TaskState, worker_id: str, ctx: Context, ttl: float) -> TaskLeased:
    return TaskLeased(task_id=state.task_id, worker_id=worker_id,
                      lease_epoch=state.lease_epoch + 1, attempt=state.attempts + 1,
                      lease_expires_at=ctx.now + timedelta(seconds=ttl), lease_ttl_s=ttl)


def expire_lease(state: TaskState, ctx: Context) -> list[DomainEvent]:
    """Voids a lapsed lease: ``TaskLeaseExpired`` then a retry or a failure (``lease_expired``)."""
    TABLE.require(state.state, "TaskLeaseExpired", "expire_lease", state.task_id)
    assert state.worker_id is not None, "a held task has a holder"
    assert state.lease_expires_at is not None, "a held task has a lease"
    if state.lease_expires_at >= ctx.now:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"task {state.task_id}'s lease runs until {state.lease_expires_at.isoformat()}",
            {"lease_expires_at": state.lease_expires_at.isoformat()},
        )
    expired = TaskLeaseExpired(task_id=state.task_id, worker_id=state.worker_id,
                               lease_epoch=state.lease_epoch,
                               lease_expires_at=state.lease_expires_at)
    message = f"worker {state.worker_id} held no lease after {state.lease_expires_at.isoformat()}"
    return [expired, *_attempt_failed(evolve(state, expired), "lease_expired", message, ctx)]


def _attempt_failed(
    state: TaskState, error_class: str, message: str, ctx: Context
) -> list[DomainEvent]:
    attempt = state.attempts
    if error_class in RETRYABLE and attempt < state.max_attempts:
        retry_at = ctx.now + timedelta(seconds=backoff_s(state.task_id, attempt))
        return [TaskRetryScheduled(task_id=state.task_id, worker_id=state.worker_id,
                                   attempt=attempt, error_class=error_class, message=message,
                                   retry_at=retry_at)]
    return [TaskFailed(task_id=state.task_id, worker_id=state.worker_id, attempt=attempt,
                       error_class=error_class, message=message)]


def decide(state: TaskState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a task command produces, or raises ``DomainError``.

    ``task.submit`` needs ``ctx.related`` = the run's ``RunState`` or a ``SubmitFacts``;
    ``task.unblock`` of a task with dependencies needs ``ctx.related`` = a mapping of
    each dependency's id to its ``TaskState`` (or None).
    """
    if isinstance(command, SubmitTask):
        return _submit(state, command, ctx)
    if isinstance(command, ClaimTask):
        raise TypeError("task.claim is served by is_claimable, claim_order and lease")
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"task {command.target_id()} does not exist")
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"not a task command: {type(command).__name__}")
    return handler(state, command, ctx)


def _submit(state: TaskState | None, command: SubmitTask, ctx: Context) -> list[DomainEvent]:
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"task {state.task_id} already exists")
    assert command.task_id is not None, "the service assigns an id before deciding"
    if command.task_id in command.depends_on:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"task {command.task_id} cannot depend on itself")
    facts = ctx.related if isinstance(ctx.related, SubmitFacts) else SubmitFacts(ctx.related)
    run = require_run(facts.run, command.run_id, "task.submit", ("running",))
    run.require_room()
    _require_budget_room(run, facts.budget)
    workstream = _require_workstream(command, facts.workstream)
    submitted = TaskSubmitted(
        task_id=command.task_id, run_id=command.run_id, kind=command.kind,
        priority=command.priority, resource=command.resource,
        max_attempts=command.max_attempts, payload=command.payload,
        workstream_id=command.workstream_id,
        depends_on=list(dict.fromkeys(command.depends_on)), submitted_at=ctx.now,
    )
    return [submitted, *_initial_hold(submitted, workstream)]


def _require_budget_room(run: RunState, budget: BudgetState | None) -> None:
    if run.budget_id is None:
        return
    if budget is None or budget.budget_id != run.budget_id:
        raise DomainError(ErrorCode.NOT_FOUND, f"budget {run.budget_id} does not exist")
    budget.require_room()


def _require_workstream(
    command: SubmitTask, workstream: WorkstreamState | None
) -> WorkstreamState | None:
    if command.workstream_id is None:
        return None
    if workstream is None or workstream.workstream_id != command.workstream_id:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"workstream {command.workstream_id} does not exist")
    if workstream.run_id != command.run_id:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"workstream {workstream.workstream_id} belongs to run "
                          f"{workstream.run_id}, not {command.run_id}")
    if workstream.state in ("succeeded", "failed", "cancelled", "skipped"):
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"workstream {workstream.workstream_id} is {workstream.state}; task.submit needs "
            "pending/ready/running/paused/blocked",
            {"state": workstream.state},
        )
    return workstream


def _initial_hold(
    submitted: TaskSubmitted, workstream: WorkstreamState | None
) -> list[DomainEvent]:
    if submitted.depends_on:
        return [TaskBlocked(task_id=submitted.task_id, reason="waiting for dependencies")]
    if workstream is not None and workstream.state != "running":
        return [TaskDeferred(task_id=submitted.task_id)]
    return []


def _require_lease(state: TaskState, worker_id: str, lease_epoch: int) -> None:
    if state.worker_id != worker_id or state.lease_epoch != lease_epoch:
        raise DomainError(
            ErrorCode.LEASE_MISMATCH,
            f"task {state.task_id} is not leased to worker {worker_id} at epoch {lease_epoch}",
            {"worker_id": state.worker_id, "lease_epoch": state.lease_epoch},
        )


def _checked(state: TaskState, command: Command, event: DomainEvent) -> list[DomainEvent]:
    TABLE.require(state.state, event.type_name(), action_of(command), state.task_id)
    return [event]


def _start(state: TaskState, command: StartTask, ctx: Context) -> list[DomainEvent]:
    _require_lease(state, command.worker_id, command.lease_epoch)
    return _checked(state, command, TaskStarted(
        task_id=state.task_id, worker_id=command.worker_id, lease_epoch=command.lease_epoch))


def _heartbeat(state: TaskState, command: HeartbeatTask, ctx: Context) -> list[DomainEvent]:
    _require_lease(state, command.worker_id, command.lease_epoch)
    extended = ctx.now + timedelta(seconds=state.lease_ttl_s)
    # A lease never shrinks, even if this replica's clock is behind the one that granted it.
    expires = max(extended, state.lease_expires_at) if state.lease_expires_at else extended
    return _checked(state, command, TaskHeartbeatReceived(
        task_id=state.task_id, worker_id=command.worker_id, lease_epoch=command.lease_epoch,
        lease_expires_at=expires))


def _succeed(state: TaskState, command: SucceedTask, ctx: Context) -> list[DomainEvent]:
    _require_lease(state, command.worker_id, command.lease_epoch)
    return _checked(state, command, TaskSucceeded(
        task_id=state.task_id, worker_id=command.worker_id, lease_epoch=command.lease_epoch,
        attempt=state.attempts, result=command.result))


def _fail(state: TaskState, command: FailTask, ctx: Context) -> list[DomainEvent]:
    _require_lease(state, command.worker_id, command.lease_epoch)
    TABLE.require(state.state, "TaskFailed", action_of(command), state.task_id)
    return _attempt_failed(state, command.error_class, command.message, ctx)


def _expire(state: TaskState, command: ExpireTaskLease, ctx: Context) -> list[DomainEvent]:
    if state.lease_epoch != command.lease_epoch:
        raise DomainError(
            ErrorCode.LEASE_MISMATCH,
            f"task {state.task_id} is at lease epoch {state.lease_epoch}, "
            f"not {command.lease_epoch}",
            {"lease_epoch": state.lease_epoch},
        )
    return expire_lease(state, ctx)


def _cancel(state: TaskState, command: CancelTask, ctx: Context) -> list[DomainEvent]:
    holder = state.worker_id if state.held else None
    return _checked(state, command, TaskCancelled(
        task_id=state.task_id, reason=command.reason, worker_id=holder))


def _unblock(state: TaskState, command: UnblockTask, ctx: Context) -> list[DomainEvent]:
    events = _checked(state, command, TaskUnblocked(task_id=state.task_id))
    require_dependencies_done("task", state.task_id, state.depends_on, ctx.related,
                              ("succeeded",))
    return events


_HANDLERS: dict[type[Command], Callable[[TaskState, Any, Context], list[DomainEvent]]] = {
    StartTask: _start,
    HeartbeatTask: _heartbeat,
    SucceedTask: _succeed,
    FailTask: _fail,
    ExpireTaskLease: _expire,
    CancelTask: _cancel,
    UnblockTask: _unblock,
    BlockTask: lambda s, c, _: _checked(s, c, TaskBlocked(task_id=s.task_id, reason=c.reason)),
    DeferTask: lambda s, c, _: _checked(s, c, TaskDeferred(task_id=s.task_id)),
    QueueTask: lambda s, c, _: _checked(s, c, TaskQueued(task_id=s.task_id)),
}


def evolve(state: TaskState | None, event: DomainEvent) -> TaskState:
    """Returns the task's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if isinstance(event, TaskSubmitted):
        return TaskState(
            task_id=event.task_id, run_id=event.run_id, kind=event.kind, state=target,
            submitted_at=event.submitted_at, priority=event.priority,
            max_attempts=event.max_attempts, resource=event.resource,
            workstream_id=event.workstream_id, depends_on=tuple(event.depends_on),
        )
    assert state is not None
    changes = _CHANGES.get(type(event))
    return replace(state, state=target, **(changes(state, event) if changes else {}))


_Changes = Callable[[TaskState, Any], dict[str, Any]]

_CHANGES: dict[type[DomainEvent], _Changes] = {
    TaskLeased: lambda s, e: {
        "worker_id": e.worker_id, "lease_epoch": e.lease_epoch, "attempts": e.attempt,
        "lease_expires_at": e.lease_expires_at, "lease_ttl_s": e.lease_ttl_s, "retry_at": None,
    },
    TaskHeartbeatReceived: lambda s, e: {"lease_expires_at": e.lease_expires_at},
    TaskLeaseExpired: lambda s, e: {"lease_epoch": e.lease_epoch + 1, "lease_expires_at": None},
    TaskRetryScheduled: lambda s, e: {
        "retry_at": e.retry_at, "last_error_class": e.error_class, "lease_expires_at": None,
    },
    TaskFailed: lambda s, e: {"last_error_class": e.error_class, "lease_expires_at": None},
    TaskRequeued: lambda s, e: {"retry_at": None},
    TaskSucceeded: lambda s, e: {"lease_expires_at": None},
    TaskCancelled: lambda s, e: {"lease_expires_at": None, "retry_at": None},
}
