"""Task commands: submit (with its run's facts), claim (decided on the board), the holder's.

Every task write shares the task partition of the log (``TASK_WRITE``); a claim is
decided on all of it (``CLAIM``): see services/command_service/partition.py.
"""

from __future__ import annotations

from collections.abc import Callable

from events.catalog.task import TaskLeased, TaskSatisfiedFromCache
from events.codec import DecodeError
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
from events.ids import model_aggregate_id
from services.domain import DomainError, claims, task
from services.domain.claims import Lane
from services.domain.context import Facts
from services.domain.result_cache import cache_key_of
from services.domain.task import TaskState
from services.domain.worker import WorkerState

from ..repositories import CommandRecord
from ..routes import (
    CLAIM,
    TASK_WRITE,
    AnyRoute,
    Extra,
    Outcome,
    Recognised,
    ReplyFields,
    Route,
    target_of,
)
from ..unit_of_work import Committed, UnitOfWork
from .common import load_run, on_target

__all__ = ["ROUTES"]


async def submit_task(uow: UnitOfWork, command: SubmitTask) -> Outcome:
    """Submits a task; the rules read its run, workstream, shared budget and cached result."""
    repos = uow.repos
    loaded = await uow.get(repos.tasks, target_of(command))
    run = await load_run(uow, command.run_id)
    workstream = ((await uow.get(repos.workstreams, command.workstream_id)).state
                  if command.workstream_id else None)
    budget_id = run.budget_id if run else None
    budget = (await uow.get(repos.budgets, budget_id)).state if budget_id else None
    key = cache_key_of(command.cache_key, command.kind, command.payload, run)
    facts = Facts(run=run, workstream=workstream,
                  budget=repos.ledgers.view(budget, uow.now) if budget else None,
                  cached=repos.results.lookup(key) if key is not None else None)
    events = task.decide(loaded.state, command, uow.context(facts))
    uow.record(repos.tasks, loaded, events)
    hit = next((e for e in events if isinstance(e, TaskSatisfiedFromCache)), None)
    return Outcome(loaded, None if hit is None else _from_cache(hit))


def _from_cache(hit: TaskSatisfiedFromCache) -> Extra:
    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        return {"cached": _cached_view(hit)}

    return extra


def _cached_view(hit: TaskSatisfiedFromCache) -> ReplyFields:
    return {"source_task_id": hit.source_task_id, "cache_key": hit.cache_key,
            "result": hit.result, "tokens_saved": hit.tokens_saved,
            "cost_saved_usd": hit.cost_saved_usd}


async def replay_submit(uow: UnitOfWork, command: SubmitTask, record: CommandRecord
                        ) -> ReplyFields:
    """A retried submission the cache answered gets the cached result again."""
    if TaskSatisfiedFromCache.type_name() not in record.event_types:
        return {}
    first = await uow.store.first_on_subject(uow.repos.tasks.subject(target_of(command)))
    if first is None:
        return {}
    event = uow.codec.typed(uow.codec.decode(first.payload, first.seq))
    return {"cached": _cached_view(event)} if isinstance(event, TaskSatisfiedFromCache) else {}


async def end_attempt(uow: UnitOfWork, command: FailTask | ExpireTaskLease | TimeOutTask
                      ) -> Outcome:
    """Ends an attempt; a ``fallback`` strategy reads the fallback chain of the task's model."""
    loaded = await uow.get(uow.repos.tasks, target_of(command))
    model = loaded.state.model if loaded.state is not None else None
    fallbacks: tuple[str, ...] = ()
    if model is not None:
        prices = (await uow.get(uow.repos.models, model_aggregate_id(model))).state
        fallbacks = prices.fallbacks if prices is not None else ()
    facts = Facts(fallbacks=fallbacks)
    uow.record(uow.repos.tasks, loaded, task.decide(loaded.state, command, uow.context(facts)))
    return Outcome(loaded)


async def unblock_task(uow: UnitOfWork, command: UnblockTask) -> Outcome:
    """Queues a blocked task again once every task it depends on has succeeded."""
    loaded = await uow.get(uow.repos.tasks, command.task_id)
    depends_on = loaded.state.depends_on if loaded.state else ()
    dependencies = {d: (await uow.get(uow.repos.tasks, d)).state for d in depends_on}
    facts = Facts(tasks=dependencies)
    uow.record(uow.repos.tasks, loaded, task.decide(loaded.state, command, uow.context(facts)))
    return Outcome(loaded)


async def claim_task(uow: UnitOfWork, command: ClaimTask) -> Outcome:
    """Leases the best claimable task to the worker: one ``TaskLeased``, guarded by the board."""
    repos = uow.repos
    worker = await uow.get(repos.workers, command.worker_id)
    if worker.state is None:
        raise DomainError(ErrorCode.NOT_FOUND,
                          f"worker {command.worker_id} is not registered; worker.register first")
    kinds = _claim_kinds(command, worker.state)
    decided = claims.claim(repos.tasks.board, worker.state, kinds, uow.context(),
                           uow.lease_ttl_s, repos.limits.limits(), _budget_holds(uow))
    if decided is None:
        return Outcome(worker, _no_task)
    loaded = await uow.get(repos.tasks, decided.task.task_id)
    uow.record(repos.tasks, loaded, [decided.leased], partition=repos.tasks.partition)

    async def extra(committed: Committed | None) -> ReplyFields:
        del committed
        return {"task": await _task_view(uow, decided.task, decided.leased)}

    return Outcome(loaded, extra)


def _budget_holds(uow: UnitOfWork) -> Callable[[Lane], bool]:
    """Whether a lane of deferrable tasks waits: its run's budget, or its shared one, is spent."""
    repos = uow.repos

    def holds(lane: Lane) -> bool:
        if not lane.deferrable:
            return False
        cached = repos.runs.cached(lane.run_id)
        run = cached.state if cached is not None else None
        if run is None:
            return False
        if run.over_budget:
            return True
        budget = repos.budgets.cached(run.budget_id) if run.budget_id else None
        return budget is not None and budget.state is not None and \
            repos.ledgers.view(budget.state, uow.now).reached()

    return holds


def _claim_kinds(command: ClaimTask, worker: WorkerState) -> list[str]:
    if not command.kinds:
        return list(worker.kinds)
    outside = [k for k in command.kinds if worker.kinds and k not in worker.kinds]
    if outside:
        raise DomainError(ErrorCode.VALIDATION_FAILED,
                          f"worker {command.worker_id} is not registered for kinds {outside}",
                          {"registered": list(worker.kinds)})
    return list(command.kinds)


async def _no_task(committed: Committed | None) -> ReplyFields:
    del committed
    return {"task": None}


async def recognise_claim(uow: UnitOfWork, command: ClaimTask) -> Recognised | None:
    """A retried claim: the same task and lease as the first reply, read from the log."""
    task_id = uow.repos.tasks.claimed_by(command.command_id or "")
    if task_id is None:
        return None
    loaded = await uow.get(uow.repos.tasks, task_id)
    record = loaded.commands.get(command.command_id or "")
    leased = await _lease_written_by(uow, task_id, command.command_id or "")
    if record is None or leased is None or loaded.state is None:
        return None
    return Recognised(task_id, record, {"task": await _task_view(uow, loaded.state, leased)})


async def _lease_written_by(uow: UnitOfWork, task_id: str, command_id: str
                            ) -> TaskLeased | None:
    for recorded in await uow.store.read_subject(uow.repos.tasks.subject(task_id)):
        try:
            stored = uow.codec.decode(recorded.payload, recorded.seq)
            if stored.type == "TaskLeased" and stored.command_id == command_id:
                event = uow.codec.typed(stored)
                return event if isinstance(event, TaskLeased) else None
        except DecodeError:
            continue
    return None


async def _task_view(uow: UnitOfWork, state: TaskState, lease: TaskLeased) -> ReplyFields:
    """What a worker needs to run the task it claimed, with its retry's instruction."""
    instruction = lease.instruction
    payload = uow.repos.tasks.payload_of(state.task_id)
    if payload is None:
        submitted = await uow.store.first_on_subject(uow.repos.tasks.subject(state.task_id))
        payload = uow.codec.decode(submitted.payload).data.get("payload", {}) if submitted else {}
    return {
        "task_id": state.task_id, "run_id": state.run_id, "kind": state.kind,
        "priority": state.priority, "payload": payload, "lease_epoch": lease.lease_epoch,
        "attempt": lease.attempt, "lease_expires_at": lease.lease_expires_at.isoformat(),
        "max_attempts": state.max_attempts,
        "model": (instruction.model if instruction and instruction.model else state.model),
        "instruction": instruction.model_dump(mode="json") if instruction else None,
    }


_on_task = on_target(lambda repos: repos.tasks, task.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(SubmitTask, submit_task, TASK_WRITE, replay=replay_submit),
    Route(ClaimTask, claim_task, CLAIM, recognise=recognise_claim),
    Route(StartTask, _on_task, TASK_WRITE),
    Route(HeartbeatTask, _on_task, TASK_WRITE),
    Route(SucceedTask, _on_task, TASK_WRITE),
    Route(FailTask, end_attempt, TASK_WRITE),
    Route(CancelTask, _on_task, TASK_WRITE),
    Route(ExpireTaskLease, end_attempt, TASK_WRITE),
    Route(TimeOutTask, end_attempt, TASK_WRITE),
    Route(RequeueTask, _on_task, TASK_WRITE),
    Route(BlockTask, _on_task, TASK_WRITE),
    Route(UnblockTask, unblock_task, TASK_WRITE),
    Route(DeferTask, _on_task, TASK_WRITE),
    Route(QueueTask, _on_task, TASK_WRITE),
)
