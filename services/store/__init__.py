"""The event store: a port, JetStream and in-memory adapters, and KV snapshots."""

from .feed import JetStreamFeed
from .jetstream import EXPECTED_SEQ_HEADER, EXPECTED_SUBJECT_HEADER, JetStreamEventStore
from .memory import InMemoryEventStore
from .port import EventFeed, EventStore
from .records import AppendResult, Expectation, OutgoingMessage, RecordedEvent
from .snapshots import Snapshot, SnapshotStore
from .stalls import STALL_S, contiguous_run, follow_log, log_holds_past, next_batch_within

__all__ = [
    "EXPECTED_SEQ_HEADER",
    "EXPECTED_SUBJECT_HEADER",
    "STALL_S",
    "AppendResult",
    "EventFeed",
    "EventStore",
    "Expectation",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "JetStreamFeed",
    "OutgoingMessage",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
    "contiguous_run",
    "follow_log",
    "log_holds_past",
    "next_batch_within",
]
