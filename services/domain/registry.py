"""The state machines, typed per aggregate, and by name for documentation and replay tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from events.base import Command, DomainEvent

from . import (
    breaker,
    budget,
    cache,
    gate,
    model,
    patch,
    queue,
    reservation,
    routing,
    run,
    task,
    worker,
    workstream,
)
from .breaker import BreakerState
from .budget import BudgetState
from .cache import CacheState
from .context import Context
from .gate import GateState
from .machine import TransitionTable
from .model import ModelState
from .patch import PatchState
from .queue import QueueState
from .reservation import ReservationState
from .routing import RoutingState
from .run import RunState
from .task import TaskState
from .worker import WorkerState
from .workstream import WorkstreamState

__all__ = [
    "BREAKER",
    "BUDGET",
    "CACHE",
    "GATE",
    "MACHINES",
    "MODEL",
    "PATCH",
    "QUEUE",
    "RESERVATION",
    "ROUTING",
    "RUN",
    "TASK",
    "WORKER",
    "WORKSTREAM",
    "Machine",
]

S = TypeVar("S")


@dataclass(frozen=True)
class Machine(Generic[S]):
    """One aggregate type's rules: its table, ``decide`` and ``evolve``."""

    table: TransitionTable
    decide: Callable[[S | None, Command, Context], list[DomainEvent]]
    evolve: Callable[[S | None, DomainEvent], S]

    @property
    def name(self) -> str:
        """The aggregate type's name (``task``), as in its subjects."""
        return self.table.aggregate


RUN = Machine[RunState](run.TABLE, run.decide, run.evolve)
WORKSTREAM = Machine[WorkstreamState](workstream.TABLE, workstream.decide, workstream.evolve)
TASK = Machine[TaskState](task.TABLE, task.decide, task.evolve)
WORKER = Machine[WorkerState](worker.TABLE, worker.decide, worker.evolve)
BREAKER = Machine[BreakerState](breaker.TABLE, breaker.decide, breaker.evolve)
PATCH = Machine[PatchState](patch.TABLE, patch.decide, patch.evolve)
GATE = Machine[GateState](gate.TABLE, gate.decide, gate.evolve)
MODEL = Machine[ModelState](model.TABLE, model.decide, model.evolve)
BUDGET = Machine[BudgetState](budget.TABLE, budget.decide, budget.evolve)
QUEUE = Machine[QueueState](queue.TABLE, queue.decide, queue.evolve)
ROUTING = Machine[RoutingState](routing.TABLE, routing.decide, routing.evolve)
CACHE = Machine[CacheState](cache.TABLE, cache.decide, cache.evolve)
RESERVATION = Machine[ReservationState](reservation.TABLE, reservation.decide,
                                        reservation.evolve)

MACHINES: dict[str, Machine[Any]] = {
    m.name: m for m in (RUN, WORKSTREAM, TASK, WORKER, BREAKER, PATCH, GATE, MODEL, BUDGET,
                        QUEUE, ROUTING, CACHE, RESERVATION)
}
"""Every machine by aggregate name, for generated documentation and whole-domain tests."""
