"""Turns stored messages into the events the projections fold, through the one event codec.

The codec reads the flat wire form directly instead of validating a pydantic model per
event (the read side's hot path); upcasting is the same every reader gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.codec import CODEC, EventCodec
from events.envelope import DecodeError, parse_time
from events.envelope import StoredEvent as Event
from services.store import RecordedEvent

__all__ = ["DecodeError", "Event", "TraceRef", "decode", "parse_time", "parse_traceparent"]


@dataclass(frozen=True, slots=True)
class TraceRef:
    """The W3C trace context an event was written under."""

    trace_id: str
    span_id: str
    sampled: bool


def parse_traceparent(value: str | None) -> TraceRef | None:
    """Reads ``00-<trace id>-<span id>-<flags>``; anything malformed is ignored."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        if int(parts[1], 16) == 0 or int(parts[2], 16) == 0:
            return None
        flags = int(parts[3][:2], 16)
    except ValueError:
        return None
    return TraceRef(parts[1].lower(), parts[2].lower(), bool(flags & 1))


def decode(record: RecordedEvent, codec: EventCodec = CODEC) -> Event:
    """Decodes and upcasts one stored message through the one codec, or raises ``DecodeError``."""
    return codec.decode(record.payload, record.seq, record.headers, record.subject)
