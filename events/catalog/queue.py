"""Events of the Queue aggregate: the settings of one work kind's queue."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, Kind

__all__ = ["QueueConfigured"]


class QueueConfigured(DomainEvent):
    """At most ``max_running`` tasks of ``kind`` are leased at once from now on (null: any)."""

    aggregate: ClassVar[str] = "queue"

    kind: Kind
    max_running: int | None = Field(default=None, ge=1)
