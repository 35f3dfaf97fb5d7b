"""The floor to compare ``runlog up`` with: a bare nats-py responder doing one OCC append.

Per request: JSON decode, one JetStream append with a msg id and
``Nats-Expected-Last-Subject-Sequence`` (the last sequence it wrote on that subject),
a JSON reply with the sequence. A task per request, so requests overlap as they do
in the service. Run as its own process (``python raw_responder.py URL STREAM``), it
prints ``ready`` once subscribed and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.store import JetStreamEventStore

__all__ = ["subscribe_raw"]


async def subscribe_raw(nc: Client, stream: str, concurrent: bool = True) -> None:
    """Answers ``runlog.cmd.>`` on ``nc`` with one OCC append to ``stream`` per request."""
    store = JetStreamEventStore(nc, stream=stream, subject_prefix=f"{stream.lower()}.evt")
    await store.ensure_stream()
    js = nc.jetstream()
    last: dict[str, int] = {}
    in_flight: set[asyncio.Task[None]] = set()

    async def append_and_reply(msg: Msg) -> None:
        body = json.loads(msg.data)
        subject = f"{store.subject_prefix}.run.{body['run_id']}"
        ack = await js.publish(subject, msg.data, headers={
            "Nats-Msg-Id": uuid.uuid4().hex,
            "Nats-Expected-Last-Subject-Sequence": str(last.get(subject, 0))})
        last[subject] = ack.seq
        await msg.respond(json.dumps({"ok": True, "seq": ack.seq}).encode())

    async def callback(msg: Msg) -> None:
        if not concurrent:
            await append_and_reply(msg)
            return
        task = asyncio.create_task(append_and_reply(msg))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    await nc.subscribe("runlog.cmd.>", queue="raw", cb=callback)


async def serve(url: str, stream: str) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    nc = await nats.connect(url)
    await subscribe_raw(nc, stream)
    await nc.flush()
    print("ready", flush=True)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
