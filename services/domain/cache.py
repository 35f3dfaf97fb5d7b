"""The result cache aggregate: the log of invalidations (``cache.invalidate``).

Results themselves are task events (a keyed task's ``TaskSucceeded``); what answers a
submission is ``services/domain/result_cache.py``'s index, folded from both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from events.base import Command, DomainEvent
from events.catalog.cache import CacheInvalidated
from events.commands.cache import InvalidateCache

from .context import Context
from .machine import TransitionTable

__all__ = ["TABLE", "CacheState", "decide", "evolve"]

TABLE = TransitionTable(
    aggregate="cache",
    states=("active",),
    edges={(None, "CacheInvalidated"): "active", ("active", "CacheInvalidated"): "active"},
)


@dataclass(frozen=True, slots=True)
class CacheState:
    """How many invalidations the cache has seen."""

    cache_id: str
    state: str
    invalidations: int = 0


def decide(state: CacheState | None, command: Command, ctx: Context) -> list[DomainEvent]:
    """One ``CacheInvalidated`` per ``cache.invalidate``."""
    if not isinstance(command, InvalidateCache):
        raise TypeError(f"not a cache command: {type(command).__name__}")
    return [CacheInvalidated(cache_key=command.cache_key, prefix=command.prefix,
                             reason=command.reason, dropped=ctx.facts.cached_matches)]


def evolve(state: CacheState | None, event: DomainEvent) -> CacheState:
    """Counts the invalidation."""
    target = TABLE.next_state(state.state if state else None, event.type_name())
    if state is None:
        return CacheState("results", target, 1)
    return replace(state, state=target, invalidations=state.invalidations + 1)
