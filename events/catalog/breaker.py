"""Events of the circuit breaker aggregate: one per provider, model or other key."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from events.base import DomainEvent, ShortText
from events.ids import Id

from .task import ErrorClass

__all__ = [
    "BreakerClosed",
    "BreakerConfigured",
    "BreakerFailureRecorded",
    "BreakerForcedClosed",
    "BreakerForcedOpen",
    "BreakerHalfOpened",
    "BreakerOpened",
    "BreakerReset",
    "BreakerSuccessRecorded",
]


class _BreakerEvent(DomainEvent):
    aggregate: ClassVar[str] = "breaker"

    breaker_id: Id


class BreakerConfigured(_BreakerEvent):
    """The breaker was created (``closed``) or its settings changed."""

    failure_threshold: int = Field(ge=1, le=10_000)
    cooldown_s: float = Field(gt=0, le=86_400)


class BreakerFailureRecorded(_BreakerEvent):
    """A call failed while ``closed``, below the threshold."""

    consecutive_failures: int = Field(ge=1)
    error_class: ErrorClass | None = None


class BreakerSuccessRecorded(_BreakerEvent):
    """A call succeeded while ``closed`` after failures: the count starts again."""


class BreakerOpened(_BreakerEvent):
    """Calls are refused until ``until``; then one probe is let through."""

    until: datetime
    consecutive_failures: int = Field(ge=1)
    error_class: ErrorClass | None = None


class BreakerHalfOpened(_BreakerEvent):
    """One probe (``probe_id``) may call until ``probe_deadline``; every other caller waits."""

    probe_id: Id | None = None
    probe_deadline: datetime


class BreakerClosed(_BreakerEvent):
    """The probe succeeded: calls flow again."""


class BreakerReset(_BreakerEvent):
    """An operator closed the breaker and cleared its failure count."""


class BreakerForcedOpen(_BreakerEvent):
    """An operator opened the breaker: calls are refused until ``until`` (None: until
    ``breaker.force_close``); a later automatic open never shortens it."""

    until: datetime | None = None
    reason: ShortText = ""


class BreakerForcedClosed(_BreakerEvent):
    """An operator closed the breaker (forced open or not) and cleared its failure count."""

    reason: ShortText = ""
