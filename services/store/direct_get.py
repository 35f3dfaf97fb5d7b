"""Batch direct get: one request reads a subject's messages without a consumer."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping

from nats.aio.client import Client
from nats.aio.msg import Msg

from services.errors import StoreError, StoreUnavailable

from .records import RecordedEvent

__all__ = ["DirectGetter"]

_BATCH = 256
_NO_MORE = frozenset({"404", "204"})
"""Statuses meaning "no (more) messages"; any other one (503: no stream) is an error."""


class DirectGetter:
    """Reads messages by subject with ``$JS.API.DIRECT.GET``, over one shared inbox."""

    def __init__(self, nc: Client, stream: str, timeout_s: float = 5.0) -> None:
        self._nc = nc
        self._api = f"$JS.API.DIRECT.GET.{stream}"
        self._timeout_s = timeout_s
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._queues: dict[str, asyncio.Queue[Msg]] = {}
        self._started = False
        self._starting = asyncio.Lock()

    async def _ensure_inbox(self) -> None:
        # Two first readers must not both subscribe: every reply would arrive twice.
        if self._started:
            return
        async with self._starting:
            if not self._started:
                await self._nc.subscribe(f"{self._prefix}.*", cb=self._route)
                self._started = True

    async def _route(self, msg: Msg) -> None:
        queue = self._queues.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg)

    async def _request(self, body: dict[str, object]) -> list[Msg]:
        """Sends one direct-get request and collects replies up to the end-of-batch marker."""
        await self._ensure_inbox()
        inbox = f"{self._prefix}.{next(self._tokens)}"
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._queues[inbox] = queue
        try:
            await self._nc.publish(self._api, json.dumps(body).encode(), reply=inbox)
            return await asyncio.wait_for(self._collect(queue, body), self._timeout_s)
        finally:
            del self._queues[inbox]

    @staticmethod
    async def _collect(queue: asyncio.Queue[Msg], body: Mapping[str, object]) -> list[Msg]:
        replies: list[Msg] = []
        while True:
            msg = await queue.get()
            status = _status(msg)
            if status and status not in _NO_MORE:
                description = (msg.headers or {}).get("Description", "")
                # 503: no replica answers for now (a leader election): a transient failure.
                failure = StoreUnavailable if status == "503" else StoreError
                raise failure(f"direct get refused: {status} {description}".strip())
            replies.append(msg)
            if "batch" not in body or status:
                return replies

    async def read_subject(self, subject: str, from_seq: int = 1) -> list[RecordedEvent]:
        """Returns every message on ``subject`` from stream sequence ``from_seq`` on."""
        events: list[RecordedEvent] = []
        while True:
            body = {"seq": from_seq, "batch": _BATCH, "next_by_subj": subject}
            replies = await self._request(body)
            end = replies[-1].headers or {}
            events.extend(_to_event(m) for m in replies if not _status(m))
            if int(end.get("Nats-Num-Pending", "0") or 0) == 0 or not events:
                return events
            from_seq = events[-1].seq + 1

    async def first_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the first message on ``subject``, or None when it has none."""
        return await self._one({"seq": 1, "next_by_subj": subject})

    async def last_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the last message on ``subject``, or None when it has none."""
        return await self._one({"last_by_subj": subject})

    async def _one(self, body: dict[str, object]) -> RecordedEvent | None:
        (reply,) = await self._request(body)
        return None if _status(reply) else _to_event(reply)


def _status(msg: Msg) -> str | None:
    return (msg.headers or {}).get("Status")


def _to_event(msg: Msg) -> RecordedEvent:
    headers = msg.headers or {}
    return RecordedEvent(
        seq=int(headers["Nats-Sequence"]),
        subject=headers["Nats-Subject"],
        payload=msg.data,
        headers=headers,
    )
