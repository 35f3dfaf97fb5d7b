"""NATS request/reply plumbing for the read side: JSON in, ``{"ok": ...}`` JSON out.

Each request is answered in its own task (a slow query must not hold up the next
one); DuckDB work itself is bounded by the caller's thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .errors import ProjectionError

__all__ = ["Handler", "Responder", "encode_reply"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
_MAX_IN_FLIGHT = 256


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
            request = json.loads(msg.data or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            await self._respond(msg, _error("invalid_json", f"request body: {error}"))
            return
        try:
            reply = {"ok": True, "result": await handler(request)}
        except ProjectionError as error:
            reply = _error(error.code, str(error))
        except Exception as error:
            log.exception("read-side request on %s failed", msg.subject)
            reply = _error("internal", f"{type(error).__name__}: {error}".splitlines()[0])
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
