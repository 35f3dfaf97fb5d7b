"""The state machines by aggregate name, for the service and replay to look up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.base import Command, DomainEvent

from . import breaker, budget, gate, model, patch, run, task, worker, workstream
from .context import Context
from .machine import TransitionTable

__all__ = ["MACHINES", "Machine"]


@dataclass(frozen=True)
class Machine:
    """One aggregate type's rules: its table, ``decide`` and ``evolve``."""

    name: str
    table: TransitionTable
    decide: Callable[[Any, Command, Context], list[DomainEvent]]
    evolve: Callable[[Any, DomainEvent], Any]


MACHINES: dict[str, Machine] = {
    module.TABLE.aggregate: Machine(module.TABLE.aggregate, module.TABLE, module.decide,
                                    module.evolve)
    for module in (run, workstream, task, worker, breaker, patch, gate, model, budget)
}
