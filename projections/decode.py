"""Turns stored messages into events the projections fold: JSON decoded, upcast, typed envelope.

This is the read side's hot path, so it reads the flat wire form directly instead of
validating a pydantic model per event (and parses JSON with pydantic-core's parser,
about three times faster than the standard library's); the schema version is still
honoured through the same upcaster registry every reader uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json

from events import ENVELOPE_FIELDS, UpcasterRegistry
from services.store import RecordedEvent

__all__ = ["DecodeError", "Event", "TraceRef", "decode", "parse_time", "parse_traceparent"]


_TEXT_OR_NONE = frozenset({str, type(None)})


class DecodeError(ValueError):
    """A stored message is not a readable event."""


@dataclass(frozen=True, slots=True)
class TraceRef:
    """The W3C trace context an event was written under."""

    trace_id: str
    span_id: str
    sampled: bool


@dataclass(slots=True)
class Event:
    """One decoded event: envelope fields typed, the event's own fields in ``data``."""

    seq: int
    type: str
    aggregate: str
    aggregate_id: str
    version: int
    occurred_at: str
    """ISO 8601 text as stored; DuckDB casts it, ``when`` parses it."""
    command_id: str | None
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]
    traceparent: str | None

    @property
    def when(self) -> datetime:
        """The time the event occurred, parsed."""
        return parse_time(self.occurred_at)


def parse_time(value: object) -> datetime:
    """Parses an ISO 8601 time; a naive one is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise DecodeError(f"not a time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


def decode(record: RecordedEvent, upcasters: UpcasterRegistry) -> Event:
    """Decodes and upcasts one stored message, or raises ``DecodeError``."""
    try:
        raw = from_json(record.payload)
    except ValueError as error:
        raise DecodeError(f"body is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise DecodeError("body is not a JSON object")
    try:
        return _event(record, _upcast(raw, upcasters))
    except (KeyError, TypeError, ValueError) as error:
        raise DecodeError(_describe(error)) from None


def _upcast(raw: dict[str, Any], upcasters: UpcasterRegistry) -> dict[str, Any]:
    kind, version = raw["type"], raw["schema_version"]
    if version == upcasters.current_version(kind) and type(version) is int:
        return raw
    version = int(version)
    own = {k: v for k, v in raw.items() if k not in ENVELOPE_FIELDS}
    version, own = upcasters.upcast(kind, version, own)
    head = {k: v for k, v in raw.items() if k in ENVELOPE_FIELDS}
    return head | own | {"schema_version": version}


def _event(record: RecordedEvent, raw: dict[str, Any]) -> Event:
    kind, aggregate, aggregate_id = raw["type"], raw["aggregate"], raw["aggregate_id"]
    occurred_at, version = raw["occurred_at"], raw["version"]
    command_id, from_state, to_state = (raw.get("command_id"), raw.get("from_state"),
                                        raw.get("to_state"))
    if (type(kind) is not str or type(aggregate) is not str or type(aggregate_id) is not str
            or type(occurred_at) is not str or type(version) is not int
            or type(command_id) not in _TEXT_OR_NONE or type(from_state) not in _TEXT_OR_NONE
            or type(to_state) not in _TEXT_OR_NONE):
        raise TypeError("an envelope field has the wrong type")
    datetime.fromisoformat(occurred_at)  # validates; the text itself is what is kept
    return Event(record.seq, kind, aggregate, aggregate_id, version, occurred_at, command_id,
                 from_state, to_state, raw, record.headers.get("traceparent"))


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing envelope field {error.args[0]!r}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
