"""The event store: JetStream as the log, KV as the snapshot cache."""

from .event_store import EXPECTED_SEQ_HEADER, JetStreamEventStore
from .feed import EventFeed
from .records import AppendResult, OutgoingMessage, RecordedEvent
from .snapshots import Snapshot, SnapshotStore

__all__ = [
    "EXPECTED_SEQ_HEADER",
    "AppendResult",
    "EventFeed",
    "JetStreamEventStore",
    "OutgoingMessage",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
]
