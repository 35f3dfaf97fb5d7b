"""The ``tasks`` read model: one row per task, and the task counts of the runs they belong to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from projections.columns import Col, ColType
from projections.decode import Event

from .base import ErrorSink
from .derived import recount_workers
from .entity import EntityProjection, EntitySpec, Row
from .task_counts import RunTaskCounts

__all__ = ["TASKS", "TaskProjection"]


_NO_LEASE: Row = {"lease_expires_at": None, "attempt_deadline": None}
"""What an attempt's end clears, as the task aggregate does: no lease lapses any more."""


def _voided(row: Mapping[str, Any], event: Event) -> Row:
    # The expired epoch is void: the task's epoch is one more from now on.
    return {"lease_epoch": ColType.BIGINT.convert(event.data["lease_epoch"]) + 1}


def _expired(row: Mapping[str, Any], event: Event) -> Row:
    return _voided(row, event) | {"lease_expires_at": None}


def _ended(row: Mapping[str, Any], event: Event) -> Row:
    return _NO_LEASE


def _cancelled(row: Mapping[str, Any], event: Event) -> Row:
    return _NO_LEASE | {"retry_at": None}


def _back_in_queue(row: Mapping[str, Any], event: Event) -> Row:
    return {"retry_at": None}


def _new_attempt(row: Mapping[str, Any], event: Event) -> Row:
    # A lease starts the next attempt: a deadline or a not_before of the previous one is gone.
    return {"attempt_deadline": event.data.get("attempt_deadline"), "not_before": None,
            "retry_at": None}


def _requeued(row: Mapping[str, Any], event: Event) -> Row:
    # Fresh attempts start on the task's own model, with no hint from the old failures.
    return {"attempts": 0, "ended_at": None, "retry_at": None, "instruction": None,
            "is_escalated": False}


def _revoked(row: Mapping[str, Any], event: Event) -> Row:
    # An attempt runlog ended itself names the epoch it voided (else the holder reported it).
    voided = event.data.get("lease_epoch")
    return _NO_LEASE if voided is None else _NO_LEASE | _voided(row, event)


def _retry(row: Mapping[str, Any], event: Event) -> Row:
    instruction = event.data.get("instruction")
    return _revoked(row, event) | {"instruction": ColType.JSON.convert(instruction)
                                   if instruction is not None else None}


def _failed(row: Mapping[str, Any], event: Event) -> Row:
    return _revoked(row, event) | {"is_escalated": event.data.get("strategy") == "escalate"}


TASKS = EntitySpec(
    name="tasks",
    aggregate="task",
    key="task_id",
    doc="One row per task: state, lease, attempts, last error and timestamps.",
    columns=(
        Col("task_id", ColType.TEXT, doc="the task's id"),
        Col("run_id", ColType.TEXT, doc="the run it belongs to"),
        Col("kind", ColType.TEXT, doc="the work kind workers claim it by"),
        Col("state", ColType.TEXT, doc="queued, pending, blocked, leased, running, retry_wait, "
                                       "succeeded, failed or cancelled"),
        Col("priority", ColType.INT, doc="0-9, higher first"),
        Col("attempts", ColType.INT, 0, "attempts so far (the latest attempt number)"),
        Col("max_attempts", ColType.INT, doc="attempts allowed"),
        Col("worker_id", ColType.TEXT, doc="the worker holding it, or that held it last"),
        Col("lease_epoch", ColType.BIGINT, 0, "the current lease epoch"),
        Col("lease_expires_at", ColType.TIME, doc="when the current lease lapses"),
        Col("error_class", ColType.TEXT, doc="class of the latest failure"),
        Col("error_message", ColType.TEXT, doc="message of the latest failure"),
        Col("retry_at", ColType.TIME, doc="when a retry_wait task is queued again"),
        Col("reason", ColType.TEXT, doc="why it was blocked or cancelled"),
        Col("resource", ColType.TEXT, doc="the resource it needs, if any"),
        Col("workstream_id", ColType.TEXT, doc="its workstream, if any"),
        Col("depends_on", ColType.TEXT_LIST, doc="task ids it waits for"),
        Col("submitted_at", ColType.TIME, doc="when it was submitted"),
        Col("leased_at", ColType.TIME, doc="when it was last leased"),
        Col("started_at", ColType.TIME, doc="when its latest attempt started"),
        Col("ended_at", ColType.TIME, doc="when it succeeded, failed or was cancelled"),
        Col("concurrency_key", ColType.TEXT, doc="the key its concurrency limit is counted by"),
        Col("max_concurrency", ColType.INT, doc="at most this many leased tasks share the key"),
        Col("not_before", ColType.TIME, doc="not claimed before this time"),
        Col("is_deferrable", ColType.BOOL, False, "task.submit deferrable: waits while its "
            "run's budget is spent"),
        Col("timeout_s", ColType.DOUBLE, doc="an attempt past it fails with error class timeout"),
        Col("attempt_deadline", ColType.TIME, doc="when the current attempt times out"),
        Col("requeued_at", ColType.TIME, doc="when an operator last sent it back to the queue"),
        Col("payload", ColType.JSON, doc="its input"),
        Col("result", ColType.JSON, doc="its result"),
        Col("model", ColType.TEXT, doc="the model it calls first (task.submit model)"),
        Col("strategy", ColType.TEXT, doc="the recovery strategy of its latest failure: "
            "backoff, fallback, truncate, fail_fast or escalate"),
        Col("instruction", ColType.JSON, doc="what its next attempt does differently "
            "(model, truncate), from that strategy"),
        Col("is_escalated", ColType.BOOL, False, "it failed with the escalate strategy: an "
            "operator should look"),
        Col("cache_key", ColType.TEXT, doc="its result cache key, if any"),
        Col("from_cache_of", ColType.TEXT, doc="the task whose cached result answered it"),
    ),
    copy={
        "run_id": "run_id", "kind": "kind", "priority": "priority", "resource": "resource",
        "max_attempts": "max_attempts", "workstream_id": "workstream_id",
        "depends_on": "depends_on", "payload": "payload", "submitted_at": "submitted_at",
        "worker_id": "worker_id", "lease_epoch": "lease_epoch",
        "lease_expires_at": "lease_expires_at", "attempt": "attempts",
        "error_class": "error_class", "message": "error_message", "retry_at": "retry_at",
        "reason": "reason", "result": "result", "concurrency_key": "concurrency_key",
        "max_concurrency": "max_concurrency", "not_before": "not_before",
        "deferrable": "is_deferrable", "timeout_s": "timeout_s",
        "attempt_deadline": "attempt_deadline", "model": "model", "strategy": "strategy",
        "cache_key": "cache_key", "source_task_id": "from_cache_of",
    },
    stamps={
        "TaskLeased": "leased_at",
        "TaskStarted": "started_at",
        "TaskSucceeded": "ended_at",
        "TaskFailed": "ended_at",
        "TaskCancelled": "ended_at",
        "TaskRequeuedByOperator": "requeued_at",
        "TaskSatisfiedFromCache": "ended_at",
    },
    hooks={"TaskLeaseExpired": _expired, "TaskRetryScheduled": _retry, "TaskFailed": _failed,
           "TaskLeased": _new_attempt, "TaskRequeuedByOperator": _requeued,
           "TaskSucceeded": _ended, "TaskCancelled": _cancelled, "TaskRequeued": _back_in_queue},
    indexes=("run_id", "state"),
)

class TaskProjection(EntityProjection):
    """Tasks, plus the task counts by state on their runs and what their workers hold."""

    def __init__(self) -> None:
        super().__init__(TASKS)
        self._holders: set[str] = set()
        self._before: dict[str, tuple[str | None, str | None]] = {}
        self._counts = RunTaskCounts()

    def reset(self) -> None:
        """Forgets the cached rows and run counts (their transaction was rolled back)."""
        super().reset()
        self._counts.reset()

    def fold(self, rows: dict[str, Row], events: list[Event], sink: ErrorSink) -> dict[str, Row]:
        """Folds the events, noting the workers that held these tasks and where each task
        was (its run and state) before them."""
        self._holders = {row["worker_id"] for row in rows.values() if row.get("worker_id")}
        self._before = {key: (row.get("run_id"), row.get("state")) for key, row in rows.items()}
        return super().fold(rows, events, sink)

    def after_write(self, con: duckdb.DuckDBPyConnection, rows: dict[str, Row],
                    sink: ErrorSink) -> None:
        """Recounts the leases of every worker the batch touched, and moves the task counts
        of their runs."""
        recount_workers(con, self._holders | {row["worker_id"] for row in rows.values()
                                              if row.get("worker_id")})
        before = self._before
        moves = ((before.get(key, (None, None)), (row.get("run_id"), row.get("state")))
                 for key, row in rows.items())
        self._counts.apply(con, moves, self.cache_rows)
