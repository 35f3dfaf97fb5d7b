"""Worker commands; drain, deregister and mark_lost read what the worker holds from the board."""

from __future__ import annotations

from events.commands.worker import (
    DeregisterWorker,
    DrainWorker,
    HeartbeatWorker,
    MarkWorkerLost,
    RegisterWorker,
)
from services.domain import worker
from services.domain.context import Facts

from ..routes import AnyRoute, Outcome, Route
from ..unit_of_work import UnitOfWork
from .common import on_target

__all__ = ["ROUTES"]


async def with_held_tasks(uow: UnitOfWork,
                          command: DrainWorker | DeregisterWorker | MarkWorkerLost) -> Outcome:
    """Decides on the worker with the tasks it holds now (its live leases)."""
    loaded = await uow.get(uow.repos.workers, command.worker_id)
    facts = Facts(held=uow.repos.tasks.board.held_by(command.worker_id))
    uow.record(uow.repos.workers, loaded,
               worker.decide(loaded.state, command, uow.context(facts)))
    return Outcome(loaded)


_on_worker = on_target(lambda repos: repos.workers, worker.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(RegisterWorker, _on_worker),
    Route(HeartbeatWorker, _on_worker),
    Route(DrainWorker, with_held_tasks),
    Route(DeregisterWorker, with_held_tasks),
    Route(MarkWorkerLost, with_held_tasks),
)
