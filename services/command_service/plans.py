"""How each command turns into changes: which aggregates it loads and which events it decides.

Most commands touch one aggregate (``single_aggregate``). A few span several, and
their changes are appended as one atomic batch with a concurrency check on each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.base import Command
from services.domain import MACHINES, Context

from .aggregates import AggregateRepository, CommandRecord, Loaded
from .changes import Change

__all__ = ["PLANS", "Decision", "Plan", "Session", "single_aggregate"]


@dataclass
class Session:
    """What a plan may use while deciding one command."""

    repository: AggregateRepository
    now: datetime
    loaded: list[Loaded] = field(default_factory=list)

    async def load(self, aggregate: str, aggregate_id: str) -> Loaded:
        """Loads an aggregate and remembers it, so a conflict refreshes exactly these."""
        loaded = await self.repository.load(aggregate, aggregate_id)
        self.loaded.append(loaded)
        return loaded


@dataclass(frozen=True)
class Decision:
    """A plan's outcome: changes to append, or the reply of an earlier identical command."""

    changes: list[Change]
    extra: Callable[[list[Loaded]], dict[str, Any]] | None = None
    seen: tuple[Loaded, CommandRecord] | None = None


Plan = Callable[[Session, Command], Awaitable[Decision]]


def seen_before(loaded: Loaded, command: Command) -> Decision | None:
    """Answers a retried command from the log instead of deciding it again."""
    record = loaded.commands.get(command.command_id or "")
    return Decision([], seen=(loaded, record)) if record else None


async def related_state(session: Session, command: Command) -> Any:
    """Loads the other aggregate a command's rules depend on (the run of a new task, ...)."""
    link = RELATED.get(command.subject)
    if link is None:
        return None
    aggregate, id_field = link
    related_id = getattr(command, id_field)
    return (await session.load(aggregate, related_id)).state if related_id else None


async def single_aggregate(session: Session, command: Command) -> Decision:
    """Loads the target, checks for a retry, and decides."""
    target_id = command.target_id()
    assert target_id is not None, "ids are filled in before planning"
    loaded = await session.load(command.aggregate, target_id)
    earlier = seen_before(loaded, command)
    if earlier:
        return earlier
    ctx = Context(now=session.now, related=await related_state(session, command))
    events = MACHINES[command.aggregate].decide(loaded.state, command, ctx)
    return Decision([Change(loaded, events)])


RELATED: dict[str, tuple[str, str]] = {}
"""Commands whose rules read another aggregate: subject -> (aggregate, id field)."""

PLANS: dict[str, Plan] = {}
"""Commands that need more than ``single_aggregate``, by subject."""
