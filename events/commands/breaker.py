"""Commands of the circuit breaker aggregate."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from events.base import Command, ShortText
from events.catalog.task import ErrorClass
from events.ids import Id

__all__ = [
    "AcquireBreaker",
    "ConfigureBreaker",
    "ForceCloseBreaker",
    "ForceOpenBreaker",
    "RecordBreakerOutcome",
    "ResetBreaker",
]

Threshold = Annotated[int, Field(ge=1, le=10_000)]
Cooldown = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]


class _BreakerCommand(Command):
    aggregate: ClassVar[str] = "breaker"
    id_field: ClassVar[str] = "breaker_id"

    breaker_id: Id


class ConfigureBreaker(_BreakerCommand):
    """Create a breaker, or change its threshold and cooldown."""

    subject: ClassVar[str] = "breaker.configure"
    failure_threshold: Threshold = 5
    cooldown_s: Cooldown = 30.0


class RecordBreakerOutcome(_BreakerCommand):
    """Report one guarded call's outcome; an unknown breaker is created.

    A new breaker gets ``failure_threshold`` and ``cooldown_s`` (default 5 and 30 s).
    """

    subject: ClassVar[str] = "breaker.record"
    outcome: Literal["success", "failure"]
    error_class: ErrorClass | None = None
    failure_threshold: Threshold | None = None
    cooldown_s: Cooldown | None = None


class AcquireBreaker(_BreakerCommand):
    """Ask whether a call may go through; the reply says ``allowed`` true or false.

    After the cooldown exactly one caller wins the probe (``probe_id``).
    """

    subject: ClassVar[str] = "breaker.acquire"
    probe_id: Id | None = None


class ResetBreaker(_BreakerCommand):
    """Close the breaker and clear its failure count."""

    subject: ClassVar[str] = "breaker.reset"


class ForceOpenBreaker(_BreakerCommand):
    """An operator opens the breaker for ``open_for_s`` seconds (omitted: until force_close).

    An open breaker's deadline only moves later: the later of the old and the new.
    """

    subject: ClassVar[str] = "breaker.force_open"
    reason: ShortText = ""
    open_for_s: float | None = Field(default=None, gt=0, le=366 * 86_400, allow_inf_nan=False)


class ForceCloseBreaker(_BreakerCommand):
    """An operator closes the breaker, forced open or not, and clears its failure count."""

    subject: ClassVar[str] = "breaker.force_close"
    reason: ShortText = ""
