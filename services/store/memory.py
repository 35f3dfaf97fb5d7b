"""The event store in memory: JetStream's append semantics without a server.

It keeps what the service relies on: one global sequence, optimistic concurrency per
subject or per subject filter, all-or-nothing batches, ``Nats-Msg-Id`` dedupe within a
window, reads by subject or wildcard, and live feeds in stream order. The contract
suite (``tests/contract/``) runs the same tests against it and against JetStream.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from events import EVENT_PREFIX
from services.errors import ConcurrencyConflict, StoreError

from .records import AppendResult, OutgoingMessage, RecordedEvent

__all__ = ["InMemoryEventStore", "subject_matches"]

_MAX_BATCH = 1000


def subject_matches(subject_filter: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` is one or more."""
    wanted, tokens = subject_filter.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(tokens) == len(wanted)


def _is_filter(subject: str) -> bool:
    return "*" in subject or ">" in subject


@dataclass(frozen=True, slots=True)
class _Seen:
    seq: int
    at: float


class InMemoryEventStore:
    """An event log in this process's memory (gone when it ends)."""

    def __init__(self, subject_prefix: str = EVENT_PREFIX, duplicate_window_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = subject_prefix
        self._window = duplicate_window_s
        self._clock = clock
        self._log: list[RecordedEvent] = []
        self._last_by_subject: dict[str, int] = {}
        self._seqs_by_subject: dict[str, list[int]] = {}
        """Every sequence of each literal subject, so an aggregate's read is no log scan."""
        self._msg_ids: dict[str, _Seen] = {}
        self._appended = asyncio.Condition()
        self.appends = 0
        """Successful appends so far (duplicates excluded), for tests to count round trips."""

    @property
    def subject_prefix(self) -> str:
        """The prefix of every event subject."""
        return self._prefix

    async def ensure_stream(self) -> None:
        """Nothing to create."""

    # -- writing --------------------------------------------------------------

    async def append(self, messages: Sequence[OutgoingMessage]) -> AppendResult:
        """Appends all-or-nothing; answers a retry that already landed with its positions."""
        if not messages:
            raise ValueError("append needs at least one message")
        if len(messages) > _MAX_BATCH:
            raise StoreError(f"an atomic append holds at most {_MAX_BATCH} messages")
        earlier = self._duplicate(messages[-1].msg_id)
        if earlier is not None:
            return AppendResult(earlier - len(messages) + 1, earlier, duplicate=True)
        self._check_expectations(messages)
        first = len(self._log) + 1
        for msg in messages:
            self._write(msg)
        self.appends += 1
        async with self._appended:
            self._appended.notify_all()
        return AppendResult(first, len(self._log))

    def _duplicate(self, msg_id: str) -> int | None:
        seen = self._msg_ids.get(msg_id)
        if seen is None or self._clock() - seen.at > self._window:
            return None
        return seen.seq

    def _check_expectations(self, messages: Sequence[OutgoingMessage]) -> None:
        checked: set[str] = set()
        for msg in messages:
            if msg.expect is None or msg.subject in checked:
                continue
            checked.add(msg.subject)
            target = msg.expect.subject_filter or msg.subject
            actual = self._last_matching(target)
            if actual != msg.expect.last_seq:
                raise ConcurrencyConflict(
                    msg.subject, f"{msg.subject}: wrong last sequence: {actual}", actual)

    def _last_matching(self, subject_filter: str) -> int:
        if not _is_filter(subject_filter):
            return self._last_by_subject.get(subject_filter, 0)
        matching = (seq for subject, seq in self._last_by_subject.items()
                    if subject_matches(subject_filter, subject))
        return max(matching, default=0)

    def _write(self, msg: OutgoingMessage) -> None:
        seq = len(self._log) + 1
        headers = {**msg.headers, "Nats-Msg-Id": msg.msg_id}
        self._log.append(RecordedEvent(seq, msg.subject, msg.payload, headers, time.time_ns()))
        self._last_by_subject[msg.subject] = seq
        self._seqs_by_subject.setdefault(msg.subject, []).append(seq)
        self._msg_ids[msg.msg_id] = _Seen(seq, self._clock())

    # -- reading --------------------------------------------------------------

    async def read_subject(self, subject: str, from_seq: int = 1) -> list[RecordedEvent]:
        """Returns the events on ``subject`` (or filter) from ``from_seq`` on."""
        if not _is_filter(subject):
            seqs = self._seqs_by_subject.get(subject, [])
            return [self._log[seq - 1] for seq in seqs[bisect.bisect_left(seqs, from_seq):]]
        return [e for e in self._log[max(from_seq, 1) - 1:] if subject_matches(subject, e.subject)]

    async def first_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the first event on ``subject`` (or filter), or None."""
        if not _is_filter(subject):
            seqs = self._seqs_by_subject.get(subject)
            return self._log[seqs[0] - 1] if seqs else None
        return next((e for e in self._log if subject_matches(subject, e.subject)), None)

    async def last_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the last event on ``subject`` (or filter), or None."""
        seq = self._last_matching(subject)
        return self._log[seq - 1] if seq else None

    async def last_seq(self) -> int:
        """Returns the last sequence (0 when empty)."""
        return len(self._log)

    async def subscribe(self, from_seq: int = 1, subjects: str | None = None,
                        max_pending: int = 200_000) -> MemoryFeed:
        """A live feed from ``from_seq`` on, of every event or of ``subjects``."""
        del max_pending  # nothing is buffered: the feed reads the log in place
        return MemoryFeed(self, max(from_seq, 1), subjects or f"{self._prefix}.>")

    async def read_all(self, from_seq: int = 1, until_seq: int | None = None,
                       subjects: str | None = None) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches of every event from ``from_seq`` to ``until_seq`` (default: now)."""
        until = len(self._log) if until_seq is None else until_seq
        wanted = subjects or f"{self._prefix}.>"
        for start in range(max(from_seq, 1), until + 1, 1000):
            batch = [e for e in self._log[start - 1:min(start + 999, until)]
                     if subject_matches(wanted, e.subject)]
            if batch:
                yield batch

    # -- for feeds ----------------------------------------------------------------

    def events_from(self, seq: int) -> list[RecordedEvent]:
        """The stored events from ``seq`` on."""
        return self._log[seq - 1:]

    async def wait_beyond(self, seq: int, timeout_s: float) -> None:
        """Waits until the log holds an event past ``seq``, or the timeout."""
        async with self._appended:
            await asyncio.wait_for(self._appended.wait_for(lambda: len(self._log) > seq),
                                   timeout_s)


class MemoryFeed:
    """A live feed over an ``InMemoryEventStore``, in stream order."""

    def __init__(self, store: InMemoryEventStore, from_seq: int, subjects: str) -> None:
        self._store = store
        self._next = from_seq
        self._subjects = subjects
        self._closed = False

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05
                         ) -> list[RecordedEvent]:
        """Waits for at least one matching event, then hands out up to ``max_size``."""
        while True:
            if self._closed:
                raise StoreError("the feed is closed")
            batch = self._take(max_size)
            if batch:
                return batch
            await self._store.wait_beyond(self._next - 1, timeout_s=3600.0)

    def _take(self, max_size: int) -> list[RecordedEvent]:
        batch: list[RecordedEvent] = []
        for event in self._store.events_from(self._next):
            self._next = event.seq + 1
            if subject_matches(self._subjects, event.subject):
                batch.append(event)
                if len(batch) >= max_size:
                    break
        return batch

    async def batches(self, until_seq: int | None = None, max_size: int = 1000,
                      linger_s: float = 0.05) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches in stream order, stopping after ``until_seq`` when given."""
        while True:
            batch = await self.next_batch(max_size, linger_s)
            if until_seq is not None and batch[-1].seq >= until_seq:
                yield [e for e in batch if e.seq <= until_seq]
                return
            yield batch

    async def close(self) -> None:
        """Stops the feed."""
        self._closed = True
