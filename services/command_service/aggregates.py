"""Loading aggregates from the log, with a cache of hot ones.

The cache may be stale when another replica wrote meanwhile: the append's
optimistic concurrency check catches that, and the executor refreshes the entry
from its last known sequence and decides again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from events import EventEnvelope, event_subject
from events.base import DomainEvent
from events.catalog import event_class
from services.domain import MACHINES, Machine
from services.store import JetStreamEventStore, RecordedEvent

__all__ = ["AggregateRepository", "CommandRecord", "Loaded"]


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What one past command wrote to this aggregate, for answering its retries."""

    version: int
    seq: int
    event_types: tuple[str, ...]


@dataclass(slots=True)
class Loaded:
    """An aggregate's current state with the positions optimistic concurrency needs."""

    aggregate: str
    aggregate_id: str
    state: Any = None
    version: int = 0
    last_seq: int = 0
    commands: dict[str, CommandRecord] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """Whether any event was ever written for it."""
        return self.version > 0

    @property
    def status(self) -> str | None:
        """The state machine's state name, or None before creation."""
        return getattr(self.state, "state", None)

    def fold(self, machine: Machine, envelope: EventEnvelope, seq: int) -> None:
        """Applies one stored event."""
        event = to_domain_event(envelope)
        self.state = machine.evolve(self.state, event)
        self.version = envelope.version
        self.last_seq = seq
        record = self.commands.get(envelope.command_id)
        if record is not None and seq <= record.seq:
            return  # copies share this index: another catch-up already recorded this event
        types = (*record.event_types, envelope.type) if record else (envelope.type,)
        self.commands[envelope.command_id] = CommandRecord(envelope.version, seq, types)


def to_domain_event(envelope: EventEnvelope) -> DomainEvent:
    """Rebuilds the typed domain event from a stored envelope."""
    return event_class(envelope.type).model_validate(envelope.data)


class AggregateRepository:
    """Reads aggregates by batch direct get and keeps recently used ones in memory."""

    def __init__(self, store: JetStreamEventStore, cache_size: int = 50_000) -> None:
        self._store = store
        self._cache: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, aggregate: str, aggregate_id: str) -> Loaded:
        """Returns the aggregate, from the cache when it is there."""
        key = (aggregate, aggregate_id)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        loaded = Loaded(aggregate, aggregate_id)
        await self._catch_up(loaded)
        self.remember(loaded)
        return loaded

    async def refresh(self, aggregate: str, aggregate_id: str) -> Loaded:
        """Reads any events written after the cached position (another replica's writes).

        It catches up a copy: commands in flight may still be deciding on the cached
        object, and must see it unchanged (their append's concurrency check then
        tells them it is stale).
        """
        cached = await self.load(aggregate, aggregate_id)
        fresh = replace(cached)
        await self._catch_up(fresh)
        current = self._cache.get((aggregate, aggregate_id))
        if current is None or current.last_seq <= fresh.last_seq:
            self.remember(fresh)
            return fresh
        return current

    async def _catch_up(self, loaded: Loaded) -> None:
        machine = MACHINES[loaded.aggregate]
        subject = event_subject(loaded.aggregate, loaded.aggregate_id, self._store.subject_prefix)
        for recorded in await self._store.read_subject(subject, loaded.last_seq + 1):
            if recorded.seq > loaded.last_seq:
                apply_recorded(loaded, machine, recorded)

    def remember(self, loaded: Loaded) -> None:
        """Caches ``loaded`` as the newest known state."""
        key = (loaded.aggregate, loaded.aggregate_id)
        self._cache[key] = loaded
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, aggregate: str, aggregate_id: str) -> None:
        """Drops a cache entry, so the next load reads the log."""
        self._cache.pop((aggregate, aggregate_id), None)


def apply_recorded(loaded: Loaded, machine: Machine, recorded: RecordedEvent) -> None:
    """Folds one recorded event into ``loaded``."""
    loaded.fold(machine, recorded.envelope(), recorded.seq)
