"""What most handlers share: load the target, decide with its machine, record the events."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from events.base import Command, DomainEvent
from events.errors import ErrorCode
from services.domain import Context, DomainError
from services.domain.context import Facts
from services.domain.run import RunState

from ..aggregates import Repositories
from ..repositories import Repository
from ..routes import Handler, Outcome, target_of
from ..unit_of_work import UnitOfWork

__all__ = ["Decide", "load_run", "on_target", "require_exists", "with_run"]

S = TypeVar("S")
C = TypeVar("C", bound=Command)

Decide = Callable[[S | None, C, Context], list[DomainEvent]]


def on_target(repo_of: Callable[[Repositories], Repository[S]], decide: Decide[S, C]
              ) -> Handler[C]:
    """A handler that decides a command on its target aggregate alone."""

    async def handle(uow: UnitOfWork, command: C) -> Outcome:
        repo = repo_of(uow.repos)
        loaded = await uow.get(repo, target_of(command))
        uow.record(repo, loaded, decide(loaded.state, command, uow.context()))
        return Outcome(loaded)

    return handle


def with_run(repo_of: Callable[[Repositories], Repository[S]], decide: Decide[S, C],
             run_id_of: Callable[[C], str]) -> Handler[C]:
    """A handler whose rules read the run the command names (creates under a run)."""

    async def handle(uow: UnitOfWork, command: C) -> Outcome:
        repo = repo_of(uow.repos)
        loaded = await uow.get(repo, target_of(command))
        run = await load_run(uow, run_id_of(command))
        uow.record(repo, loaded, decide(loaded.state, command, uow.context(Facts(run=run))))
        return Outcome(loaded)

    return handle


async def load_run(uow: UnitOfWork, run_id: str) -> RunState | None:
    """The state of a run, or None when it does not exist."""
    return (await uow.get(uow.repos.runs, run_id)).state


def require_exists(state: S | None, what: str, hint: str = "") -> S:
    """The state, or ``not_found`` naming ``what``."""
    if state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"{what} does not exist{hint}")
    return state
