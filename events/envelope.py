"""The event envelope: the metadata every stored event carries beside its own fields.

On the wire an event is one flat JSON object: the envelope fields below plus the
event's own fields (``run_id``, ``reason``, ...), so that a consumer reading raw
JSON sees every field at the top level.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .ids import Id
from .versions import UpcasterRegistry, registry

__all__ = ["ENVELOPE_FIELDS", "EventEnvelope", "utc_now"]

ENVELOPE_FIELDS = frozenset(
    {
        "type",
        "schema_version",
        "event_id",
        "aggregate",
        "aggregate_id",
        "version",
        "occurred_at",
        "command_id",
        "from_state",
        "to_state",
    }
)


def utc_now() -> datetime:
    """Returns the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """One immutable fact about one aggregate, as stored on the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$")
    schema_version: int = Field(ge=1)
    event_id: str
    aggregate: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    aggregate_id: Id
    version: int = Field(ge=1)
    occurred_at: datetime
    command_id: str
    from_state: str | None = None
    """The aggregate's state before this event (None for a creation)."""
    to_state: str | None = None
    """The aggregate's state after it; the audit trail reads both without the domain."""
    data: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Returns the flat wire form: envelope fields and the event's own fields."""
        clash = ENVELOPE_FIELDS.intersection(self.data)
        if clash:
            raise ValueError(f"event fields shadow envelope fields: {sorted(clash)}")
        head = {
            "type": self.type,
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "command_id": self.command_id,
            "from_state": self.from_state,
            "to_state": self.to_state,
        }
        return head | self.data

    def to_json(self) -> bytes:
        """Serialises the event for the log."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], upcasters: UpcasterRegistry = registry
    ) -> EventEnvelope:
        """Loads a stored event, upcasting its fields to the current schema version."""
        data = {k: v for k, v in raw.items() if k not in ENVELOPE_FIELDS}
        version, data = upcasters.upcast(raw["type"], int(raw["schema_version"]), data)
        head = {k: raw.get(k) for k in ENVELOPE_FIELDS}
        return cls.model_validate(head | {"data": data, "schema_version": version})

    @classmethod
    def from_json(cls, payload: bytes, upcasters: UpcasterRegistry = registry) -> EventEnvelope:
        """Parses and upcasts one stored event."""
        return cls.from_dict(json.loads(payload), upcasters)
