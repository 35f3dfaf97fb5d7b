"""Base classes of commands and domain events."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

from .ids import Id

__all__ = ["Command", "DomainEvent", "Label", "ShortText"]

ShortText = Annotated[str, StringConstraints(max_length=2000, strict=True)]
"""Free text (reasons, messages), bounded so a hostile body cannot bloat the log."""
Label = Annotated[str, StringConstraints(min_length=1, max_length=256, strict=True)]


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

