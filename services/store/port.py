"""The event store port: what every writer and reader of the log needs, whatever holds it.

Two adapters implement it: ``JetStreamEventStore`` (the log itself) and
``InMemoryEventStore`` (the same semantics in memory, for service tests in
milliseconds). One contract suite, ``tests/contract/test_event_store_contract.py``,
runs against both.

Positions are stream sequences: global, gap-free per store, starting at 1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from .records import AppendResult, OutgoingMessage, RecordedEvent

__all__ = ["EventFeed", "EventStore"]


class EventFeed(Protocol):
    """A live feed of stored events in stream order, handed out in micro-batches."""

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05
                         ) -> list[RecordedEvent]:
        """Waits for at least one event, then gathers up to ``max_size`` within ``linger_s``."""
        ...

    def batches(self, until_seq: int | None = None, max_size: int = 1000,
                linger_s: float = 0.05) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches in stream order, stopping after ``until_seq`` when given."""
        ...

    async def close(self) -> None:
        """Stops the feed."""
        ...


class EventStore(Protocol):
    """Appends events under optimistic concurrency and reads them back by subject or position."""

    @property
    def subject_prefix(self) -> str:
        """The prefix of every event subject (``runlog.evt``)."""
        ...

    async def ensure_stream(self) -> None:
        """Creates the log, or brings its configuration up to date; safe to repeat."""
        ...

    async def append(self, messages: Sequence[OutgoingMessage]) -> AppendResult:
        """Appends messages all-or-nothing, each checked against its ``expect``.

        Raises ``ConcurrencyConflict`` when an expectation fails, ``StoreUnavailable``
        when the log does not answer. A retry of an append that already landed (same
        ``msg_id`` of its last message) answers the original positions, ``duplicate``.
        """
        ...

    async def read_subject(self, subject: str, from_seq: int = 1) -> list[RecordedEvent]:
        """Returns the events on ``subject`` (a wildcard filter too) from ``from_seq`` on."""
        ...

    async def first_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the first event on ``subject`` (or filter), or None."""
        ...

    async def last_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the last event on ``subject`` (or filter), or None."""
        ...

    async def last_seq(self) -> int:
        """Returns the log's last sequence (0 when empty)."""
        ...

    async def subscribe(self, from_seq: int = 1, subjects: str | None = None,
                        max_pending: int = 200_000) -> EventFeed:
        """Starts a live feed of every event (or of ``subjects``) from ``from_seq`` on."""
        ...

    def read_all(self, from_seq: int = 1, until_seq: int | None = None,
                 subjects: str | None = None) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches of every event from ``from_seq`` to ``until_seq`` (default: now)."""
        ...
