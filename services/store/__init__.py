"""The event store: a port, JetStream and in-memory adapters, and KV snapshots.

The JetStream parts (and NATS with them: 15 MB and 0.15 s to load) are imported the
first time one of their names is asked for, so a process that only handles events (a
replay's applier) never loads them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Imports a JetStream name's module the first time the name is asked for."""
    home = _ON_NATS.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
