"""Writing hand-made events to a log, the way a command service (or another replica) would."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from events import EventEnvelope, event_msg_id, event_subject, utc_now
from services.store import AppendResult, EventStore, Expectation, OutgoingMessage

__all__ = ["append_events", "make_event"]


def make_event(aggregate_id: str, version: int, command_id: str, kind: str = "RunStarted",
               **data: object) -> EventEnvelope:
    """A run event with its envelope filled in."""
    return EventEnvelope(
        type=kind, schema_version=1, event_id=uuid.uuid4().hex, aggregate="run",
        aggregate_id=aggregate_id, version=version, occurred_at=utc_now(),
        command_id=command_id, data=dict(data),
    )


async def append_events(store: EventStore, events: Sequence[EventEnvelope], expected_last_seq: int,
                        headers: dict[str, str] | None = None,
                        subject_filter: str | None = None) -> AppendResult:
    """Appends one aggregate's events if its last sequence (or the filter's) is still that."""
    first = events[0]
    subject = event_subject(first.aggregate, first.aggregate_id, store.subject_prefix)
    expect = Expectation(expected_last_seq, subject_filter)
    return await store.append([
        OutgoingMessage(subject, e.to_json(), event_msg_id(e.command_id, i), headers or {},
                        expect if i == 0 else None)
        for i, e in enumerate(events)])
