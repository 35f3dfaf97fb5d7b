"""Events of the result cache aggregate: invalidations (results are task events)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, Label, ShortText

__all__ = ["CacheInvalidated"]


class CacheInvalidated(DomainEvent):
    """Results stored until now under ``cache_key``, or under keys starting with ``prefix``,
    no longer answer submissions; a task that succeeds later is cached again."""

    aggregate: ClassVar[str] = "cache"

    cache_key: Label | None = None
    prefix: Label | None = None
    reason: ShortText = ""
    dropped: int = Field(default=0, ge=0)
    """How many stored results the deciding replica held under it (and dropped)."""
