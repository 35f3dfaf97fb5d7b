"""Telling a silent feed from a quiet log.

Once nats-py has dropped messages from a full client buffer, its ordered consumer may
receive nothing more at all, even past its own reset after two missed idle heartbeats
(10 s). A reader that knows the log holds more than it got (``next_batch_within``
returning None) opens a new feed where it stopped; a quiet log is no reason to.
"""

from __future__ import annotations

import asyncio

from .port import EventFeed
from .records import RecordedEvent

__all__ = ["STALL_S", "next_batch_within"]

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
