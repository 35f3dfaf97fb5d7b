"""How stored events and tracking records map to JetStream subjects, headers and bodies."""

from __future__ import annotations

import base64
import string
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent, Tracking

from services.store import OutgoingMessage, RecordedEvent

__all__ = [
    "NOTIFICATION_ID_HEADER",
    "TOPIC_HEADER",
    "VERSION_HEADER",
    "Subjects",
    "decode_event",
    "decode_notification",
    "encode_event",
    "encode_tracking",
]

VERSION_HEADER = "Es-Version"
TOPIC_HEADER = "Es-Topic"
TOPIC_B64_HEADER = "Es-Topic-B64"
NOTIFICATION_ID_HEADER = "Es-Notification-Id"

_SAFE = frozenset(string.ascii_letters + string.digits + "-")
_STR_ID = "s-"


def escape_token(text: str) -> str:
    """Turns any text into one subject token; the mapping is reversible."""
    return "".join(c if c in _SAFE else "".join(f"_{b:02x}" for b in c.encode()) for c in text)


def unescape_token(token: str) -> str:
    """Reverses ``escape_token``."""
    raw = bytearray()
    index = 0
    while index < len(token):
        if token[index] == "_":
            raw.append(int(token[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(token[index]))
            index += 1
    return raw.decode()


def id_token(originator_id: UUID | str) -> str:
    """A UUID gives its 32 hex digits, a string ``s-`` and its escaped text: they never meet."""
    if isinstance(originator_id, UUID):
        return originator_id.hex
    return _STR_ID + escape_token(originator_id)


def id_from_token(token: str) -> UUID | str:
    """Reverses ``id_token``."""
    if token.startswith(_STR_ID):
        return unescape_token(token[len(_STR_ID) :])
    return UUID(hex=token)


@dataclass(frozen=True, slots=True)
class Subjects:
    """The subjects of one recorder: ``<root>.e.<originator>`` and ``<root>.t.<application>``."""

    root: str

    def event(self, originator_id: UUID | str) -> str:
        """The subject holding one originator's events, in version order."""
        return f"{self.root}.e.{id_token(originator_id)}"

    def tracking(self, application_name: str) -> str:
        """The subject holding the tracking records of one upstream application."""
        return f"{self.root}.t.{id_token(application_name)}"

    @property
    def events(self) -> str:
        """A filter matching every event subject (and no tracking subject)."""
        return f"{self.root}.e.*"


def _topic_headers(topic: str) -> dict[str, str]:
    # NATS headers are text lines parsed like e-mail headers; anything unusual goes in base64.
    if topic and topic.isascii() and topic.isprintable() and topic == topic.strip():
        return {TOPIC_HEADER: topic}
    return {TOPIC_B64_HEADER: base64.b64encode(topic.encode()).decode()}


def _topic_of(headers: Mapping[str, str]) -> str:
    if TOPIC_HEADER in headers:
        return headers[TOPIC_HEADER]
    return base64.b64decode(headers.get(TOPIC_B64_HEADER, "")).decode()


def encode_event(event: StoredEvent, subjects: Subjects, msg_id: str) -> OutgoingMessage:
    """The message for one stored event: its state as the body, version and topic as headers."""
    headers = {VERSION_HEADER: str(event.originator_version), **_topic_headers(event.topic)}
    return OutgoingMessage(subjects.event(event.originator_id), bytes(event.state), msg_id, headers)


def encode_tracking(tracking: Tracking, subjects: Subjects, msg_id: str) -> OutgoingMessage:
    """The message recording that ``tracking.notification_id`` has been processed."""
    headers = {NOTIFICATION_ID_HEADER: str(tracking.notification_id)}
    return OutgoingMessage(subjects.tracking(tracking.application_name), b"", msg_id, headers)


def decode_event(message: RecordedEvent) -> StoredEvent:
    """Reads a stored event back from its message."""
    return StoredEvent(
        originator_id=id_from_token(message.subject.rsplit(".", 1)[1]),
        originator_version=int(message.headers[VERSION_HEADER]),
        topic=_topic_of(message.headers),
        state=bytes(message.payload),
    )


def decode_notification(message: RecordedEvent) -> Notification:
    """Reads a notification back from its message; its id is the stream sequence."""
    event = decode_event(message)
    return Notification(
        id=message.seq,
        originator_id=event.originator_id,
        originator_version=event.originator_version,
        topic=event.topic,
        state=event.state,
    )
