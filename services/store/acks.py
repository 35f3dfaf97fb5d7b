"""Appends pipelined on one ack inbox: a publish and a future, no request machinery.

``js.publish`` goes through nats-py's ``request()``: a fresh token with a random part,
a done-callback and an ``asyncio.wait_for`` timer per append, then a PubAck dataclass.
Here each append publishes with a reply subject ``<inbox>.<counter>`` on one wildcard
subscription; the ack resolves the append's future, and one sweeper times out the
appends past their deadline, so an append costs no timer of its own.

Ordering per aggregate needs nothing from this layer: the command service serialises
commands on one aggregate, so the expected-sequence header of an append is always
the position the previous append on that subject was acknowledged at.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

__all__ = ["Ack", "AckInbox", "AckRefused"]

_SWEEP_S = 0.25
"""How often appends past their deadline are failed (the timeout's resolution)."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The stream's answer to one append."""

    seq: int
    duplicate: bool


class AckRefused(Exception):
    """The stream refused the append (an API error: OCC, a bad header)."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(description)
        self.err_code = err_code
        self.description = description


class AckInbox:
    """Publishes appends and matches their acks, on one subscription of ``nc``."""

    def __init__(self, nc: Client, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, tuple[asyncio.Future[Ack], float]] = {}
        self._starting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    async def publish(self, subject: str, payload: bytes, headers: Mapping[str, str]) -> Ack:
        """Appends one message and waits for its ack (``TimeoutError`` past the timeout)."""
        if self._sweeper is None:
            await self._start()
        token = f"{self._prefix}.{next(self._tokens)}"
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (future, time.monotonic() + self._timeout_s)
        try:
            await self._nc.publish(subject, payload, reply=token, headers=dict(headers))
            return await future
        finally:
            self._waiting.pop(token, None)

    async def _start(self) -> None:
        # Two first appends must not both subscribe: every ack would arrive twice.
        async with self._starting:
            if self._sweeper is None:
                await self._nc.subscribe(f"{self._prefix}.*", cb=self._resolve)
                self._sweeper = asyncio.create_task(self._sweep(), name="ack sweeper")

    async def _resolve(self, msg: Msg) -> None:
        waiting = self._waiting.get(msg.subject)
        if waiting is None or waiting[0].done():
            return  # timed out already
        future = waiting[0]
        if msg.headers is not None and msg.headers.get("Status") == "503":
            future.set_exception(NoRespondersError())
            return
        ack = orjson.loads(msg.data)
        error = ack.get("error")
        if error is not None:
            future.set_exception(AckRefused(int(error.get("err_code", 0)),
                                            str(error.get("description", ""))))
        else:
            future.set_result(Ack(int(ack["seq"]), bool(ack.get("duplicate", False))))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = time.monotonic()
            for future, deadline in list(self._waiting.values()):
                if deadline <= now and not future.done():
                    future.set_exception(TimeoutError("no ack from the stream"))
