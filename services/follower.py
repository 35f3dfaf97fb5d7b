"""The one log follower: reads the whole log in order and hands each event to every observer.

Everything in this process that must know the log beyond its own writes rides on it:
the repositories' caches, the board of open tasks (the claim index), the budget
spending, and every policy. It is an ordered JetStream consumer from ``start_seq``
(the position of a checkpoint, 1 without one).

Delivery and acks: an ordered consumer has no acks and nothing is redelivered by the
server; the follower itself never skips: each event reaches every observer exactly
once per process, in stream order. Should the client lose messages (a gap in the
sequences) or its feed go silent while the log holds more (``services.store.stalls``),
the follower opens a new feed right after the last event it handed out. After a
restart it starts again from its checkpoint, so observers see events after the
checkpoint again: they are idempotent by sequence (a repository skips an event at or
below an aggregate's last sequence), and policies act through commands with ids
derived from their trigger.

An event the codec cannot read is logged and skipped (the read models record it in
``projection_errors``); the follower's position still moves past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from events.codec import DecodeError, EventCodec, StoredEvent
from services.errors import StoreError
from services.store import (
    STALL_S,
    EventFeed,
    EventStore,
    RecordedEvent,
    contiguous_run,
    log_holds_past,
    next_batch_within,
)

__all__ = ["LogFollower", "Observer"]

log = logging.getLogger(__name__)

_FIRST_RETRY_S = 0.25
"""The first pause before a feed the log could not give is asked for again."""
_LAST_RETRY_S = 5.0
"""The longest such pause: short, since commands that wait on the follower wait for it."""


class Observer(Protocol):
    """Something kept current by the log follower."""

    def wants(self, aggregate: str) -> bool:
        """Whether events of this aggregate type concern it (checked before decoding)."""
        ...

    def observe(self, stored: StoredEvent) -> None:
        """Takes one event, in stream order; must not block."""
        ...


class LogFollower:
    """Follows the log from ``start_seq`` and feeds every observer, in order."""

    def __init__(self, store: EventStore, codec: EventCodec, observers: Sequence[Observer],
                 start_seq: int = 1, stall_s: float = STALL_S) -> None:
        self._store = store
        self._stall_s = stall_s
        self._codec = codec
        self._observers = list(observers)
        self._start_seq = start_seq
        self.position = start_seq - 1
        """The stream sequence of the last event handed out (or passed over)."""
        self._head = 0
        self._moved = asyncio.Condition()
        self._feed: EventFeed | None = None
        self._task: asyncio.Task[None] | None = None
        self._prefix_len = len(store.subject_prefix) + 1

    def add(self, observer: Observer) -> None:
        """Adds an observer; it sees events from the follower's position on."""
        self._observers.append(observer)

    async def start(self) -> None:
        """Subscribes and starts following; ``caught_up`` then waits for the head."""
        self._head = await self._store.last_seq()
        self._feed = await self._store.subscribe(self._start_seq)
        self._task = asyncio.create_task(self._follow(), name="log-follower")

    async def caught_up(self, timeout_s: float | None = None) -> None:
        """Waits until every event that was on the log at start has been handed out."""
        await self.reached(self._head, timeout_s)

    async def reached(self, seq: int, timeout_s: float | None = None) -> None:
        """Waits until the follower has handed out stream sequence ``seq``."""
        if self.position >= seq:
            return
        async with self._moved:
            await asyncio.wait_for(self._moved.wait_for(lambda: self.position >= seq),
                                   timeout_s)

    async def _follow(self) -> None:
        """Hands out every event, on a new feed after each gap or stall of the last one,
        or after the log failed to answer: it never stops before ``stop``."""
        while self._feed is not None:  # ``_reopen`` gives it a new one; ``stop`` ends this
            try:
                await self._follow_feed(self._feed)
            except StoreError as error:
                log.warning("log follower: the log failed after seq %d (%s): reading again "
                            "from there", self.position, error)
            await self._reopen()

    async def _reopen(self) -> None:
        """A new feed from the position, asked for again (with a growing pause) for as
        long as the log cannot give one: a reconnect or an election ends, the follower
        must not (the policies, caches and ledgers all see the log through it)."""
        if self._feed is not None:
            feed, self._feed = self._feed, None
            with contextlib.suppress(StoreError):
                await feed.close()
        pause = _FIRST_RETRY_S
        while True:
            try:
                self._feed = await self._store.subscribe(self.position + 1)
                return
            except StoreError as error:
                log.warning("log follower: cannot read the log from seq %d (%s): trying "
                            "again in %.1f s", self.position + 1, error, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_RETRY_S)

    async def _follow_feed(self, feed: EventFeed) -> None:
        """Hands out events until the feed loses some, then returns (read again)."""
        fresh = True
        while True:
            batch = await next_batch_within(feed, 2000, 0.002, self._stall_s)
            if batch is None:
                if await log_holds_past(self._store, self.position):
                    log.warning("log follower: no event for %.0f s while the log holds more "
                                "past seq %d: reading again from there", self._stall_s,
                                self.position)
                    return
                continue
            wanted, _, gap = contiguous_run(batch, self.position + 1, fresh)
            fresh = False
            for recorded in wanted:
                self._hand_out(recorded)
            async with self._moved:
                self._moved.notify_all()
            if gap:
                log.warning("log follower: the feed skipped events after seq %d: reading "
                            "again from there", self.position)
                return

    def _hand_out(self, recorded: RecordedEvent) -> None:
        self.position = recorded.seq
        aggregate = recorded.subject[self._prefix_len:].partition(".")[0]
        wanting = [o for o in self._observers if o.wants(aggregate)]
        if not wanting:
            return
        try:
            stored = self._codec.decode(recorded.payload, recorded.seq, recorded.headers,
                                        recorded.subject)
        except DecodeError as error:
            log.warning("log follower skipped seq %d: %s", recorded.seq, error)
            return
        for observer in wanting:
            try:
                observer.observe(stored)
            except Exception:
                # One observer's bug must not starve the others of the log.
                log.exception("%s failed on seq %d", type(observer).__name__, recorded.seq)

    async def stop(self) -> None:
        """Stops following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._feed is not None:
            await self._feed.close()
