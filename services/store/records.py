"""Value objects the event store reads and writes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from events import EventEnvelope

__all__ = ["AppendResult", "Expectation", "OutgoingMessage", "RecordedEvent", "expecting"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """Optimistic concurrency: the last sequence that must still be the last one.

    ``subject_filter`` None checks the message's own subject (an aggregate); a filter
    (``runlog.evt.task.*``) checks the last sequence of every subject it matches, which
    is how one message is guarded by a whole partition of the log. 0 means "nothing yet".
    """

    last_seq: int
    subject_filter: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to append: its subject, body, idempotency id, headers and expectation."""

    subject: str
    payload: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    expect: Expectation | None = None


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
    stored_ns: int = 0
    """When the server stored it (Unix ns), where the reader knows it (0: unknown)."""

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


def expecting(messages: Sequence[OutgoingMessage], last_seqs: Mapping[str, int]
              ) -> list[OutgoingMessage]:
    """The messages with each subject's first one expecting that subject's last sequence."""
    checked: set[str] = set()
    guarded = []
    for msg in messages:
        if msg.subject in last_seqs and msg.subject not in checked:
            checked.add(msg.subject)
            msg = replace(msg, expect=Expectation(last_seqs[msg.subject]))
        guarded.append(msg)
    return guarded
