"""``run.create``: a run that draws on a shared budget needs that budget to exist."""

from __future__ import annotations

from events.base import Command
from events.commands.run import CreateRun
from events.errors import ErrorCode
from services.domain import DomainError

from .session import Decision, Session, decide_on, load_target, seen_before

__all__ = ["create_run"]


async def create_run(session: Session, command: Command) -> Decision:
    """Refuses a ``budget_id`` naming no budget: usage on such a run could never be charged."""
    assert isinstance(command, CreateRun)
    loaded = await load_target(session, command)
    earlier = seen_before(loaded, command)
    if earlier:
        return earlier
    if command.budget_id and (await session.load("budget", command.budget_id)).state is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"budget {command.budget_id} does not exist; "
                          "create it with budget.create", {"budget_id": command.budget_id})
    return decide_on(session, loaded, command, None)
