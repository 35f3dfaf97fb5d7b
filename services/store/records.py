"""Value objects the event store reads and writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from events import EventEnvelope

__all__ = ["AppendResult", "OutgoingMessage", "RecordedEvent"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to append: its subject, body and headers."""

    subject: str
    payload: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append landed: the first and last stream sequences it wrote."""

    first_seq: int
    last_seq: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One message read back from the stream; ``seq`` is the global position."""

    seq: int
    subject: str
    payload: bytes
    headers: Mapping[str, str]

    @property
    def msg_id(self) -> str | None:
        """The ``Nats-Msg-Id`` the message was written with."""
        return self.headers.get("Nats-Msg-Id")

    def json(self) -> dict[str, Any]:
        """Decodes the body as a JSON object."""
        value = json.loads(self.payload)
        if not isinstance(value, dict):
            raise ValueError(f"seq {self.seq}: event body is not a JSON object")
        return value

    def envelope(self) -> EventEnvelope:
        """Parses and upcasts the body as a runlog event."""
        return EventEnvelope.from_json(self.payload)
