"""Marks a worker ``lost`` when it has sent no heartbeat for ``timeout_s``.

A lost worker takes no new claims, and its slots are freed; the leases of the
tasks it held expire on their own (the lease policy), so they are retried. A
heartbeat brings the worker back. The command id names the worker and the
sequence of its last sign of life, so replicas noticing the same silence mark it
lost once.

It follows the worker events with its own ordered consumer, from the start of
the log, so every replica knows every worker's last sign of life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from events import events_filter, utc_now
from services.command_service import CommandExecutor
from services.store import EventFeed, JetStreamEventStore, RecordedEvent

from .ids import policy_command_id

__all__ = ["WorkerLivenessPolicy"]

log = logging.getLogger(__name__)

_ALIVE = frozenset({"idle", "busy", "draining"})


@dataclass(slots=True)
class _LastSign:
    state: str
    at: datetime
    seq: int


class WorkerLivenessPolicy:
    """Every ``interval_s``, marks lost the live workers silent for more than ``timeout_s``."""

    def __init__(self, executor: CommandExecutor, store: JetStreamEventStore,
                 timeout_s: float = 90.0, interval_s: float = 1.0) -> None:
        self._executor = executor
        self._store = store
        self._timeout = timedelta(seconds=timeout_s)
        self._interval_s = interval_s
        self._workers: dict[str, _LastSign] = {}

    async def run(self) -> None:
        """Follows the worker events and sweeps until cancelled."""
        feed = await self._store.subscribe(1, events_filter("worker", self._store.subject_prefix))
        follower = asyncio.create_task(self._follow(feed))
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                await self.sweep(utc_now())
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await feed.close()

    async def _follow(self, feed: EventFeed) -> None:
        while True:
            for recorded in await feed.next_batch(max_size=1000, linger_s=0.01):
                self.observe(recorded)

    def observe(self, recorded: RecordedEvent) -> None:
        """Keeps each worker's state and last sign of life (registration or heartbeat)."""
        event = json.loads(recorded.payload)
        worker_id = str(event["aggregate_id"])
        last = self._workers.get(worker_id)
        sign = event.get("at")
        if sign is not None:
            last = _LastSign(str(event["to_state"]), datetime.fromisoformat(sign), recorded.seq)
        elif last is not None:
            last.state = str(event["to_state"])
        if last is not None:
            self._workers[worker_id] = last

    async def sweep(self, now: datetime) -> int:
        """Marks lost every live worker silent since before ``now - timeout``."""
        marked = 0
        for worker_id, last in list(self._workers.items()):
            if last.state not in _ALIVE or now - last.at <= self._timeout:
                continue
            body = {"worker_id": worker_id,
                    "command_id": policy_command_id("lost", worker_id, last.seq)}
            reply = await self._executor.execute("worker.mark_lost", json.dumps(body).encode())
            if reply["ok"]:
                marked += bool(reply["events"])
                last.state = "lost"
            else:
                log.info("worker %s not marked lost: %s", worker_id, reply["error"]["message"])
        return marked
