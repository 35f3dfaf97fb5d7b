"""A live feed of events from an ordered consumer, handed out in micro-batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.msg import Msg

from .records import RecordedEvent

__all__ = ["EventFeed", "stream_seq_of"]


def stream_seq_of(msg: Msg) -> int:
    """Returns the stream sequence of a delivered JetStream message, from its ack subject."""
    tokens = (msg.reply or "").split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>... (v1) or with domain and account (v2).
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class EventFeed:
    """Buffers delivered events (bounded, so a slow reader slows the server down)."""

    def __init__(self, max_pending: int = 200_000) -> None:
        self._queue: asyncio.Queue[RecordedEvent] = asyncio.Queue(max_pending)
        self.subscription: Any = None

    async def on_message(self, msg: Msg) -> None:
        """Receives one message from the ordered consumer."""
        event = RecordedEvent(stream_seq_of(msg), msg.subject, msg.data, msg.headers or {})
        await self._queue.put(event)

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05) -> list[RecordedEvent]:
        """Waits for at least one event, then gathers up to ``max_size`` within ``linger_s``."""
        batch = [await self._queue.get()]
        deadline = time.monotonic() + linger_s
        while len(batch) < max_size:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
                continue
            batch.append(self._queue.get_nowait())
        return batch

    async def batches(
        self, until_seq: int | None = None, max_size: int = 1000, linger_s: float = 0.05
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches in stream order, stopping after ``until_seq`` when given."""
        while True:
            batch = await self.next_batch(max_size, linger_s)
            if until_seq is not None and batch[-1].seq >= until_seq:
                yield [e for e in batch if e.seq <= until_seq]
                return
            yield batch

    async def close(self) -> None:
        """Stops the consumer."""
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()
            self.subscription = None
