"""Reads by batch direct get: one originator's events, a range of notifications, a last message."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import Header

from services.errors import StoreError, StoreUnavailable
from services.store import RecordedEvent
from services.store.direct_get import DirectGetter

__all__ = ["StreamReader"]

PAGE = 500
_FOUND_NOTHING = frozenset({"204", "404"})


class StreamReader(DirectGetter):
    """The store's direct getter with range reads, and errors where it would answer empty."""

    def __init__(self, nc: Client, stream: str, timeout_s: float = 5.0) -> None:
        super().__init__(nc, stream, timeout_s)
        self._inbox_lock = asyncio.Lock()

    async def _ensure_inbox(self) -> None:
        # Two first readers at once would both subscribe the shared inbox and see every reply twice.
        async with self._inbox_lock:
            await super()._ensure_inbox()

    async def read_range(
        self, subjects: str, from_seq: int, batch: int = PAGE
    ) -> tuple[list[RecordedEvent], int]:
        """Returns a page of messages on ``subjects`` from ``from_seq``, and how many remain."""
        body = {"seq": max(from_seq, 1), "batch": max(batch, 1), "next_by_subj": subjects}
        replies = await self._request(body)
        _raise_for_status(replies[-1])
        events = [_to_event(m) for m in replies if not _status(m)]
        pending = int((replies[-1].headers or {}).get("Nats-Num-Pending", "0") or 0)
        return events, pending

    async def read_subject(self, subject: str, from_seq: int = 1) -> list[RecordedEvent]:
        """Returns every message on ``subject`` from ``from_seq`` on, page by page."""
        events: list[RecordedEvent] = []
        while True:
            page, pending = await self.read_range(subject, from_seq)
            events.extend(page)
            if not page or not pending:
                return events
            from_seq = page[-1].seq + 1

    async def last_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the last message on ``subject`` (wildcards allowed), or None."""
        (reply,) = await self._request({"last_by_subj": subject})
        _raise_for_status(reply)
        return None if _status(reply) else _to_event(reply)


def _status(msg: Msg) -> str:
    return (msg.headers or {}).get("Status", "")


def _raise_for_status(msg: Msg) -> None:
    status = _status(msg)
    if not status or status in _FOUND_NOTHING:
        return
    description = (msg.headers or {}).get(Header.DESCRIPTION, "").strip()
    if status == "503":
        raise StoreUnavailable(f"direct get: no stream answered ({description or 'status 503'})")
    raise StoreError(f"direct get refused: status {status} {description}".strip())


def _to_event(msg: Msg) -> RecordedEvent:
    headers = msg.headers or {}
    return RecordedEvent(int(headers["Nats-Sequence"]), headers["Nats-Subject"], msg.data, headers)
