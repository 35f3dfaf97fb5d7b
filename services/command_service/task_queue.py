"""The claim index: which tasks are claimable, by kind, priority and submission order.

Each service replica builds its own index from the task events on the log and
keeps following them. The index only proposes candidates: a claim still loads
the task and appends its lease with an optimistic concurrency check, so a stale
index (another replica's claim not seen yet) costs a retry, never a double lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from events import events_filter
from services.store import EventFeed, JetStreamEventStore, RecordedEvent

__all__ = ["TaskQueueIndex"]

log = logging.getLogger(__name__)

_HELD = frozenset({"leased", "running"})


@dataclass(slots=True)
class _Entry:
    kind: str
    priority: int
    order: int
    state: str
    seq: int = 0
    run_id: str = ""
    retry_at: datetime | None = None
    lease_epoch: int = 0
    lease_expires_at: datetime | None = None


class TaskQueueIndex:
    """Claim candidates per kind, highest priority first, FIFO within a priority."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        self._waiting: list[tuple[datetime, str]] = []
        self._leases: list[tuple[datetime, int, str]] = []
        self._ended: dict[str, int] = {}
        self._by_run: dict[str, set[str]] = {}
        self.position = 0
        self._feed: EventFeed | None = None
        self._follower: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    # -- following the log ----------------------------------------------------------

    async def start(self, store: JetStreamEventStore) -> None:
        """Reads every task event so far, then keeps following the log."""
        task_events = events_filter("task", store.subject_prefix)
        last = await store.last_on_subject(task_events)
        head = last.seq if last else 0
        self._feed = await store.subscribe(1, task_events)
        self._follower = asyncio.create_task(self._follow(self._feed, head))
        if head == 0:
            self.caught_up.set()

    async def _follow(self, feed: EventFeed, head: int) -> None:
        while True:
            for recorded in await feed.next_batch(max_size=2000, linger_s=0.005):
                self.apply(recorded)
            if self._ended:
                self._ended = {t: s for t, s in self._ended.items() if s > self.position}
            if self.position >= head:
                self.caught_up.set()

    async def stop(self) -> None:
        """Stops following the log."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._feed is not None:
            await self._feed.close()

    def apply(self, recorded: RecordedEvent) -> None:
        """Folds one task event from the log into the index."""
        self.position = max(self.position, recorded.seq)
        try:
            self.observe(json.loads(recorded.payload), recorded.seq)
        except (ValueError, KeyError, TypeError):
            log.warning("claim index skipped malformed event at seq %d", recorded.seq)

    def observe(self, event: dict[str, object], seq: int) -> None:
        """Folds one task event (its flat wire form) written at ``seq``; repeats are ignored."""
        task_id = str(event["aggregate_id"])
        entry = self._tasks.get(task_id)
        if (entry is not None and seq <= entry.seq) or seq <= self._ended.get(task_id, 0):
            return
        if event["type"] == "TaskSubmitted":
            entry = _Entry(str(event["kind"]), int(str(event["priority"])), seq, "",
                           run_id=str(event["run_id"]))
            self._tasks[task_id] = entry
            self._by_run.setdefault(entry.run_id, set()).add(task_id)
        if entry is None:
            return
        entry.seq = seq
        entry.state = str(event["to_state"])
        if "lease_epoch" in event:
            entry.lease_epoch = int(str(event["lease_epoch"]))
        if "lease_expires_at" in event:
            entry.lease_expires_at = datetime.fromisoformat(str(event["lease_expires_at"]))
        if "retry_at" in event:
            entry.retry_at = datetime.fromisoformat(str(event["retry_at"]))
        self._file(task_id, entry)

    def _file(self, task_id: str, entry: _Entry) -> None:
        if entry.state == "queued":
            heapq.heappush(self._ready.setdefault(entry.kind, []),
                           (-entry.priority, entry.order, task_id))
        elif entry.state == "retry_wait" and entry.retry_at is not None:
            heapq.heappush(self._waiting, (entry.retry_at, task_id))
        elif entry.state in _HELD and entry.lease_expires_at is not None:
            heapq.heappush(self._leases, (entry.lease_expires_at, entry.lease_epoch, task_id))
        elif entry.state in ("succeeded", "failed", "cancelled"):
            del self._tasks[task_id]
            self._forget_run_task(entry.run_id, task_id)
            if entry.seq > self.position:
                # Ended by this replica ahead of the feed: the feed will still deliver the
                # task's earlier events, which must not bring it back.
                self._ended[task_id] = entry.seq

    def _forget_run_task(self, run_id: str, task_id: str) -> None:
        tasks = self._by_run.get(run_id)
        if tasks is not None:
            tasks.discard(task_id)
            if not tasks:
                del self._by_run[run_id]

    # -- reading ------------------------------------------------------------------

    def open_tasks(self, run_id: str) -> list[str]:
        """The run's tasks that have not finished, as far as this index has seen."""
        return sorted(self._by_run.get(run_id, ()))

    def candidates(self, kinds: list[str], now: datetime) -> Iterator[str]:
        """Claimable task ids of ``kinds`` (none: every kind), best first, due retries first."""
        kinds = kinds or list(self._ready)
        yield from self._due_retries(set(kinds), now)
        heads = [(heap[0], kind) for kind in kinds if (heap := self._clean(kind))]
        while heads:
            heads.sort()
            (_, _, task_id), kind = heads[0]
            yield task_id
            heap = self._clean(kind)
            if heap and heap[0][2] == task_id:
                heapq.heappop(heap)
            heads = [(heap[0], k) for k in kinds if (heap := self._clean(k))]

    def _clean(self, kind: str) -> list[tuple[int, int, str]]:
        """The kind's heap with stale heads (no longer queued) dropped."""
        heap = self._ready.get(kind, [])
        while heap and self._tasks.get(heap[0][2], _Entry("", 0, 0, "")).state != "queued":
            heapq.heappop(heap)
        return heap

    def _due_retries(self, kinds: set[str], now: datetime) -> Iterator[str]:
        due = []
        while self._waiting and self._waiting[0][0] <= now:
            retry_at, task_id = heapq.heappop(self._waiting)
            entry = self._tasks.get(task_id)
            if entry is not None and entry.state == "retry_wait":
                due.append((retry_at, task_id))
        try:
            for _, task_id in due:
                if self._tasks[task_id].kind in kinds:
                    yield task_id
        finally:
            # Whatever was not leased stays due; a leased one is dropped lazily later.
            for item in due:
                heapq.heappush(self._waiting, item)

    def lapsed_leases(self, now: datetime) -> list[tuple[str, int, datetime]]:
        """``(task_id, lease_epoch, lease_expires_at)`` of held tasks whose lease ran out."""
        lapsed = []
        while self._leases and self._leases[0][0] < now:
            expires_at, epoch, task_id = heapq.heappop(self._leases)
            entry = self._tasks.get(task_id)
            if entry and entry.state in _HELD and entry.lease_epoch == epoch \
                    and entry.lease_expires_at == expires_at:
                lapsed.append((task_id, epoch, expires_at))
        return lapsed

    def __len__(self) -> int:
        return len(self._tasks)
