"""The ``eventsourcing`` recorders, each on its own JetStream stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    IntegrityError,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from services.errors import ConcurrencyConflict, StoreUnavailable
from services.store import AppendResult, OutgoingMessage
from services.store.records import expecting

from .codec import (
    NOTIFICATION_ID_HEADER,
    VERSION_HEADER,
    decode_event,
    decode_notification,
    encode_event,
    encode_tracking,
)
from .datastore import JetStreamDatastore, StreamLog
from .reader import PAGE
from .subscription import JetStreamSubscription

__all__ = [
    "JetStreamAggregateRecorder",
    "JetStreamApplicationRecorder",
    "JetStreamProcessRecorder",
    "JetStreamRecorder",
    "JetStreamTrackingRecorder",
]

MAX_INSERT = 1000
"""JetStream's limit on the messages of one atomic batch."""
_OCC_ATTEMPTS = 5


@dataclass
class _Append:
    """One atomic append: its messages and, per subject, the header value that must grow."""

    messages: list[OutgoingMessage] = field(default_factory=list)
    floors: dict[str, tuple[str, int]] = field(default_factory=dict)
    _latest: dict[str, int] = field(default_factory=dict)

    def add(self, message: OutgoingMessage, header: str, value: int) -> None:
        """Adds a message whose ``header`` value must exceed every earlier one on its subject."""
        latest = self._latest.get(message.subject)
        if latest is not None and value <= latest:
            # A subject is append-only: versions must be unique and ascending within an insert.
            raise IntegrityError(f"{message.subject}: {header} {value} not after {latest}")
        self.floors.setdefault(message.subject, (header, value))
        self._latest[message.subject] = value
        self.messages.append(message)


class JetStreamRecorder:
    """Writes all-or-nothing appends with per-subject optimistic concurrency."""

    def __init__(self, datastore: JetStreamDatastore, log: StreamLog) -> None:
        self.datastore = datastore
        self.log = log

    def create_stream(self) -> None:
        """Creates the recorder's stream, or updates its configuration."""
        self.datastore.run(self.log.store.ensure_stream())

    def _plan(self, events: Sequence[StoredEvent], tracking: Tracking | None) -> _Append:
        if len(events) + (tracking is not None) > MAX_INSERT:
            raise DataError(f"one insert holds at most {MAX_INSERT} events")
        append = _Append()
        batch = uuid.uuid4().hex
        for index, event in enumerate(events):
            message = encode_event(event, self.log.subjects, f"{batch}:{index}")
            append.add(message, VERSION_HEADER, event.originator_version)
        if tracking is not None:
            message = encode_tracking(tracking, self.log.subjects, f"{batch}:t")
            append.add(message, NOTIFICATION_ID_HEADER, tracking.notification_id)
        return append

    async def _append(
        self, events: Sequence[StoredEvent], tracking: Tracking | None = None
    ) -> AppendResult | None:
        """Appends events (and a tracking record) atomically, or raises IntegrityError."""
        for _ in range(_OCC_ATTEMPTS):
            append = self._plan(events, tracking)
            if not append.messages:
                return None
            expected = await self._expected(append)
            try:
                return await self._send(append, expected)
            except ConcurrencyConflict:
                # Another writer got in between; decide again on what it wrote.
                continue
        raise IntegrityError("gave up after repeated concurrent writes to the same originators")

    async def _send(self, append: _Append, expected: dict[str, int]) -> AppendResult:
        messages = expecting(append.messages, expected)
        try:
            return await self.log.store.append(messages)
        except StoreUnavailable:
            # Same message ids: if the first try landed, the store answers with its positions.
            return await self.log.store.append(messages)

    async def _expected(self, append: _Append) -> dict[str, int]:
        subjects = list(append.floors)
        lasts = await asyncio.gather(*(self.log.reader.last_on_subject(s) for s in subjects))
        expected: dict[str, int] = {}
        for subject, last in zip(subjects, lasts, strict=True):
            header, first = append.floors[subject]
            if last is not None and first <= int(last.headers[header]):
                raise IntegrityError(f"{subject}: {header} {first} is already recorded")
            expected[subject] = 0 if last is None else last.seq
        return expected


class JetStreamAggregateRecorder(JetStreamRecorder, AggregateRecorder):
    """Records stored events (or snapshots), one subject per originator."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Writes stored events into the stream, all or none."""
        self.datastore.run(self._append(stored_events))
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """Reads stored events of one originator from the stream."""
        return self.datastore.run(self._select(originator_id, gt, lte, desc, limit))

    async def _select(
        self, originator_id: UUID | str, gt: int | None, lte: int | None, desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        subject = self.log.subjects.event(originator_id)
        if desc and limit == 1:
            last = await self.log.reader.last_on_subject(subject)
            if last is None:
                return []
            event = decode_event(last)
            # The last event answers unless it is newer than ``lte`` (then older ones must be read).
            if lte is None or event.originator_version <= lte:
                return [event] if _within(event.originator_version, gt, lte) else []
        events = [decode_event(m) for m in await self.log.reader.read_subject(subject)]
        selected = [e for e in events if _within(e.originator_version, gt, lte)]
        if desc:
            selected.reverse()
        return selected if limit is None else selected[:limit]


class JetStreamApplicationRecorder(JetStreamAggregateRecorder, ApplicationRecorder):
    """Records stored events whose notification ids are their stream sequences."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Writes stored events into the stream and returns their notification ids."""
        tracking = self._tracking(kwargs)
        result = self.datastore.run(self._append(stored_events, tracking))
        if result is None:
            return []
        # Events come first in the batch, so their sequences are the first ones it got.
        return list(range(result.first_seq, result.first_seq + len(stored_events)))

    def _tracking(self, kwargs: dict[str, Any]) -> Tracking | None:
        return None

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Returns notifications from ``start`` on (up to ``stop``), filtered by topic."""
        first = 1 if start is None else start + (0 if inclusive_of_start else 1)
        return self.datastore.run(self._notifications(max(first, 1), limit, stop, set(topics)))

    async def _notifications(
        self, seq: int, limit: int, stop: int | None, topics: set[str]
    ) -> list[Notification]:
        found: list[Notification] = []
        while len(found) < limit and (stop is None or seq <= stop):
            # With a topic filter most of a page may be dropped, so read whole pages.
            wanted = PAGE if topics else min(limit - len(found), PAGE)
            wanted = wanted if stop is None else min(wanted, stop - seq + 1)
            page, pending = await self.log.reader.read_range(self.log.subjects.events, seq, wanted)
            for message in page:
                if stop is not None and message.seq > stop:
                    return found
                notification = decode_notification(message)
                if not topics or notification.topic in topics:
                    found.append(notification)
            if not page or not pending:
                break
            seq = page[-1].seq + 1
        return found[:limit]

    def max_notification_id(self) -> int | None:
        """Returns the stream sequence of the last event, or None when there is none."""
        last = self.datastore.run(self.log.reader.last_on_subject(self.log.subjects.events))
        return None if last is None else last.seq

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        """Returns a live iterator of notifications after ``gt``."""
        return JetStreamSubscription(self, gt=gt, topics=topics)


class JetStreamTrackingRecorder(JetStreamRecorder, TrackingRecorder):
    """Records how far each upstream application has been processed, one subject each."""

    def insert_tracking(self, tracking: Tracking) -> None:
        """Records a tracking object, refusing one not after the last recorded."""
        self.datastore.run(self._append((), tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        """Returns the last notification id recorded for ``application_name``, or None."""
        subject = self.log.subjects.tracking(application_name)
        last = self.datastore.run(self.log.reader.last_on_subject(subject))
        return None if last is None else int(last.headers[NOTIFICATION_ID_HEADER])


class JetStreamProcessRecorder(
    JetStreamTrackingRecorder, JetStreamApplicationRecorder, ProcessRecorder
):
    """Records events together with the tracking record of what caused them, atomically."""

    def _tracking(self, kwargs: dict[str, Any]) -> Tracking | None:
        tracking = kwargs.get("tracking")
        return tracking if isinstance(tracking, Tracking) else None


def _within(version: int, gt: int | None, lte: int | None) -> bool:
    return (gt is None or version > gt) and (lte is None or version <= lte)
