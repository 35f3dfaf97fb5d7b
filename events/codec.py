"""The one event codec: every writer encodes with it, every reader decodes and upcasts with it.

On the wire an event is one flat JSON object: the envelope fields (``ENVELOPE_FIELDS``)
and the event's own fields side by side. The schema version an event type is written
with has one source, the class's ``schema_version``; an event stored at an older version
is brought up to it by the upcasters registered for its type, on every read.

The command path, the claim index, the policies, the projectors and replay all decode
through ``EventCodec.decode``, so the first upcaster anyone registers reaches them all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic_core import from_json

from .base import DomainEvent
from .catalog import EVENT_TYPES
from .envelope import ENVELOPE_FIELDS, DecodeError, EventHead, StoredEvent, parse_time
from .versions import UpcasterRegistry, registry

__all__ = ["CODEC", "DecodeError", "EventCodec", "EventHead", "StoredEvent", "parse_time"]

_TEXT_OR_NONE = frozenset({str, type(None)})


class EventCodec:
    """Encodes events for the log and decodes, upcasts and types them back."""

    def __init__(self, types: Mapping[str, type[DomainEvent]] = EVENT_TYPES,
                 upcasters: UpcasterRegistry = registry) -> None:
        self._types = dict(types)
        # Read once: a class attribute of a pydantic model is slow to reach, and every
        # decoded event asks for its type's version.
        self._versions = {name: cls.schema_version for name, cls in self._types.items()}
        self._upcasters = upcasters
        for name, cls in self._types.items():
            upcasters.require_chain(name, cls.schema_version)

    def version_of(self, event_type: str, stored: int | None = None) -> int:
        """The version ``event_type`` is written with (an unknown type keeps ``stored``)."""
        version = self._versions.get(event_type)
        if version is not None:
            return version
        return 1 if stored is None else stored

    def knows(self, event_type: str) -> bool:
        """Whether ``event_type`` is an event type of this codec."""
        return event_type in self._types

    # -- writing --------------------------------------------------------------

    def encode(self, event: DomainEvent, head: EventHead) -> bytes:
        """The flat JSON of a stored event: its envelope and its own fields.

        The event's fields are serialised by pydantic (in Rust) and spliced in, which
        measured several times faster than building and dumping one merged dict.
        """
        envelope = orjson.dumps(self._head(event.type_name(), head))
        fields = event.__pydantic_serializer__.to_json(event)
        return envelope[:-1] + (b"}" if fields == b"{}" else b"," + fields[1:])

    def encode_raw(self, event_type: str, head: EventHead, fields: Mapping[str, Any],
                   schema_version: int | None = None) -> bytes:
        """The flat JSON of an event given as a type name and plain fields (at a version)."""
        clash = ENVELOPE_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"event fields shadow envelope fields: {sorted(clash)}")
        body = self._head(event_type, head) | dict(fields)
        if schema_version is not None:
            body["schema_version"] = schema_version
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def _head(self, event_type: str, head: EventHead) -> dict[str, Any]:
        return {
            "type": event_type, "schema_version": self.version_of(event_type),
            "event_id": head.event_id, "aggregate": head.aggregate,
            "aggregate_id": head.aggregate_id, "version": head.version,
            "occurred_at": head.occurred_at.astimezone(UTC).isoformat(),
            "command_id": head.command_id, "from_state": head.from_state,
            "to_state": head.to_state,
        }

    # -- reading --------------------------------------------------------------

    def decode(self, payload: bytes, seq: int = 0, headers: Mapping[str, str] | None = None,
               subject: str = "") -> StoredEvent:
        """Parses and upcasts one stored event, or raises ``DecodeError``."""
        raw = _parse(payload)
        if not isinstance(raw, dict):
            raise DecodeError("body is not a JSON object")
        try:
            raw = self._upcast(raw)
            return _stored(raw, seq, headers.get("traceparent") if headers else None, subject)
        except (KeyError, TypeError, ValueError) as error:
            raise DecodeError(_describe(error)) from None

    def typed(self, stored: StoredEvent) -> DomainEvent:
        """The typed domain event of a decoded one; raises ``DecodeError`` when it does not fit."""
        cls = self._types.get(stored.type)
        if cls is None:
            raise DecodeError(f"unknown event type {stored.type!r}")
        try:
            return cls.model_validate(stored.fields)
        except ValueError as error:
            raise DecodeError(f"{stored.type} at seq {stored.seq}: {_describe(error)}") from None

    def _upcast(self, raw: dict[str, Any]) -> dict[str, Any]:
        kind, stored = raw["type"], raw["schema_version"]
        if type(stored) is not int:
            stored = int(stored)
        target = self.version_of(kind, stored)
        if stored == target:
            return raw
        # One pass splits the envelope from the event's own fields (replaying an old log
        # upcasts every event of its types).
        head: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key, value in raw.items():
            (head if key in ENVELOPE_FIELDS else own)[key] = value
        version, own = self._upcasters.upcast(kind, stored, target, own)
        head.update(own)
        head["schema_version"] = version
        return head


def _parse(payload: bytes) -> object:
    """The JSON of a stored event, or ``DecodeError``.

    orjson parses twice as fast as pydantic's parser (a replay parses every event); what
    it refuses and pydantic's parser reads (NaN, integers past 64 bits) is read by the
    latter, so every event that decoded before still decodes, to the same values.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return from_json(payload)
    except ValueError as error:
        raise DecodeError(f"body is not JSON: {error}") from None


def _stored(raw: dict[str, Any], seq: int, traceparent: str | None, subject: str
            ) -> StoredEvent:
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
    return StoredEvent(seq, kind, int(raw["schema_version"]), aggregate, aggregate_id, version,
                       occurred_at, command_id, from_state, to_state, raw, traceparent, subject)


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing envelope field {error.args[0]!r}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


CODEC = EventCodec()
"""The codec of the event catalog and the process-wide upcasters."""
