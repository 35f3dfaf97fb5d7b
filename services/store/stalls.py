"""Gaps and stalls: what every reader of the log checks of its feed.

A gap in the sequences means the client lost messages (only one at the very start of a
subscription is real: deleted messages), and they are read again from a new feed. Once
nats-py has dropped messages from a full client buffer, its ordered consumer may
receive nothing more at all, even past its own reset after two missed idle heartbeats
(10 s). A reader that knows the log holds more than it got (``next_batch_within``
returning None) opens a new feed where it stopped; a quiet log is no reason to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from services.errors import StoreError

from .port import EventFeed, EventStore
from .records import RecordedEvent

__all__ = ["STALL_S", "contiguous_run", "follow_log", "log_holds_past", "next_batch_within"]

STALL_S = 15.0
"""How long a read that knows more events exist waits for the next one before it takes
its feed for stalled."""


async def next_batch_within(feed: EventFeed, max_size: int, linger_s: float, stall_s: float
                            ) -> list[RecordedEvent] | None:
    """The feed's next batch, or None when no event came within ``stall_s``.

    A batch cut short by the deadline is lost to this feed, so after None a caller must
    either open a new feed or let its gap check notice the missing events.
    """
    try:
        return await asyncio.wait_for(feed.next_batch(max_size, linger_s), stall_s)
    except TimeoutError:
        return None


def contiguous_run(records: list[RecordedEvent], expected: int, fresh: bool,
                   target: int | None = None) -> tuple[list[RecordedEvent], int, bool]:
    """The run of ``records`` from sequence ``expected`` on (up to ``target``), the next
    sequence wanted after it, and whether a gap cut it.

    ``fresh``: the batch is a new subscription's first, where a gap before the first
    record is accepted. Records before ``expected`` are redeliveries and are passed over.
    """
    wanted: list[RecordedEvent] = []
    for record in records:
        if record.seq < expected:
            continue
        if target is not None and record.seq > target:
            # Past the target with events before it still wanted: they were lost, unless
            # this is a new subscription's first record (they were deleted).
            return wanted, expected, expected <= target and not (fresh and not wanted)
        if record.seq > expected and not (fresh and not wanted):
            return wanted, expected, True
        wanted.append(record)
        expected = record.seq + 1
    return wanted, expected, False


async def log_holds_past(store: EventStore, seq: int, subjects: str | None = None
                         ) -> bool | None:
    """Whether the log still holds an event (of ``subjects``) after ``seq``; None when
    NATS cannot say (its reconnect, not this check, tells of that), which is no "no"."""
    try:
        last = await store.last_on_subject(subjects or f"{store.subject_prefix}.>")
    except StoreError:
        return None
    return last is not None and last.seq > seq


async def follow_log(store: EventStore, first: int, subjects: str | None = None,
                     until: int | None = None, stall_s: float = STALL_S
                     ) -> AsyncGenerator[list[RecordedEvent], None]:
    """Batches of the events from ``first`` on (of ``subjects``, up to ``until``), in
    order, each once, for a reader with no position of its own to keep (``runlog tail``).

    A feed that goes silent while the log holds more of its events is opened again where
    it stopped, and so is one that skips events (a gap shows only when every subject is
    read: filtered, the sequences have gaps of their own).
    """
    position = first - 1
    while until is None or position < until:
        feed = await store.subscribe(position + 1, subjects)
        try:
            fresh = True
            while until is None or position < until:
                batch = await next_batch_within(feed, 1000, 0.02, stall_s)
                if batch is None:
                    holds = await log_holds_past(store, position, subjects)
                    if holds:
                        break
                    if holds is False and until is not None:
                        return  # nothing left up to ``until`` (its last events were deleted)
                    continue  # a quiet log, or NATS cannot say now: ask again after a wait
                if subjects is None:
                    wanted, _, gap = contiguous_run(batch, position + 1, fresh, until)
                else:
                    wanted, gap = _past(batch, position, until), False
                fresh = False
                if wanted:
                    position = wanted[-1].seq
                    yield wanted
                if gap:
                    break
        finally:
            await feed.close()


def _past(records: list[RecordedEvent], position: int, until: int | None
          ) -> list[RecordedEvent]:
    return [r for r in records if r.seq > position and (until is None or r.seq <= until)]
