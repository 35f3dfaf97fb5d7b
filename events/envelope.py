"""The event envelope: the metadata every stored event carries beside its own fields.

On the wire an event is one flat JSON object: the envelope fields below plus the
event's own fields (``run_id``, ``reason``, ...), so that a consumer reading raw
JSON sees every field at the top level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .ids import Id

if TYPE_CHECKING:
    from .codec import EventCodec

__all__ = [
    "ENVELOPE_FIELDS",
    "DecodeError",
    "EventEnvelope",
    "EventHead",
    "StoredEvent",
    "parse_time",
    "utc_now",
]

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


class DecodeError(ValueError):
    """A stored message is not a readable event."""


@dataclass(frozen=True, slots=True)
class EventHead:
    """The envelope of one event about to be written (the codec adds type and version)."""

    event_id: str
    aggregate: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    command_id: str
    from_state: str | None
    to_state: str | None


@dataclass(slots=True)
class StoredEvent:
    """One decoded event: the envelope fields typed, the flat wire object in ``data``.

    ``data`` holds the envelope fields too (reading them costs nothing; removing them
    would cost a dict per event on the read side's hot path); ``fields`` has only the
    event's own.
    """

    seq: int
    type: str
    schema_version: int
    aggregate: str
    aggregate_id: str
    version: int
    occurred_at: str
    """ISO 8601 text as stored; ``when`` parses it."""
    command_id: str | None
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]
    traceparent: str | None = None
    subject: str = ""

    @property
    def when(self) -> datetime:
        """The time the event occurred."""
        return parse_time(self.occurred_at)

    @property
    def fields(self) -> dict[str, Any]:
        """The event's own fields, without the envelope."""
        return {k: v for k, v in self.data.items() if k not in ENVELOPE_FIELDS}


def parse_time(value: object) -> datetime:
    """Parses an ISO 8601 time; a naive one is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise DecodeError(f"not a time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
        """Serialises the event for the log, through the one codec."""
        return _codec().encode_raw(self.type, self.head(), self.data, self.schema_version)

    def head(self) -> EventHead:
        """The envelope fields as the codec writes them."""
        return EventHead(self.event_id, self.aggregate, self.aggregate_id, self.version,
                         self.occurred_at, self.command_id, self.from_state, self.to_state)

    @classmethod
    def from_stored(cls, stored: StoredEvent) -> EventEnvelope:
        """The envelope of an event the codec decoded (and upcast)."""
        head = {k: stored.data.get(k) for k in ENVELOPE_FIELDS}
        return cls.model_validate(head | {"data": stored.fields,
                                          "schema_version": stored.schema_version})

    @classmethod
    def from_json(cls, payload: bytes) -> EventEnvelope:
        """Parses and upcasts one stored event, through the one codec."""
        return cls.from_stored(_codec().decode(payload))


def _codec() -> EventCodec:
    # The codec reads the event catalog, which is built on this module: imported late.
    from .codec import CODEC

    return CODEC
