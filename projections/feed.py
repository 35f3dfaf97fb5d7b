"""The projector's view of the log: an ordered consumer that JetStream flow control can slow down.

Why not the store's callback feed: with a callback, nats-py answers JetStream flow
control as soon as a message is *received*, so the server never waits for a slow
reader; the client's pending queue then overflows and nats-py drops messages after
its ordered-consumer bookkeeping has counted them, so no gap is ever reported. A
replay of 250k events lost 8% of them that way. Read without a callback, nats-py
answers flow control only once messages leave its queue, and the server holds back.

The projector still checks that sequences are contiguous (``Projector``), so a loss
from any other cause is detected and re-read rather than skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import api

from services.errors import StoreUnavailable
from services.store import JetStreamEventStore, RecordedEvent
from services.store.feed import stream_seq_of

__all__ = ["LogFeed"]

_PENDING_BYTES = 256 * 1024 * 1024


class LogFeed:
    """Events of one stream from a start sequence on, in order, in micro-batches."""

    def __init__(self, subscription: Any) -> None:
        self._subscription = subscription
        # nats-py's public iterator costs a task per message; the queue behind it is the same.
        self._queue: asyncio.Queue[Msg] = subscription._pending_queue

    @classmethod
    async def open(cls, store: JetStreamEventStore, from_seq: int, max_pending: int = 200_000
                   ) -> LogFeed:
        """Starts an ordered consumer at ``from_seq`` over every event subject of the stream."""
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=max(from_seq, 1))
        try:
            subscription = await store.js.subscribe(
                f"{store.subject_prefix}.>", stream=store.stream, ordered_consumer=True,
                config=config, pending_msgs_limit=max_pending,
                pending_bytes_limit=_PENDING_BYTES)
        except (nats.errors.Error, TimeoutError) as error:
            raise StoreUnavailable(f"{store.stream}: cannot read the log ({error})") from None
        return cls(subscription)

    async def next_batch(self, max_size: int, linger_s: float) -> list[RecordedEvent]:
        """Waits for one event, then gathers up to ``max_size`` within ``linger_s``."""
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
        self._queue.task_done()
        self._subscription._pending_size -= len(msg.data)
        return RecordedEvent(stream_seq_of(msg), msg.subject, msg.data, msg.headers or {})

    async def close(self) -> None:
        """Stops the consumer."""
        with contextlib.suppress(nats.errors.Error):
            await self._subscription.unsubscribe()
