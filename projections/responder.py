"""NATS request/reply plumbing for the read side: JSON in, ``{"ok": ...}`` JSON out.

Each request is answered in its own task (a slow query must not hold up the next one);
the SQL service bounds the work itself. A handler may also stream: it sends parts of
its answer through ``Request.stream()``, each part a message to the requester that the
requester acknowledges before the next is sent (so a slow reader slows the sender
instead of losing messages), then returns the last part as its ordinary reply.

A request's *client* is who asked, as the reply subject tells: a per-user inbox prefix
(``_INBOX_<user>``, as ``deploy/nats/accounts.conf`` gives each identity) names the
user; otherwise the reply subject less its last token names one connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .errors import ProjectionError, QueryInterrupted

__all__ = ["ChunkStream", "Handler", "Request", "Responder", "client_of", "encode_reply"]

log = logging.getLogger(__name__)

_MAX_IN_FLIGHT = 256
_ACK_TIMEOUT_S = 30.0


def client_of(reply_subject: str) -> str:
    """Who sent a request, from its reply subject (see the module's docstring)."""
    first, _, _rest = reply_subject.partition(".")
    if first.startswith("_INBOX_"):
        return first
    return reply_subject.rpartition(".")[0] or reply_subject or "anonymous"


class ChunkStream:
    """Parts of one answer sent to the requester one by one, each acknowledged before the next."""

    def __init__(self, nc: Client, reply: str) -> None:
        self.nc = nc
        self.reply = reply
        self.max_bytes = nc.max_payload or 1024 * 1024
        self._loop = asyncio.get_running_loop()
        self._acks: Any = None
        self._inbox = ""

    async def open(self) -> None:
        """Subscribes the inbox the acknowledgements come to."""
        self._inbox = self.nc.new_inbox()
        self._acks = await self.nc.subscribe(self._inbox)

    async def send(self, data: bytes, timeout_s: float = _ACK_TIMEOUT_S) -> None:
        """Sends one part and waits for the requester to take it."""
        await self.nc.publish(self.reply, data, reply=self._inbox)
        try:
            await self._acks.next_msg(timeout=max(timeout_s, 0.001))
        except (nats.errors.TimeoutError, TimeoutError):
            raise QueryInterrupted("the client stopped reading the result") from None

    def send_from_thread(self, data: bytes, timeout_s: float = _ACK_TIMEOUT_S,
                         stopped: Callable[[], bool] = lambda: False) -> None:
        """``send`` for a worker thread (the query's own): blocks it until the part is taken,
        or until ``stopped()`` says the query was stopped meanwhile."""
        sent = asyncio.run_coroutine_threadsafe(self.send(data, timeout_s), self._loop)
        while True:
            try:
                sent.result(timeout=0.05)
                return
            except concurrent.futures.TimeoutError:
                if stopped():
                    sent.cancel()
                    raise QueryInterrupted("the query was stopped while its client read") from None

    async def close(self) -> None:
        """Drops the acknowledgement inbox."""
        if self._acks is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._acks.unsubscribe()


@dataclass
class Request:
    """One request as a handler sees it."""

    body: dict[str, Any]
    client: str
    nc: Client
    msg: Msg
    _stream: ChunkStream | None = field(default=None, repr=False)

    async def stream(self) -> ChunkStream:
        """Opens the way to send this request's answer in several parts."""
        if self._stream is None:
            if not self.msg.reply:
                raise QueryInterrupted("a streamed answer needs a reply subject")
            self._stream = ChunkStream(self.nc, self.msg.reply)
            await self._stream.open()
        return self._stream

    async def close(self) -> None:
        """Frees what the request opened."""
        if self._stream is not None:
            await self._stream.close()


Handler = Callable[[Request], Awaitable[dict[str, Any]]]


class Responder:
    """Serves ``<prefix>.<action>`` for each handler, in one queue group."""

    def __init__(self, nc: Client, prefix: str, queue: str, handlers: dict[str, Handler]) -> None:
        self.nc = nc
        self.prefix = prefix
        self.queue = queue
        self.handlers = handlers
        self._subscriptions: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribes every action."""
        for action, handler in self.handlers.items():
            async def on_message(msg: Msg, handler: Handler = handler) -> None:
                self._spawn(msg, handler)

            self._subscriptions.append(
                await self.nc.subscribe(f"{self.prefix}.{action}", queue=self.queue,
                                        cb=on_message))
        # Once start returns, the server routes requests here (a client sent right after a
        # "ready" must not meet "no responders").
        await self.nc.flush()

    async def stop(self) -> None:
        """Unsubscribes and lets requests in flight finish."""
        for subscription in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, msg: Msg, handler: Handler) -> None:
        if len(self._tasks) >= _MAX_IN_FLIGHT:
            coro = self._respond(msg, _error("unavailable", "too many requests in flight"))
        else:
            coro = self._answer(msg, handler)
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg, handler: Handler) -> None:
        try:
            body = json.loads(msg.data or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            await self._respond(msg, _error("invalid_json", f"request body: {error}"))
            return
        request = Request(body, client_of(msg.reply or ""), self.nc, msg)
        try:
            reply = {"ok": True, "result": await handler(request)}
        except ProjectionError as error:
            reply = _error(error.code, str(error))
        except Exception as error:
            log.exception("read-side request on %s failed", msg.subject)
            reply = _error("internal", f"{type(error).__name__}: {error}".splitlines()[0])
        finally:
            await request.close()
        await self._respond(msg, reply)

    async def _respond(self, msg: Msg, reply: dict[str, Any]) -> None:
        if not msg.reply:
            return
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(encode_reply(reply, self.nc.max_payload or 1024 * 1024))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def encode_reply(reply: dict[str, Any], max_bytes: int) -> bytes:
    """Serialises a reply, dropping rows from the end (and saying so) until it fits."""
    body = json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
    result = reply.get("result")
    if len(body) <= max_bytes or not isinstance(result, dict) or not result.get("rows"):
        return body
    rows = result["rows"]
    low, high = 0, len(rows)
    while low < high:  # the largest row count that fits
        mid = (low + high + 1) // 2
        trial = {**reply, "result": {**result, "rows": rows[:mid], "truncated": True}}
        if len(json.dumps(trial, ensure_ascii=False, separators=(",", ":")).encode()) <= max_bytes:
            low = mid
        else:
            high = mid - 1
    return json.dumps({**reply, "result": {**result, "rows": rows[:low], "truncated": True}},
                      ensure_ascii=False, separators=(",", ":")).encode()
