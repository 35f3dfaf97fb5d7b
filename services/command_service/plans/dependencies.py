"""Commands whose rules read the states of the aggregates their target depends on."""

from __future__ import annotations

from events.base import Command

from .session import Decision, Session, decide_on, load_target, seen_before

__all__ = ["with_dependencies"]


async def with_dependencies(session: Session, command: Command) -> Decision:
    """``task.unblock`` / ``workstream.ready``: the target's dependencies must be done."""
    loaded = await load_target(session, command)
    earlier = seen_before(loaded, command)
    if earlier:
        return earlier
    depends_on = tuple(getattr(loaded.state, "depends_on", ()) or ())
    related = await session.states(loaded.aggregate, depends_on) if depends_on else None
    return decide_on(session, loaded, command, related)
