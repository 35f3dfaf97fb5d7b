"""The one event codec: the wire form every writer writes is what every reader reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import pytest

from events import ENVELOPE_FIELDS, EventEnvelope, is_valid_id
from events.catalog import EVENT_TYPES
from events.catalog.run import RunBudget, RunCreated, UsageRecorded
from events.codec import CODEC, DecodeError, EventCodec, EventHead
from events.versions import registry
from services.policies.ids import policy_command_id

HEAD = EventHead("e1", "run", "r1", 1, datetime(2026, 1, 1, tzinfo=UTC), "c1", None, "pending")


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_no_event_field_shadows_an_envelope_field(name: str) -> None:
    assert not ENVELOPE_FIELDS.intersection(EVENT_TYPES[name].model_fields)


def test_encoded_json_reads_back_as_the_same_event() -> None:
    event = RunCreated(run_id="r1", name="n", labels={"team": "a"},
                       budget=RunBudget(max_tokens=10))
    stored = CODEC.decode(CODEC.encode(event, HEAD), seq=7)
    assert (stored.seq, stored.type, stored.schema_version) == (7, "RunCreated", 2)
    assert stored.when == datetime(2026, 1, 1, tzinfo=UTC)
    assert CODEC.typed(stored) == event
    envelope = EventEnvelope.from_stored(stored)
    assert envelope.to_dict() == json.loads(CODEC.encode(event, HEAD))


def test_every_field_is_at_the_top_level() -> None:
    usage = UsageRecorded(run_id="r1", model="m", provider="p", tokens_in=1, tokens_out=2,
                          input_usd_per_mtok=Decimal(1), output_usd_per_mtok=Decimal(2),
                          price_effective_from="2025-01-01T00:00:00+00:00",
                          cost_usd=Decimal("5e-6"))
    flat = json.loads(CODEC.encode(usage, HEAD))
    assert flat["cost_usd"] == "0.000005"  # money travels as exact decimal text
    assert flat["to_state"] == "pending"
    assert set(flat) == ENVELOPE_FIELDS | set(UsageRecorded.model_fields)


def test_the_schema_version_has_one_source_the_class() -> None:
    assert all(CODEC.version_of(name) == cls.schema_version for name, cls in EVENT_TYPES.items())
    flat = json.loads(CODEC.encode(RunCreated(run_id="r1", name="n"), HEAD))
    assert flat["schema_version"] == RunCreated.schema_version


class _RunCreatedV3(RunCreated):
    """RunCreated whose ``name`` became ``title`` in version 3."""

    schema_version: ClassVar[int] = 3
    name: str = ""
    title: str


def test_an_upcaster_brings_old_events_to_the_current_version() -> None:
    upcasters = registry.copy()

    @upcasters.register("RunCreated", 2)
    def rename(data: dict[str, object]) -> dict[str, object]:
        data["title"] = data.pop("name")
        return data

    codec = EventCodec({**EVENT_TYPES, "RunCreated": _RunCreatedV3}, upcasters)
    old = CODEC.encode(RunCreated(run_id="r1", name="fix-bug"), HEAD)
    stored = codec.decode(old)
    assert (stored.schema_version, stored.data["title"]) == (3, "fix-bug")
    typed = codec.typed(stored)
    assert isinstance(typed, _RunCreatedV3)
    assert typed.title == "fix-bug"


def test_a_version_without_its_upcaster_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="no upcaster from v2"):
        EventCodec({**EVENT_TYPES, "RunCreated": _RunCreatedV3}, registry.copy())


@pytest.mark.parametrize("payload", [b"not json", b"[1]", b'{"type": "RunCreated"}',
                                     b'{"type":"RunCreated","schema_version":1,"aggregate":1}'])
def test_unreadable_messages_raise_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        CODEC.decode(payload)


def test_policy_command_ids_are_deterministic_and_obey_the_id_rule() -> None:
    long_id = "t" * 128
    first = policy_command_id("run-end", 42, long_id)
    assert first == policy_command_id("run-end", 42, long_id)
    assert first != policy_command_id("run-end", 43, long_id)
    assert first.startswith("run-end-")
    assert is_valid_id(first)
