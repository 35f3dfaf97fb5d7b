"""The projector runtime: feed the log into the read models, batch by batch, from the checkpoint.

The projector reads the stream with the store's ordered-consumer feed, starting right
after its checkpoint, and gathers micro-batches bounded by size and linger time. Each
batch is applied in a worker thread in one transaction together with the new
checkpoint. The thread keeps the event loop answering (the feed, SQL requests, beats)
while a batch applies; it does not make the two run at once, since DuckDB holds the GIL
while it scans the batch's Arrow tables. Applying small batches on the loop itself saved
no CPU and made queries wait (a poll took 57-87 ms against 9-11).

Batches follow the lag: caught up, a batch is whatever has arrived, applied at once (no
linger), so an event is visible one transaction after it is written; behind, a batch
grows with the lag up to ``max_batch_size`` and lingers to fill, so each transaction's
fixed cost is spread over more events and the backlog shrinks faster. Under a steady
stream, batches leave a pause as long as the last one took (``busy_share``), which
halves the transactions (each costs DuckDB about the same whatever its size) and so
the CPU the read side takes from the command path on a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from events.codec import CODEC, EventCodec
from services.errors import StoreError
from services.store import RecordedEvent
from services.store.port import EventFeed, EventStore

from .applier import BatchApplier, BatchResult
from .database import ReadModelDb, checkpoint_positions
from .errors import DatabaseStrained, WaitTimeout
from .feed import STALL_S, contiguous_run, log_holds_past, next_batch_within, open_feed
from .models import Projection
from .telemetry import ProjectorTelemetry

T = TypeVar("T")

__all__ = ["Progress", "Projector", "ProjectorConfig", "wait_for_checkpoint"]

log = logging.getLogger(__name__)

ARRIVAL_HALF_LIFE_S = 0.1
"""Half-life of the arrival rate's moving average: a batch's window is a few tens of
milliseconds and jitters, and a quiet spell longer than this forgets the old rate."""

Progress = Callable[[int, int], None]
"""Called after each batch with (position, target)."""


@dataclass(frozen=True, kw_only=True)
class ProjectorConfig:
    """How a projector batches and how strict it is."""

    batch_size: int = 2000
    """Most events per transaction while the projector is caught up (less than this behind)."""
    max_batch_size: int | None = None
    """Most events per transaction when far behind: the batch grows with the lag up to this
    (None: ten times ``batch_size``)."""
    linger_s: float = 0.005
    """How long a batch waits to fill once its first event arrived, while the projector is
    behind; caught up, it never waits."""
    max_pending: int = 200_000
    """Cap of the client's buffer; flow control keeps the real backlog near the server's
    window (tens of thousands of events), and events past the cap are re-read, not lost."""
    strict: bool = False
    """Halt on an event that cannot be applied instead of recording it and moving on."""
    head_refresh_s: float = 0.5
    """How often the stream head (for the lag) is asked for, at most."""
    stall_s: float = STALL_S
    """With no event for this long while the log holds events past the position, the
    feed is taken for stalled and opened again from the position."""
    busy_share: float = 0.5
    """Under a steady stream while caught up, the share of the time batches may take: a
    batch that took ``c`` seconds is followed by a pause of ``c * (1 / busy_share - 1)``
    (at most ``max_pause_s``) counted from its end, so the next one gathers more events
    for the same fixed cost. An event after a quiet spell never waits. 1.0: no pause.
    At 0.5 the read side's CPU per command at saturation measured 339 µs against 698
    (``runlog up``: 1,596 against 1,130 commands/s in the same run, freshness unchanged)."""
    max_pause_s: float = 0.025
    """The longest pause ``busy_share`` makes (it adds to the freshness)."""
    pause_from_rate: float = 1250.0
    """The pause is taken only while events arrive at least this fast (events a second,
    averaged over the last batches): a slower stream gets its batches one after the
    other, which keeps the freshness low (at 1,000 commands/s on 2 cores: p99 47-55 ms
    against 94-96 with the pause), while a fast stream, which needs the cores for its
    commands, still gets the pause. A rate, not a batch size: the pause itself grows the
    batches but not the rate, so the choice cannot feed on itself (a threshold of 100
    events a batch did: at saturation, batches kept under it by the missing pause took
    the read side from 106-134 to 275-417 µs/command). 1,250 rather than 1,500: on a
    slow day the machine saturates near 1,500 events a second, and there the pause
    came and went (three alternating rounds at saturation: 1,693-1,969 against
    1,603-1,641 commands/s, the read side 200-246 against 314-343 µs/command; at 1,000
    commands/s, where the rate peaks near 1,230, the freshness p99 read 97-123 against
    92-107 ms, p50 the same)."""


class Projector:
    """Keeps one read-model file up to date with the log."""

    def __init__(
        self,
        store: EventStore,
        db: ReadModelDb,
        config: ProjectorConfig | None = None,
        projections: Sequence[Projection] | None = None,
        codec: EventCodec = CODEC,
        name: str = "read_models",
        telemetry: ProjectorTelemetry | None = None,
    ) -> None:
        self.store = store
        self.db = db
        self.config = config or ProjectorConfig()
        self.applier = BatchApplier(db, projections, self.config.strict, codec)
        self._projections = projections
        self._codec = codec
        self.telemetry = telemetry or ProjectorTelemetry(name)
        self.on_strain: Callable[[], int] | None = None
        """Called when a batch lacks memory, before it is retried (the read side stops its
        queries); returns how many it stopped."""
        self._lock = asyncio.Lock()
        self._head = 0
        self._head_at = 0.0
        self._last_end = 0.0
        self._last_cost_s = 0.0
        self._last_start = 0.0
        self._arrival_rate = 0.0
        """Events a second reaching the live projector, a moving average over batches."""
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        """Heap of (seq, ticket, future): the ``wait_for_seq`` calls, woken after a commit."""
        self._tickets = itertools.count()

    @property
    def position(self) -> int:
        """The stream sequence every read model has applied (committed)."""
        return self.applier.position

    async def run(self) -> None:
        """Follows the log until cancelled; raises ``ProjectionHalted`` in strict mode."""
        while True:
            feed = await self._open_feed()
            try:
                await self._follow(feed)
            finally:
                await feed.close()

    async def catch_up(self, until_seq: int | None = None, until: datetime | None = None,
                       progress: Progress | None = None) -> int:
        """Applies the log up to ``until_seq`` (default: the head now) or ``until``; returns
        the position reached."""
        head = await self._last_event_seq()
        target = head if until_seq is None else min(until_seq, head)
        while self.position < target:
            feed = await self._open_feed()
            try:
                if await self._follow(feed, target, until, progress):
                    break
            finally:
                await feed.close()
        return self.position

    async def _follow(self, feed: EventFeed, target: int | None = None,
                      until: datetime | None = None, progress: Progress | None = None) -> bool:
        """Applies batches; returns False on a gap (read again), True once done."""
        fresh = True
        while target is None or self.position < target:
            size, linger = self._batch_shape(target)
            if linger == 0.0:
                await self._pace()
            records = await next_batch_within(feed, size, linger, self.config.stall_s)
            if records is None:
                if await self._stalled(target):
                    log.warning("no event for %.0f s while the log holds more past seq %d: "
                                "reading again from there", self.config.stall_s, self.position)
                    return False
                continue  # caught up, and the log is quiet
            # Only a gap at a new subscription's start is real (deleted messages); any
            # other one means the feed lost events, which must be read again.
            wanted, _, gap = contiguous_run(records, self.position + 1, fresh, target)
            fresh = False
            if wanted:
                head = target if target is not None else await self._stream_head(wanted[-1].seq)
                result = await self._apply(wanted, head, until, live=target is None)
                if progress is not None:
                    progress(self.position, head)
                if result.stopped:
                    return True
            if gap:
                log.warning("the feed skipped events after seq %d: reading again from there",
                            self.position)
                return False
            if target is not None and records[-1].seq >= target:
                return True
        return True

    async def _pace(self) -> None:
        """Leaves the time ``busy_share`` asks for since the last batch ended."""
        share = self.config.busy_share
        if share >= 1.0 or self._arrival_rate < self.config.pause_from_rate:
            return
        pause = min(self._last_cost_s * (1 / share - 1), self.config.max_pause_s)
        rest = self._last_end + pause - time.perf_counter()
        if rest > 0:
            await asyncio.sleep(rest)

    def _track_arrivals(self, events: int, started: float) -> None:
        """Updates the arrival rate with a batch: its events over the time since the last one."""
        window = started - self._last_start
        self._last_start = started
        if window <= 0:
            return
        # Weighted by time, not by batch: a long window says more than a short one.
        weight = 1 - 0.5 ** (window / ARRIVAL_HALF_LIFE_S)
        self._arrival_rate += weight * (events / window - self._arrival_rate)

    def _batch_shape(self, target: int | None) -> tuple[int, float]:
        """The next batch's size limit and linger, from how far behind the projector is."""
        lag = (target if target is not None else self._head) - self.position
        config = self.config
        if lag < config.batch_size:
            return config.batch_size, 0.0
        most = config.max_batch_size or 10 * config.batch_size
        return min(lag, max(most, config.batch_size)), config.linger_s

    async def wait_for_seq(self, seq: int, timeout_s: float) -> int:
        """Waits until the read models include stream sequence ``seq``; returns the position.

        Woken by the commit that reaches it, not by polling: a read-your-writes query
        runs as soon as its row is visible.
        """
        if self.position >= seq:
            return self.position
        entry = (seq, next(self._tickets), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiters, entry)
        try:
            async with asyncio.timeout(timeout_s):
                await entry[2]
        except TimeoutError:
            raise WaitTimeout(f"read models are at seq {self.position}, not {seq}, "
                              f"after {timeout_s:g} s") from None
        finally:
            if not entry[2].done() or entry[2].cancelled():
                self._forget(entry)
        return self.position

    def _wake_waiters(self) -> None:
        """Resolves every wait the position has reached."""
        position = self.position
        while self._waiters and self._waiters[0][0] <= position:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    def _forget(self, entry: tuple[int, int, asyncio.Future[None]]) -> None:
        with contextlib.suppress(ValueError):  # already popped by a wake
            self._waiters.remove(entry)
            heapq.heapify(self._waiters)

    def use_database(self, db: ReadModelDb) -> None:
        """Continues in another file (after a swap); call it while ``paused``."""
        self.db = db
        self.applier = BatchApplier(db, self._projections, self.config.strict, self._codec)
        self._wake_waiters()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Holds the projector between batches (for a consistent copy or a swap)."""
        async with self._lock:
            yield

    async def _open_feed(self) -> EventFeed:
        return await open_feed(self.store, self.position + 1, self.config.max_pending)

    async def _apply(self, records: list[RecordedEvent], head: int,
                     cutoff: datetime | None = None, live: bool = False) -> BatchResult:
        started = time.perf_counter()
        self._track_arrivals(len(records), started)
        delay = 0.05
        while True:
            try:
                result = await self._apply_once(records, head, cutoff)
                break
            except DatabaseStrained as strained:
                # Queries share the memory limit: they give way, and the batch is tried again.
                freed = self.on_strain() if self.on_strain is not None else 0
                log.warning("%s; %d queries stopped, retrying in %.2f s", strained, freed, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._last_end = time.perf_counter()
        self._last_cost_s = self._last_end - started
        if live:  # a catch-up's events are as old as the log: their age says nothing new
            self.telemetry.record_visible(records)
        self._wake_waiters()
        self.telemetry.record(result.events, self._last_cost_s, result.last_seq,
                              max(head, result.last_seq))
        if result.rejected:
            log.warning("skipped %d event(s) up to seq %d: see projection_errors",
                        result.rejected, result.last_seq)
        return result

    async def _apply_once(self, records: list[RecordedEvent], head: int,
                          cutoff: datetime | None) -> BatchResult:
        async with self._lock:
            with self.telemetry.batch_span(records):
                return await _uninterruptible(
                    asyncio.to_thread(self.applier.apply, records, head, cutoff))

    async def _last_event_seq(self) -> int:
        """The last message the log still holds (0 when none): what a catch-up can reach.

        Not the stream's last sequence: that one stays put when the last messages are
        deleted or the stream is purged, and waiting for it would never end.
        """
        last = await self.store.last_on_subject(f"{self.store.subject_prefix}.>")
        return last.seq if last is not None else 0

    async def _stalled(self, target: int | None) -> bool:
        """Whether events the feed should have delivered exist past the position."""
        if target is not None:
            return target > self.position
        return bool(await log_holds_past(self.store, self.position))  # unknown: wait on

    async def _stream_head(self, seen: int) -> int:
        """Returns the stream head, asking the server at most every ``head_refresh_s``."""
        now = time.monotonic()
        if now - self._head_at >= self.config.head_refresh_s:
            self._head_at = now
            try:
                self._head = await self.store.last_seq()
            except StoreError as error:
                log.debug("stream head unknown for now: %s", error)
        self._head = max(self._head, seen)
        return self._head


async def wait_for_checkpoint(db: ReadModelDb, seq: int, timeout_s: float,
                              poll_s: float = 0.01) -> int:
    """Polls the checkpoints table until every projection reached ``seq``; returns the position."""
    deadline = time.monotonic() + timeout_s
    cursor = db.cursor()
    try:
        while True:
            position = min(checkpoint_positions(cursor).values(), default=0)
            if position >= seq:
                return position
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"read models are at seq {position}, not {seq}, "
                                  f"after {timeout_s:g} s")
            await asyncio.sleep(poll_s)
    finally:
        cursor.close()


async def _uninterruptible(work: Awaitable[T]) -> T:
    """Awaits ``work`` to the end even when cancelled, then lets the cancellation through.

    A batch runs in a worker thread that cannot be stopped: returning early on
    cancellation would let the caller close the database under it.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
