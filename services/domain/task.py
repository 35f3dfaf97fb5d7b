"""The Task state machine: submission, leases with epochs, retries with backoff, outcomes.

A task is held by at most one worker at a time. Each lease has an epoch, one more
than the last; only the current holder with the current epoch may start, heartbeat,
succeed or fail the task. A lease is void once ``TaskLeaseExpired`` is written (its
epoch goes up then); until that event, its holder may still finish, so an expiry
never lets two workers run the same attempt.

``task.claim`` has no task id: ``services/domain/claims.py`` picks the task from the
board of open tasks and decides its lease, one ``TaskLeased`` event; the worker's slot
is not an event of its own, since a worker's held tasks are its live leases.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from events.base import Command, DomainEvent
from events.catalog.task import (
    ErrorClass,
    RetryInstruction,
    TaskBlocked,
    TaskCancelled,
    TaskFailed,
    TaskHeartbeatReceived,
    TaskLeased,
    TaskLeaseExpired,
    TaskPostponed,
    TaskQueued,
    TaskRequeued,
    TaskRequeuedByOperator,
    TaskRetryScheduled,
    TaskSatisfiedFromCache,
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
    RequeueTask,
    StartTask,
    SubmitTask,
    SucceedTask,
    TimeOutTask,
    UnblockTask,
)
from events.errors import ErrorCode

from .budget import BudgetState
from .checks import action_of, require_dependencies_done, require_run
from .context import Context
from .machine import DomainError, InvalidHistory, TransitionTable
from .recovery import DEFAULT_RECOVERY, Strategy, jittered_backoff_s, plan_recovery
from .result_cache import cache_key_of, is_fresh
from .run import RunState
from .workstream import WorkstreamState

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "BACKOFF_FACTOR",
    "DEFAULT_LEASE_TTL_S",
    "RETRYABLE",
    "TABLE",
    "TaskState",
    "backoff_s",
    "decide",
    "evolve",
    "expire_lease",
    "is_claimable",
    "lease",
    "revoke",
    "submit",
    "time_out",
]

RETRYABLE = frozenset(c for c, strategy in DEFAULT_RECOVERY.rows() if strategy.retries)
"""Error classes the default recovery table retries (services/domain/recovery.py).

``invalid_request``, ``auth``, ``content_filter``, ... fail the task at once, since
retrying identical input would fail identically; ``context_overflow`` retries with the
``truncate`` hint.
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
        (None, "TaskSubmitted"): ("queued", "blocked", "pending"),
        # A submission the result cache answers: no worker runs it.
        (None, "TaskSatisfiedFromCache"): "succeeded",
        ("queued", "TaskDeferred"): "pending",
        ("pending", "TaskQueued"): "queued",
        ("pending", "TaskBlocked"): "blocked",
        ("queued", "TaskBlocked"): "blocked",
        ("blocked", "TaskUnblocked"): "queued",
        ("queued", "TaskLeased"): "leased",
        # A retry whose time came is leased directly: one event per claim.
        ("retry_wait", "TaskLeased"): "leased",
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
        ("queued", "TaskPostponed"): "queued",
        # A dead letter an operator sends back: the only way out of failed.
        ("failed", "TaskRequeuedByOperator"): "queued",
    },
    terminal=frozenset({"succeeded", "cancelled"}),
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
    concurrency_key: str | None = None
    max_concurrency: int | None = None
    """With ``concurrency_key``: at most this many leased tasks share the key."""
    not_before: datetime | None = None
    deferrable: bool = False
    timeout_s: float | None = None
    attempt_deadline: datetime | None = None
    """When the current attempt times out (from ``timeout_s`` and its lease)."""
    model: str | None = None
    """The model the task calls first; ``instruction.model`` once it fell back."""
    cache_key: str | None = None
    instruction: RetryInstruction | None = None
    """What the next attempt should do differently (from the last failure's strategy)."""

    @property
    def held(self) -> bool:
        """Whether a worker holds the task now."""
        return self.state in _HELD

    def due_at(self) -> datetime | None:
        """When a waiting task becomes claimable: its retry time, or its ``not_before``."""
        if self.state == "retry_wait":
            return self.retry_at
        return self.not_before if self.state == "queued" else None


def backoff_s(task_id: str, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, full jitter.

    The ceiling is ``BACKOFF_BASE_S * BACKOFF_FACTOR ** (attempt - 1)``, capped at
    ``BACKOFF_CAP_S``; the delay is a fraction of it in [0, 1) taken from a hash of
    ``task_id`` and ``attempt``. Jitter spreads the retries of tasks that failed
    together (a provider's rate limit), and deriving it from a hash instead of a
    random source keeps ``decide`` pure: replaying a command decides the same delay.
    """
    return jittered_backoff_s(task_id, attempt, _DEFAULT_BACKOFF)


_DEFAULT_BACKOFF = Strategy("backoff", BACKOFF_BASE_S, BACKOFF_FACTOR, BACKOFF_CAP_S)


def is_claimable(state: TaskState, kinds: Collection[str], now: datetime) -> bool:
    """Whether ``lease`` would accept the task now for a worker serving ``kinds`` (empty: any)."""
    if kinds and state.kind not in kinds:
        return False
    if state.state not in ("queued", "retry_wait"):
        return False
    due = state.due_at()
    return state.state == "queued" if due is None else due <= now


def lease(
    state: TaskState, worker_id: str, ctx: Context, lease_ttl_s: float = DEFAULT_LEASE_TTL_S
) -> TaskLeased:
    """Leases the task to ``worker_id`` until ``now + lease_ttl_s``, with the next epoch.

    A ``retry_wait`` task is leased once its retry time has come.
    """
    if not lease_ttl_s > 0:
        raise ValueError("lease_ttl_s must be positive")
    TABLE.require(state.state, "TaskLeased", "lease", state.task_id)
    due = state.due_at()
    if due is not None and due > ctx.now:
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"task {state.task_id} is {state.state} until {due.isoformat()}",
            {"state": state.state, "due_at": due.isoformat()},
        )
    deadline = ctx.now + timedelta(seconds=state.timeout_s) if state.timeout_s else None
    return TaskLeased(task_id=state.task_id, worker_id=worker_id,
                      lease_epoch=state.lease_epoch + 1, attempt=state.attempts + 1,
                      lease_expires_at=ctx.now + timedelta(seconds=lease_ttl_s),
                      lease_ttl_s=lease_ttl_s, attempt_deadline=deadline,
                      instruction=state.instruction)


def expire_lease(state: TaskState, ctx: Context) -> list[DomainEvent]:
    """Voids a lapsed lease: a retry or a failure of class ``lease_expired``, in one event."""
    TABLE.require(state.state, "TaskLeaseExpired", "expire_lease", state.task_id)
    expires = state.lease_expires_at
    if expires is None or expires >= ctx.now:
        until = expires.isoformat() if expires else "its end"
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"task {state.task_id}'s lease runs until {until}",
                          {"lease_expires_at": until})
    message = f"worker {state.worker_id} held no lease after {expires.isoformat()}"
    return [revoke(state, "lease_expired", message, ctx)]


def time_out(state: TaskState, ctx: Context) -> DomainEvent:
    """Fails an attempt that ran past its deadline (retried or failed as ``timeout``)."""
    TABLE.require(state.state, "TaskFailed", "time_out", state.task_id)
    deadline = state.attempt_deadline
    if deadline is None or deadline > ctx.now:
        until = deadline.isoformat() if deadline else "no deadline"
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"task {state.task_id}'s attempt runs until {until}",
                          {"attempt_deadline": deadline.isoformat() if deadline else None})
    message = f"attempt {state.attempts} ran past its timeout of {state.timeout_s} s"
    return revoke(state, "timeout", message, ctx)


def revoke(state: TaskState, error_class: ErrorClass, message: str, ctx: Context
           ) -> DomainEvent:
    """Ends the holder's attempt from outside (expiry, timeout, lost worker); its epoch is void."""
    return _attempt_failed(state, error_class, message, ctx, voided=state.lease_epoch)


def _attempt_failed(
    state: TaskState, error_class: ErrorClass, message: str, ctx: Context,
    voided: int | None = None, retry_after_s: float | None = None,
) -> DomainEvent:
    """The error class's recovery strategy decides: a retry (with its instruction) or the end."""
    attempt = state.attempts
    recovery = plan_recovery(ctx.recovery, error_class, state.task_id, attempt,
                             attempt < state.max_attempts, retry_after_s, state.model,
                             state.instruction, ctx.facts.fallbacks)
    if recovery.delay_s is not None:
        return TaskRetryScheduled(task_id=state.task_id, worker_id=state.worker_id,
                                  attempt=attempt, error_class=error_class, message=message,
                                  retry_at=ctx.now + timedelta(seconds=recovery.delay_s),
                                  lease_epoch=voided, strategy=recovery.strategy.name,
                                  instruction=recovery.instruction)
    return TaskFailed(task_id=state.task_id, worker_id=state.worker_id, attempt=attempt,
                      error_class=error_class, message=message, lease_epoch=voided,
                      strategy=recovery.strategy.name)


def decide(state: TaskState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """Returns the events a task command produces, or raises ``DomainError``.

    ``task.submit`` reads ``ctx.facts`` (run, workstream, budget); ``task.unblock`` of
    a task with dependencies reads ``ctx.facts.tasks``.
    """
    if isinstance(command, SubmitTask):
        return [submit(state, command, ctx)]
    if isinstance(command, ClaimTask):
        raise TypeError("task.claim is decided by services.domain.claims")
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"task {command.target_id()} does not exist")
    return [_decide_existing(state, command, ctx)]


def _decide_existing(state: TaskState, command: Command, ctx: Context) -> DomainEvent:
    match command:
        case StartTask() | HeartbeatTask() | SucceedTask() | FailTask():
            return _by_holder(state, command, ctx)
        case ExpireTaskLease():
            return _expire(state, command, ctx)
        case TimeOutTask():
            _require_epoch(state, command.lease_epoch)
            return time_out(state, ctx)
        case RequeueTask():
            return _checked(state, command, TaskRequeuedByOperator(
                task_id=state.task_id, max_attempts=command.max_attempts or state.max_attempts,
                reason=command.reason))
        case CancelTask():
            return _checked(state, command, TaskCancelled(
                task_id=state.task_id, reason=command.reason,
                worker_id=state.worker_id if state.held else None))
        case UnblockTask():
            return _unblock(state, command, ctx)
        case BlockTask():
            return _checked(state, command, TaskBlocked(task_id=state.task_id,
                                                        reason=command.reason))
        case DeferTask():
            return _checked(state, command, TaskPostponed(task_id=state.task_id,
                                                          not_before=command.not_before))
        case QueueTask():
            return _checked(state, command, TaskQueued(task_id=state.task_id))
    raise TypeError(f"not a task command: {type(command).__name__}")


def submit(state: TaskState | None, command: SubmitTask, ctx: Context
           ) -> TaskSubmitted | TaskSatisfiedFromCache:
    """Submits a task of a running run with room in its budgets, queued or held back.

    A submission whose cache key has a fresh result (``ctx.facts.cached``) and no
    dependencies is answered from the cache instead, whatever the budgets say: it
    spends nothing.
    """
    if state is not None:
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"task {state.task_id} already exists")
    if command.task_id is None:
        raise ValueError("the service assigns a task_id before deciding")
    if command.task_id in command.depends_on:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"task {command.task_id} cannot depend on itself")
    facts = ctx.facts
    run = require_run(facts.run, command.run_id, "task.submit", ("running",))
    workstream = _require_workstream(command, facts.workstream)
    cache_key = cache_key_of(command.cache_key, command.kind, command.payload, run)
    cached = facts.cached
    if cached is not None and cached.cache_key == cache_key and not command.depends_on \
            and is_fresh(cached, run, ctx.now):
        return TaskSatisfiedFromCache(
            task_id=command.task_id, run_id=command.run_id, kind=command.kind,
            priority=command.priority, payload=command.payload,
            workstream_id=command.workstream_id, submitted_at=ctx.now, cache_key=cache_key,
            source_task_id=cached.task_id, result=dict(cached.result or {}),
            tokens_saved=cached.tokens, cost_saved_usd=cached.cost_usd)
    if not command.deferrable:  # a deferrable task waits for room instead (at claim time)
        run.require_room()
        _require_budget_room(run, facts.budget)
    depends_on = list(dict.fromkeys(command.depends_on))
    return TaskSubmitted(
        task_id=command.task_id, run_id=command.run_id, kind=command.kind,
        priority=command.priority, resource=command.resource,
        max_attempts=command.max_attempts, payload=command.payload,
        workstream_id=command.workstream_id, depends_on=depends_on, submitted_at=ctx.now,
        hold=_initial_hold(depends_on, workstream), concurrency_key=command.concurrency_key,
        max_concurrency=command.max_concurrency, not_before=command.not_before,
        deferrable=command.deferrable, timeout_s=command.timeout_s, model=command.model,
        cache_key=cache_key,
    )


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


def _initial_hold(depends_on: list[str], workstream: WorkstreamState | None
                  ) -> Literal["blocked", "pending"] | None:
    if depends_on:
        return "blocked"
    if workstream is not None and workstream.state != "running":
        return "pending"
    return None


def _require_lease(state: TaskState, worker_id: str, lease_epoch: int) -> None:
    if state.worker_id != worker_id or state.lease_epoch != lease_epoch:
        raise DomainError(
            ErrorCode.LEASE_MISMATCH,
            f"task {state.task_id} is not leased to worker {worker_id} at epoch {lease_epoch}",
            {"worker_id": state.worker_id, "lease_epoch": state.lease_epoch},
        )


def _checked(state: TaskState, command: Command, event: DomainEvent) -> DomainEvent:
    TABLE.require(state.state, event.type_name(), action_of(command), state.task_id)
    return event


def _by_holder(state: TaskState, command: StartTask | HeartbeatTask | SucceedTask | FailTask,
               ctx: Context) -> DomainEvent:
    _require_lease(state, command.worker_id, command.lease_epoch)
    match command:
        case StartTask():
            return _checked(state, command, TaskStarted(
                task_id=state.task_id, worker_id=command.worker_id,
                lease_epoch=command.lease_epoch))
        case HeartbeatTask():
            return _checked(state, command, _heartbeat(state, command, ctx))
        case SucceedTask():
            return _checked(state, command, TaskSucceeded(
                task_id=state.task_id, worker_id=command.worker_id,
                lease_epoch=command.lease_epoch, attempt=state.attempts, result=command.result))
        case FailTask():
            TABLE.require(state.state, "TaskFailed", action_of(command), state.task_id)
            return _attempt_failed(state, command.error_class, command.message, ctx,
                                   retry_after_s=command.retry_after_s)


def _heartbeat(state: TaskState, command: HeartbeatTask, ctx: Context) -> TaskHeartbeatReceived:
    extended = ctx.now + timedelta(seconds=state.lease_ttl_s)
    # A lease never shrinks, even if this replica's clock is behind the one that granted it.
    expires = max(extended, state.lease_expires_at) if state.lease_expires_at else extended
    return TaskHeartbeatReceived(task_id=state.task_id, worker_id=command.worker_id,
                                 lease_epoch=command.lease_epoch, lease_expires_at=expires)


def _require_epoch(state: TaskState, lease_epoch: int) -> None:
    if state.lease_epoch != lease_epoch:
        raise DomainError(
            ErrorCode.LEASE_MISMATCH,
            f"task {state.task_id} is at lease epoch {state.lease_epoch}, not {lease_epoch}",
            {"lease_epoch": state.lease_epoch},
        )


def _expire(state: TaskState, command: ExpireTaskLease, ctx: Context) -> DomainEvent:
    _require_epoch(state, command.lease_epoch)
    return expire_lease(state, ctx)[0]


def _unblock(state: TaskState, command: UnblockTask, ctx: Context) -> DomainEvent:
    event = _checked(state, command, TaskUnblocked(task_id=state.task_id))
    require_dependencies_done("task", state.task_id, state.depends_on, ctx.facts.tasks,
                              ("succeeded",))
    return event


def evolve(state: TaskState | None, event: DomainEvent) -> TaskState:
    """Returns the task's state after ``event`` (which must fit the table)."""
    target = TABLE.next_state(state.state if state else None, event.type_name(),
                              event.chosen_state())
    if isinstance(event, TaskSubmitted):
        return TaskState(
            task_id=event.task_id, run_id=event.run_id, kind=event.kind, state=target,
            submitted_at=event.submitted_at, priority=event.priority,
            max_attempts=event.max_attempts, resource=event.resource,
            workstream_id=event.workstream_id, depends_on=tuple(event.depends_on),
            concurrency_key=event.concurrency_key, max_concurrency=event.max_concurrency,
            not_before=event.not_before, deferrable=event.deferrable, timeout_s=event.timeout_s,
            model=event.model, cache_key=event.cache_key,
        )
    if isinstance(event, TaskSatisfiedFromCache):
        return TaskState(task_id=event.task_id, run_id=event.run_id, kind=event.kind,
                         state=target, submitted_at=event.submitted_at, priority=event.priority,
                         workstream_id=event.workstream_id, cache_key=event.cache_key)
    if state is None:
        raise InvalidHistory(f"task: {event.type_name()} before TaskSubmitted")
    return _changed(replace(state, state=target), event)


def _changed(state: TaskState, event: DomainEvent) -> TaskState:
    """The fields an event changes besides the state name."""
    match event:
        case TaskLeased():
            return replace(state, worker_id=event.worker_id, lease_epoch=event.lease_epoch,
                           attempts=event.attempt, lease_expires_at=event.lease_expires_at,
                           lease_ttl_s=event.lease_ttl_s, retry_at=None, not_before=None,
                           attempt_deadline=event.attempt_deadline)
        case TaskPostponed():
            return replace(state, not_before=event.not_before)
        case TaskRequeuedByOperator():
            return replace(state, attempts=0, max_attempts=event.max_attempts, retry_at=None,
                           not_before=None, instruction=None)
        case TaskHeartbeatReceived():
            return replace(state, lease_expires_at=event.lease_expires_at)
        case TaskLeaseExpired():
            return replace(state, lease_epoch=event.lease_epoch + 1, lease_expires_at=None)
        case TaskRetryScheduled():
            return replace(state, retry_at=event.retry_at, last_error_class=event.error_class,
                           lease_expires_at=None, attempt_deadline=None,
                           lease_epoch=_epoch(state, event.lease_epoch),
                           instruction=event.instruction)
        case TaskFailed():
            return replace(state, last_error_class=event.error_class, lease_expires_at=None,
                           attempt_deadline=None, lease_epoch=_epoch(state, event.lease_epoch))
        case TaskRequeued():
            return replace(state, retry_at=None)
        case TaskSucceeded():
            return replace(state, lease_expires_at=None, attempt_deadline=None)
        case TaskCancelled():
            return replace(state, lease_expires_at=None, retry_at=None, attempt_deadline=None)
    return state


def _epoch(state: TaskState, voided: int | None) -> int:
    # The epoch runlog ended is void: its holder is refused with lease_mismatch.
    return state.lease_epoch if voided is None else max(state.lease_epoch, voided + 1)
