"""The projector's view of the log: the store's ordered feed of every event subject.

The feed lets JetStream flow control slow the server down for a slow projector (see
``services.store.feed``); the projector still checks that sequences are contiguous
(``Projector``), so a loss from any other cause is detected and re-read, not skipped,
and a read that knows the log holds more takes a silent feed for stalled
(``services.store.stalls``) and opens a new one where it stopped.
"""

from __future__ import annotations

from services.store.port import EventFeed, EventStore
from services.store.stalls import STALL_S, contiguous_run, log_holds_past, next_batch_within

__all__ = ["STALL_S", "contiguous_run", "log_holds_past", "next_batch_within", "open_feed"]


async def open_feed(store: EventStore, from_seq: int, max_pending: int = 200_000) -> EventFeed:
    """Starts a feed at ``from_seq`` over every event subject of the log."""
    return await store.subscribe(from_seq, max_pending=max_pending)
