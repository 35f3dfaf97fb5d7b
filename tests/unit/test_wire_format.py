"""The wire form the command service writes is exactly what EventEnvelope reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from events import ENVELOPE_FIELDS, EventEnvelope, is_valid_id
from events.catalog import EVENT_TYPES
from events.catalog.run import RunBudget, RunCreated, UsageRecorded
from services.command_service.changes import wire_event
from services.policies.ids import policy_command_id

HEAD = {"type": "", "schema_version": 1, "event_id": "e1", "aggregate": "run",
        "aggregate_id": "r1", "version": 1, "occurred_at": "2026-01-01T00:00:00+00:00",
        "command_id": "c1", "from_state": None, "to_state": "pending"}


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_no_event_field_shadows_an_envelope_field(name: str) -> None:
    assert not ENVELOPE_FIELDS.intersection(EVENT_TYPES[name].model_fields)


def test_spliced_json_reads_back_as_the_same_event() -> None:
    event = RunCreated(run_id="r1", name="n", labels={"team": "a"},
                       budget=RunBudget(max_tokens=10))
    envelope = EventEnvelope.from_json(wire_event(event, HEAD | {"type": "RunCreated"}))
    assert envelope.type == "RunCreated"
    assert envelope.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert RunCreated.model_validate(envelope.data) == event


def test_every_field_is_at_the_top_level() -> None:
    usage = UsageRecorded(run_id="r1", model="m", provider="p", tokens_in=1, tokens_out=2,
                          input_usd_per_mtok=1.0, output_usd_per_mtok=2.0,
                          price_effective_from="2025-01-01T00:00:00+00:00", cost_usd=5e-6)
    flat = json.loads(wire_event(usage, HEAD | {"type": "UsageRecorded"}))
    assert flat["cost_usd"] == 5e-6
    assert flat["to_state"] == "pending"
    assert set(flat) == set(HEAD) | set(UsageRecorded.model_fields)


def test_policy_command_ids_are_deterministic_and_obey_the_id_rule() -> None:
    long_id = "t" * 128
    first = policy_command_id("run-end", 42, long_id)
    assert first == policy_command_id("run-end", 42, long_id)
    assert first != policy_command_id("run-end", 43, long_id)
    assert first.startswith("run-end-")
    assert is_valid_id(first)
