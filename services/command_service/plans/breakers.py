"""``breaker.acquire``: the reply says whether the caller may call the guarded provider."""

from __future__ import annotations

from typing import Any

from events.base import Command
from services.domain import Context, breaker

from ..aggregates import Loaded
from .session import Decision, Session, decide_on, load_target, seen_before

__all__ = ["acquire_breaker"]


async def acquire_breaker(session: Session, command: Command) -> Decision:
    """Decides the acquire and adds ``allowed`` and the breaker's state to the reply."""
    loaded = await load_target(session, command)
    earlier = seen_before(loaded, command)
    if earlier:
        # A retried acquire that wrote BreakerHalfOpened was the one probe let through.
        return Decision([], extra=_allowed(True), seen=earlier.seen)
    before = loaded.state
    decision = decide_on(session, loaded, command, None)
    events = list(decision.changes[0].events)
    allowed = breaker.acquire_allowed(before, events, Context(now=session.now))
    return Decision(decision.changes, extra=_allowed(allowed))


def _allowed(allowed: bool) -> Any:
    async def extra(updated: list[Loaded]) -> dict[str, Any]:
        state = getattr(updated[0].state, "state", None) if updated else None
        return {"allowed": allowed, "state": state or "closed"}

    return extra
