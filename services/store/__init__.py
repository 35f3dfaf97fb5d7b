"""The event store: a port, JetStream and in-memory adapters, and KV snapshots.

The JetStream parts (and NATS with them: 15 MB and 0.15 s to load) are imported the
first time one of their names is asked for, so a process that only handles events (a
replay's applier) never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.lazy import lazy_names

from .memory import InMemoryEventStore
from .port import EventFeed, EventStore
from .records import AppendResult, Expectation, OutgoingMessage, RecordedEvent
from .stalls import STALL_S, contiguous_run, follow_log, log_holds_past, next_batch_within

if TYPE_CHECKING:
    from .feed import JetStreamFeed
    from .jetstream import EXPECTED_SEQ_HEADER, EXPECTED_SUBJECT_HEADER, JetStreamEventStore
    from .snapshots import Snapshot, SnapshotStore

_ON_NATS = {
    "EXPECTED_SEQ_HEADER": "jetstream",
    "EXPECTED_SUBJECT_HEADER": "jetstream",
    "JetStreamEventStore": "jetstream",
    "JetStreamFeed": "feed",
    "Snapshot": "snapshots",
    "SnapshotStore": "snapshots",
}
"""The names whose modules need NATS, and those modules."""

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


__getattr__ = lazy_names(__name__, _ON_NATS)
