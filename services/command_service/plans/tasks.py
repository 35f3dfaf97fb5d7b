"""Task commands that span aggregates: submit (run facts), claim (lease + worker slot),
and the commands that end a holder's lease (the worker's slot is freed in the same batch)."""

from __future__ import annotations

import json
from typing import Any

from events import event_subject
from events.base import Command
from events.commands.task import ClaimTask, SubmitTask
from events.errors import ErrorCode
from services.domain import Context, DomainError, task, worker
from services.domain.task import SubmitFacts, TaskState

from ..aggregates import Loaded
from ..changes import Change
from .session import Decision, Session, decide_on, load_target, seen_before

__all__ = ["claim_task", "end_lease", "submit_task"]


async def submit_task(session: Session, command: Command) -> Decision:
    """Loads the run (and its budget and workstream, when named) the rules check."""
    assert isinstance(command, SubmitTask)
    loaded = await load_target(session, command)
    earlier = seen_before(loaded, command)
    if earlier:
        return earlier
    run = (await session.load("run", command.run_id)).state
    budget_id = getattr(run, "budget_id", None)
    facts = SubmitFacts(
        run=run,
        workstream=(await session.load("workstream", command.workstream_id)).state
        if command.workstream_id else None,
        budget=(await session.load("budget", budget_id)).state if budget_id else None,
    )
    return decide_on(session, loaded, command, facts)


async def end_lease(session: Session, command: Command) -> Decision:
    """succeed / fail / cancel / expire_lease: the task's events, and the holder's slot freed."""
    loaded_task = await load_target(session, command)
    record = loaded_task.commands.get(command.command_id or "")
    if record:
        # The holder then, named on the event written: the task may have a new holder now.
        first = await _event_of(session, "task", loaded_task.aggregate_id,
                                record.seq - len(record.event_types) + 1,
                                record.event_types[0], command.command_id or "")
        holder = first.get("worker_id")
        loaded_worker = await session.load_written_by(
            "worker", holder, command.command_id or "") if holder else None
        return seen_before(loaded_task, command, loaded_worker)  # type: ignore[return-value]
    decision = decide_on(session, loaded_task, command, None)
    before: TaskState | None = loaded_task.state
    if before is None or not before.held or before.worker_id is None:
        return decision
    after = before
    for event in decision.changes[0].events:
        after = task.evolve(after, event)
    if after.held:
        return decision
    loaded_worker = await session.load("worker", before.worker_id)
    ctx = Context(now=session.now)
    released = worker.release(loaded_worker.state, before.task_id, ctx)
    return Decision([*decision.changes, Change(loaded_worker, released)])


async def claim_task(session: Session, command: Command) -> Decision:
    """Leases the best claimable task to the worker and takes one of its slots, atomically."""
    assert isinstance(command, ClaimTask)
    loaded_worker = await session.load("worker", command.worker_id)
    if loaded_worker.commands.get(command.command_id or ""):
        return await _replayed_claim(session, command, loaded_worker)
    holder = loaded_worker.state
    if holder is None:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"worker {command.worker_id} is not registered; worker.register first")
    kinds = _claim_kinds(command, holder.kinds)
    ctx = Context(now=session.now)
    if holder.free_slots <= 0:
        worker.assign(holder, "-", ctx)  # raises the precise reason (draining, full, ...)
    for task_id in session.task_index.candidates(kinds, session.now):
        if task_id in holder.tasks:
            continue  # this index is behind: the worker already holds it
        loaded_task = await session.load("task", task_id)
        state = loaded_task.state
        if state is None or not task.is_claimable(state, kinds, session.now):
            continue
        leased = task.lease(state, command.worker_id, ctx, session.lease_ttl_s)
        assigned = worker.assign(holder, task_id, ctx)
        return Decision([Change(loaded_task, leased), Change(loaded_worker, assigned)],
                        extra=_claim_reply(session, leased[-1].fields()))
    return Decision([Change(loaded_worker, [])], extra=_no_task)


def _claim_kinds(command: ClaimTask, registered: tuple[str, ...]) -> list[str]:
    if not command.kinds:
        return list(registered)
    outside = [k for k in command.kinds if registered and k not in registered]
    if outside:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"worker {command.worker_id} is not registered for kinds {outside}",
                          {"registered": list(registered)})
    return list(command.kinds)


async def _no_task(updated: list[Loaded]) -> dict[str, Any]:
    del updated
    return {"task": None}


def _claim_reply(session: Session, leased: dict[str, Any]) -> Any:
    async def extra(updated: list[Loaded]) -> dict[str, Any]:
        return {"task": await _task_view(session, updated[0].state, leased)}

    return extra


async def _replayed_claim(session: Session, command: ClaimTask, loaded_worker: Loaded
                          ) -> Decision:
    """A retried claim: the same task and lease as the first reply, found on the log."""
    command_id = command.command_id or ""
    worker_record = loaded_worker.commands[command_id]
    assigned = await _event_of(session, "worker", command.worker_id, worker_record.seq,
                               "WorkerTaskAssigned", command_id)
    loaded_task = await session.load_written_by("task", assigned["task_id"], command_id)
    task_record = loaded_task.commands[command_id]
    leased = await _event_of(session, "task", loaded_task.aggregate_id, task_record.seq,
                             "TaskLeased", command_id)

    async def extra(updated: list[Loaded]) -> dict[str, Any]:
        del updated
        return {"task": await _task_view(session, loaded_task.state, leased)}

    return Decision([], extra=extra,
                    seen=[(loaded_task, task_record), (loaded_worker, worker_record)])


async def _event_of(session: Session, aggregate: str, aggregate_id: str, from_seq: int,
                    event_type: str, command_id: str) -> dict[str, Any]:
    """The event of ``event_type`` that ``command_id`` wrote, at or after ``from_seq``."""
    subject = event_subject(aggregate, aggregate_id, session.store.subject_prefix)
    for recorded in await session.store.read_subject(subject, from_seq):
        body = recorded.json()
        if body["type"] == event_type and body["command_id"] == command_id:
            return body
    raise DomainError(ErrorCode.INTERNAL, f"{event_type} of {aggregate} {aggregate_id} not found")


async def _task_view(session: Session, state: TaskState, lease: dict[str, Any]
                     ) -> dict[str, Any]:
    """What a worker needs to run the task it claimed (``lease``: the TaskLeased fields)."""
    subject = event_subject("task", state.task_id, session.store.subject_prefix)
    submitted = await session.store.first_on_subject(subject)
    payload = json.loads(submitted.payload).get("payload", {}) if submitted else {}
    return {
        "task_id": state.task_id, "run_id": state.run_id, "kind": state.kind,
        "priority": state.priority, "payload": payload, "lease_epoch": lease["lease_epoch"],
        "attempt": lease["attempt"], "lease_expires_at": lease["lease_expires_at"],
        "max_attempts": state.max_attempts,
    }
