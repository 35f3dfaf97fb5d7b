"""Typed repositories: aggregates loaded from the log, cached, and kept current by the follower.

A cached aggregate may be behind the log when another replica wrote it: the append's
optimistic concurrency check catches that, and the unit of work reloads it. The log
follower folds every event of a cached aggregate as it passes, so the cache is rarely
behind for long.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from events import event_subject
from events.base import DomainEvent
from events.codec import EventCodec, StoredEvent
from services.domain.registry import Machine
from services.store import EventStore, RecordedEvent

__all__ = ["COMMANDS_KEPT", "CommandRecord", "Loaded", "Repository"]

S = TypeVar("S")

COMMANDS_KEPT = 1000
"""Command ids remembered per aggregate for answering retries; older ones fall back to
JetStream's duplicate window."""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What one past command wrote to this aggregate, for answering its retries."""

    version: int
    seq: int
    event_types: tuple[str, ...]


@dataclass(slots=True)
class Loaded(Generic[S]):
    """An aggregate's current state with the positions optimistic concurrency needs."""

    aggregate: str
    aggregate_id: str
    state: S | None = None
    version: int = 0
    last_seq: int = 0
    commands: OrderedDict[str, CommandRecord] = field(default_factory=OrderedDict)
    """Shared between copies: entries are only ever added for events on the log."""
    size: int = 0
    """Bytes of the events folded so far, for the cache's bound."""

    @property
    def exists(self) -> bool:
        """Whether any event was ever written for it."""
        return self.version > 0

    def copy(self) -> Loaded[S]:
        """A copy to fold into; commands in flight keep deciding on the original."""
        # Spelled out: dataclasses.replace introspects the fields on every call.
        return Loaded(self.aggregate, self.aggregate_id, self.state, self.version,
                      self.last_seq, self.commands, self.size)

    def record(self, command_id: str, version: int, seq: int, event_type: str) -> None:
        """Notes that ``command_id`` wrote an event at ``seq``."""
        earlier = self.commands.get(command_id)
        if earlier is not None and seq <= earlier.seq:
            return  # another copy already recorded this event
        types = (*earlier.event_types, event_type) if earlier else (event_type,)
        self.commands[command_id] = CommandRecord(version, seq, types)
        self.commands.move_to_end(command_id)
        while len(self.commands) > COMMANDS_KEPT:
            self.commands.popitem(last=False)


class Repository(Generic[S]):
    """One aggregate type's loads by batch direct get, with an LRU cache bounded by bytes."""

    def __init__(self, machine: Machine[S], store: EventStore, codec: EventCodec,
                 max_entries: int = 50_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.machine = machine
        self.store = store
        self.codec = codec
        self._cache: OrderedDict[str, Loaded[S]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.on_change: Callable[[Loaded[S]], None] | None = None
        """Called with every new state this repository learns (own writes and the log's)."""

    @property
    def aggregate(self) -> str:
        """The aggregate type's name."""
        return self.machine.name

    def subject(self, aggregate_id: str) -> str:
        """The subject of one aggregate's events."""
        return event_subject(self.aggregate, aggregate_id, self.store.subject_prefix)

    def cached(self, aggregate_id: str) -> Loaded[S] | None:
        """The cached aggregate, or None."""
        return self._cache.get(aggregate_id)

    def __iter__(self) -> Iterator[Loaded[S]]:
        return iter(list(self._cache.values()))

    async def record_of(self, aggregate_id: str, command_id: str) -> CommandRecord | None:
        """What ``command_id`` wrote to the aggregate (loaded if need be), if anything."""
        return (await self.get(aggregate_id)).commands.get(command_id)

    async def get(self, aggregate_id: str) -> Loaded[S]:
        """Returns the aggregate, from the cache when it is there."""
        cached = self._cache.get(aggregate_id)
        if cached is not None:
            self._cache.move_to_end(aggregate_id)
            return cached
        loaded: Loaded[S] = Loaded(self.aggregate, aggregate_id)
        await self._catch_up(loaded)
        # An aggregate that does not exist yet is cached too: its creation is usually the
        # next command, and the follower folds it in if another replica writes it first.
        self.remember(loaded)
        return loaded

    async def reload(self, aggregate_id: str) -> Loaded[S]:
        """Reads any events written after the cached position (another replica's writes)."""
        cached = await self.get(aggregate_id)
        fresh = cached.copy()
        await self._catch_up(fresh)
        current = self._cache.get(aggregate_id)
        if current is not None and current.last_seq > fresh.last_seq:
            return current
        self.remember(fresh)
        return fresh

    async def _catch_up(self, loaded: Loaded[S]) -> None:
        for recorded in await self.store.read_subject(self.subject(loaded.aggregate_id),
                                                      loaded.last_seq + 1):
            if recorded.seq > loaded.last_seq:
                self.fold(loaded, self.decode(recorded))

    def decode(self, recorded: RecordedEvent) -> StoredEvent:
        """Decodes a stored message of this aggregate type through the codec."""
        return self.codec.decode(recorded.payload, recorded.seq, recorded.headers,
                                 recorded.subject)

    def fold(self, loaded: Loaded[S], stored: StoredEvent) -> None:
        """Applies one stored event to ``loaded`` (in place)."""
        self.apply(loaded, self.codec.typed(stored), stored.seq, stored.command_id or "",
                   len(stored.data))

    def apply(self, loaded: Loaded[S], event: DomainEvent, seq: int, command_id: str,
              size: int, evolved: S | None = None) -> None:
        """Applies one typed event written at ``seq`` to ``loaded`` (in place).

        ``evolved`` is the state after it when the caller folded it already.
        """
        loaded.state = self.machine.evolve(loaded.state, event) if evolved is None else evolved
        loaded.version += 1
        loaded.last_seq = seq
        loaded.size += size
        loaded.record(command_id, loaded.version, seq, event.type_name())

    def observe(self, stored: StoredEvent) -> None:
        """Folds an event the log follower passes, when its aggregate is cached here."""
        cached = self._cache.get(stored.aggregate_id)
        if cached is None or stored.seq <= cached.last_seq:
            return
        fresh = cached.copy()
        self.fold(fresh, stored)
        self.remember(fresh)

    def remember(self, loaded: Loaded[S]) -> None:
        """Caches ``loaded`` as the newest known state."""
        earlier = self._cache.pop(loaded.aggregate_id, None)
        if earlier is not None:
            self._bytes -= earlier.size
        self._cache[loaded.aggregate_id] = loaded
        self._bytes += loaded.size
        if self.on_change is not None:
            self.on_change(loaded)
        self._evict()

    def _evict(self) -> None:
        while self._cache and (len(self._cache) > self._max_entries
                               or self._bytes > self._max_bytes):
            _, dropped = self._cache.popitem(last=False)
            self._bytes -= dropped.size

    def forget(self, aggregate_id: str) -> None:
        """Drops a cache entry, so the next load reads the log."""
        dropped = self._cache.pop(aggregate_id, None)
        if dropped is not None:
            self._bytes -= dropped.size
