"""The projector's view of the log: the store's ordered feed of every event subject.

The feed lets JetStream flow control slow the server down for a slow projector (see
``services.store.feed``); the projector still checks that sequences are contiguous
(``Projector``), so a loss from any other cause is detected and re-read, not skipped.
A feed can also stall: once nats-py has dropped messages from a full client buffer, its
ordered consumer may receive nothing more at all. A reader that knows events remain
(``next_batch_within`` returning None) opens a new feed where it stopped.
"""

from __future__ import annotations

import asyncio

from services.store.port import EventFeed, EventStore
from services.store.records import RecordedEvent

__all__ = ["STALL_S", "next_batch_within", "open_feed"]

STALL_S = 15.0
"""How long a read that knows more events exist waits for the next one before it takes
its feed for stalled: past nats-py's own recovery (two missed idle heartbeats, 10 s)."""


async def open_feed(store: EventStore, from_seq: int, max_pending: int = 200_000) -> EventFeed:
    """Starts a feed at ``from_seq`` over every event subject of the log."""
    return await store.subscribe(from_seq, max_pending=max_pending)


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
