"""The reader's floor for replay: an ordered consumer that only ``json.loads`` each event.

``python ordered_reader.py URL STREAM SUBJECTS`` reads the whole stream in its own
process and prints one JSON line: events, seconds from subscribing to the last
event, events/s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

__all__ = ["read_ordered"]


async def read_ordered(js: JetStreamContext, stream: str, subjects: str, total: int) -> float:
    """Reads ``total`` events with an ordered consumer, decoding each; returns the seconds."""
    seen = 0
    done = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        nonlocal seen
        json.loads(msg.data)
        seen += 1
        if seen >= total:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe(subjects, stream=stream, ordered_consumer=True, cb=on_message,
                             pending_msgs_limit=500_000, pending_bytes_limit=1024 ** 3)
    await done.wait()
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    return seconds


async def read_all(url: str, stream: str, subjects: str) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    total = (await js.stream_info(stream)).state.last_seq
    seconds = await read_ordered(js, stream, subjects, total)
    await nc.close()
    return {"events": total, "seconds": seconds, "events_per_s": total / seconds}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(read_all(*sys.argv[1:4]))))
