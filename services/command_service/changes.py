"""Turning decided domain events into one atomic append across one or more aggregates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from events import EventEnvelope, event_msg_id, event_subject, new_id
from events.base import DomainEvent
from services.domain import MACHINES
from services.store import AppendResult, JetStreamEventStore, OutgoingMessage

from .aggregates import CommandRecord, Loaded

__all__ = ["Change", "Committed", "commit"]


@dataclass(frozen=True, slots=True)
class Change:
    """New events for one loaded aggregate."""

    loaded: Loaded
    events: Sequence[DomainEvent]


def _envelopes(change: Change, command_id: str, now: datetime) -> list[EventEnvelope]:
    """Stamps each event with its envelope, following the state machine to fill the states."""
    machine = MACHINES[change.loaded.aggregate]
    state, version = change.loaded.state, change.loaded.version
    envelopes = []
    for event in change.events:
        before = getattr(state, "state", None)
        state = machine.evolve(state, event)
        version += 1
        envelopes.append(EventEnvelope.model_construct(
            type=event.type_name(), schema_version=type(event).schema_version,
            event_id=new_id(), aggregate=change.loaded.aggregate,
            aggregate_id=change.loaded.aggregate_id, version=version, occurred_at=now,
            command_id=command_id, from_state=before, to_state=getattr(state, "state", None),
            data=event.fields(),
        ))
    return envelopes


@dataclass(frozen=True, slots=True)
class Committed:
    """What an append wrote: its positions, the new states, and each event with its seq."""

    result: AppendResult
    updated: list[Loaded]
    written: list[tuple[EventEnvelope, int]]


async def commit(
    store: JetStreamEventStore, changes: Sequence[Change], command_id: str, now: datetime,
    headers: Mapping[str, str],
) -> Committed:
    """Appends every change as one atomic batch; returns the result and the new states.

    The returned ``Loaded`` objects are new: the cached originals stay as they were
    until the append succeeds, so a refused append leaves no trace. After a
    duplicate (a retry that had already landed) they mean nothing: reload instead.
    """
    messages: list[OutgoingMessage] = []
    expected: dict[str, int] = {}
    updated: list[Loaded] = []
    envelopes_written: list[EventEnvelope] = []
    for change in changes:
        subject = event_subject(change.loaded.aggregate, change.loaded.aggregate_id,
                                store.subject_prefix)
        expected[subject] = change.loaded.last_seq
        envelopes = _envelopes(change, command_id, now)
        envelopes_written.extend(envelopes)
        for envelope in envelopes:
            msg_id = event_msg_id(command_id, len(messages))
            messages.append(OutgoingMessage(subject, envelope.to_json(), msg_id, dict(headers)))
        updated.append(_advanced(change, envelopes))
    result = await store.append_messages(messages, expected)
    if not result.duplicate:
        _record_commands(updated, changes, command_id, result)
    seqs = range(result.first_seq, result.first_seq + len(envelopes_written))
    return Committed(result, updated, list(zip(envelopes_written, seqs, strict=True)))


def _advanced(change: Change, envelopes: Sequence[EventEnvelope]) -> Loaded:
    machine = MACHINES[change.loaded.aggregate]
    state = change.loaded.state
    for event in change.events:
        state = machine.evolve(state, event)
    # The command index is shared with the cached original and only written after
    # the append succeeds (see _record_commands).
    return Loaded(change.loaded.aggregate, change.loaded.aggregate_id, state,
                  envelopes[-1].version, change.loaded.last_seq, change.loaded.commands)


def _record_commands(updated: list[Loaded], changes: Sequence[Change], command_id: str,
                     result: AppendResult) -> None:
    # The batch's sequences are contiguous, in the order the messages were sent.
    seq = result.first_seq - 1
    for loaded, change in zip(updated, changes, strict=True):
        seq += len(change.events)
        loaded.last_seq = seq
        types = tuple(e.type_name() for e in change.events)
        loaded.commands[command_id] = CommandRecord(loaded.version, seq, types,
                                                    change.events[0].fields())
