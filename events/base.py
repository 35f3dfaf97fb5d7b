"""Base classes of commands and domain events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .ids import Id

__all__ = [
    "JSON_OBJECT_MAX_CHARS",
    "Command",
    "DomainEvent",
    "JsonObject",
    "Kind",
    "Label",
    "Limit",
    "Moment",
    "ShortText",
]

ShortText = Annotated[str, StringConstraints(max_length=2000, strict=True)]
"""Free text (reasons, messages), bounded so a hostile body cannot bloat the log."""
Label = Annotated[str, StringConstraints(min_length=1, max_length=256, strict=True)]
Kind = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$", strict=True)
]
"""A work kind (``llm.chat``, ``tool:git``) that tasks declare and workers serve."""

Limit = Annotated[int, Field(ge=1, le=1_000_000)]
"""A concurrency limit: how many leased tasks at once (at least 1)."""

JSON_OBJECT_MAX_CHARS = 32 * 1024
"""The largest task payload or result, measured as compact ASCII JSON."""


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    # ASCII-escaped compact JSON is an upper bound of the stored size, whatever the input.
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"not a JSON object: {exc}") from None
    if size > JSON_OBJECT_MAX_CHARS:
        raise ValueError(f"object is {size} characters of JSON; the limit is "
                         f"{JSON_OBJECT_MAX_CHARS}")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""A JSON object (task payload, result) of at most ``JSON_OBJECT_MAX_CHARS``."""


def _in_utc(moment: datetime) -> datetime:
    # A time without a zone is read as UTC: the log's clock is UTC throughout.
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range once converted to UTC") from None


Moment = Annotated[datetime, AfterValidator(_in_utc)]
"""An ISO 8601 time, kept in UTC (one without a zone is read as UTC)."""


class Command(BaseModel):
    """An imperative request; strict types and unknown fields rejected."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    subject: ClassVar[str]
    """Where it is served, after ``runlog.cmd.``: ``<aggregate>.<action>``."""
    aggregate: ClassVar[str]
    """The aggregate type whose events it writes (usually the subject's first token)."""
    id_field: ClassVar[str]
    """The field naming the target aggregate."""

    command_id: Id | None = None
    """The client's id for the command (idempotency); the service fills a missing one, and
    ``model_fields_set`` tells which it was (a generated id is left out of it)."""

    def target_id(self) -> str | None:
        """Returns the target aggregate's id (None when the service generates one)."""
        value = getattr(self, self.id_field)
        return value if isinstance(value, str) else None


class DomainEvent(BaseModel):
    """A past-tense fact's own fields; the envelope (ids, version, time) is added on append."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        """The ``type`` the event is stored with: the class name."""
        return cls.__name__

    def fields(self) -> dict[str, Any]:
        """Returns the event's own fields as JSON-ready data."""
        return self.model_dump(mode="json")

    def chosen_state(self) -> str | None:
        """The state this event leads to, where its transition lists several (else None)."""
        return None

