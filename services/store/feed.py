"""A live feed of events from an ordered consumer, handed out in micro-batches.

Read without a callback on purpose: with a callback, nats-py answers JetStream flow
control as soon as a message is *received*, so the server never waits for a slow
reader; the client's pending queue then overflows and nats-py drops messages after
its ordered-consumer bookkeeping counted them, so no gap is ever reported (a
250k-event replay lost 8% that way). Without a callback, nats-py answers flow
control only once messages leave its queue, and the server holds back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import nats.errors
from nats.aio.msg import Msg

from .records import RecordedEvent

__all__ = ["JetStreamFeed", "stream_position_of", "stream_seq_of"]


def stream_position_of(msg: Msg) -> tuple[int, int]:
    """Returns (stream sequence, time stored in ns) of a delivered JetStream message, from
    its ack subject."""
    tokens = (msg.reply or "").split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending> (v1), or with
    # <domain>.<account hash> after ACK and a random token at the end (v2).
    v1 = len(tokens) == 9
    return int(tokens[5] if v1 else tokens[7]), int(tokens[7] if v1 else tokens[9])


def stream_seq_of(msg: Msg) -> int:
    """Returns the stream sequence of a delivered JetStream message, from its ack subject."""
    return stream_position_of(msg)[0]


class JetStreamFeed:
    """Events of one ordered consumer, in stream order, in micro-batches."""

    def __init__(self, subscription: Any) -> None:
        self._subscription = subscription
        # nats-py's public iterator costs a task per message; the queue behind it is the same.
        self._queue: asyncio.Queue[Msg] = subscription._pending_queue

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05) -> list[RecordedEvent]:
        """Waits for at least one event, then gathers up to ``max_size`` within ``linger_s``."""
        batch = [self._record(await self._queue.get())]
        deadline = time.monotonic() + linger_s
        queue = self._queue
        while len(batch) < max_size:
            if queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    msg = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                msg = queue.get_nowait()
            batch.append(self._record(msg))
        return batch

    def _record(self, msg: Msg) -> RecordedEvent:
        # Keeps nats-py's own accounting right, as its iterator would.
        self._queue.task_done()
        self._subscription._pending_size -= len(msg.data)
        seq, stored_ns = stream_position_of(msg)
        return RecordedEvent(seq, msg.subject, msg.data, msg.headers or {}, stored_ns)

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
        with contextlib.suppress(nats.errors.Error):
            await self._subscription.unsubscribe()
