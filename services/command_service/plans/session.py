"""What a plan works with, and the plan every single-aggregate command uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.base import Command
from services.domain import MACHINES, Context, DomainError
from services.store import JetStreamEventStore

from ..aggregates import AggregateRepository, CommandRecord, Loaded
from ..changes import Change
from ..task_queue import TaskQueueIndex

__all__ = [
    "Decision",
    "Plan",
    "Session",
    "decide_on",
    "load_target",
    "on_fresh_reads",
    "seen_before",
    "single_aggregate",
    "with_run",
]


@dataclass
class Session:
    """What a plan may use while deciding one command."""

    repository: AggregateRepository
    store: JetStreamEventStore
    task_index: TaskQueueIndex
    now: datetime
    lease_ttl_s: float = 30.0
    loaded: list[Loaded] = field(default_factory=list)

    async def load(self, aggregate: str, aggregate_id: str) -> Loaded:
        """Loads an aggregate and remembers it, so a conflict refreshes exactly these."""
        loaded = await self.repository.load(aggregate, aggregate_id)
        self.loaded.append(loaded)
        return loaded

    async def load_written_by(self, aggregate: str, aggregate_id: str, command_id: str
                              ) -> Loaded:
        """Loads an aggregate a retried command also wrote, caught up if this copy predates it."""
        # The command's events landed on every aggregate at once, but this replica may
        # have cached this one before (when another replica wrote them).
        loaded = await self.load(aggregate, aggregate_id)
        if command_id in loaded.commands:
            return loaded
        fresh = await self.repository.refresh(aggregate, aggregate_id)
        self.loaded.append(fresh)
        return fresh

    async def states(self, aggregate: str, ids: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """The current states of several aggregates of one type (None where missing)."""
        return {aggregate_id: (await self.load(aggregate, aggregate_id)).state
                for aggregate_id in ids}


@dataclass(frozen=True)
class Decision:
    """A plan's outcome: changes to append, or the reply of an earlier identical command."""

    changes: list[Change]
    extra: Callable[[list[Loaded]], Awaitable[dict[str, Any]]] | None = None
    """Reply fields beyond the envelope, from the aggregates as they are after the append."""
    seen: list[tuple[Loaded, CommandRecord]] = field(default_factory=list)
    """For a retried command: what it wrote to each aggregate, the target first."""


Plan = Callable[[Session, Command], Awaitable[Decision]]


_REREADS = 2
"""How often a decision resting on stale reads is made again before it stands as it is."""


def on_fresh_reads(plan: Plan) -> Plan:
    """Wraps a plan so that no reply rests on state another replica has since changed."""
    # A cached aggregate is behind the log when another replica wrote it. The append's
    # concurrency check covers what a decision writes, but not a refusal, a decision that
    # writes nothing (a closed breaker, an empty claim), nor the facts it only read (the
    # run of a submitted task, a model's price, a budget): those are caught up from the
    # log, and the plan decides again when they moved.
    async def fresh(session: Session, command: Command) -> Decision:
        for _ in range(_REREADS):
            try:
                decision = await plan(session, command)
            except DomainError:
                if not await _moved(session, session.loaded):
                    raise
                continue
            if decision.seen:
                return decision
            written = {id(c.loaded) for c in decision.changes if c.events}
            if not await _moved(session, [x for x in session.loaded if id(x) not in written]):
                return decision
        return await plan(session, command)

    return fresh


async def _moved(session: Session, read: list[Loaded]) -> bool:
    """Catches the aggregates ``read`` up with the log; on news, forgets what the plan loaded."""
    moved = False
    for key in dict.fromkeys((x.aggregate, x.aggregate_id) for x in read):
        known = max(x.last_seq for x in read if (x.aggregate, x.aggregate_id) == key)
        moved |= (await session.repository.refresh(*key)).last_seq > known
    if moved:
        session.loaded.clear()
    return moved


def seen_before(loaded: Loaded, command: Command, *also: Loaded | None) -> Decision | None:
    """Answers a retried command from the log instead of deciding it again.

    ``also`` names the other aggregates the command may have written to, so the
    replayed reply lists every event, as the first reply did.
    """
    record = loaded.commands.get(command.command_id or "")
    if record is None:
        return None
    seen = [(loaded, record)]
    for other in also:
        other_record = other.commands.get(command.command_id or "") if other else None
        if other is not None and other_record is not None:
            seen.append((other, other_record))
    return Decision([], seen=seen)


async def load_target(session: Session, command: Command) -> Loaded:
    """Loads the aggregate a command addresses."""
    target_id = command.target_id()
    assert target_id is not None, "ids are filled in before planning"
    return await session.load(command.aggregate, target_id)


async def single_aggregate(session: Session, command: Command) -> Decision:
    """Loads the target, checks for a retry, and decides with no outside facts."""
    loaded = await load_target(session, command)
    return seen_before(loaded, command) or decide_on(session, loaded, command, None)


def decide_on(session: Session, loaded: Loaded, command: Command, related: Any) -> Decision:
    """Decides ``command`` on ``loaded`` with ``related`` facts; one change."""
    ctx = Context(now=session.now, related=related)
    events = MACHINES[loaded.aggregate].decide(loaded.state, command, ctx)
    return Decision([Change(loaded, events)])


async def with_run(session: Session, command: Command) -> Decision:
    """For commands whose rules read the run named by their ``run_id`` (creates under a run)."""
    loaded = await load_target(session, command)
    earlier = seen_before(loaded, command)
    if earlier:
        return earlier
    run = await session.load("run", command.run_id)  # type: ignore[attr-defined]
    return decide_on(session, loaded, command, run.state)
