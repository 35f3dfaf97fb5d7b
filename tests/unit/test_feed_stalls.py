"""A feed that goes silent while the log holds more (nats-py, once it has dropped messages
from a full buffer, may deliver nothing again) is opened anew, never waited on forever:
by the projector, the replay reader, the command service's log follower and
``runlog tail``, which also read again after a gap.

The same stall on a real JetStream is in tests/integration/projections/test_feed_stalls.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from events.codec import CODEC
from events.envelope import StoredEvent
from projections import replay_reader
from projections.database import ReadModelDb
from projections.replay_frames import read_batches
from projections.runtime import Projector, ProjectorConfig
from services.errors import StoreError
from services.follower import LogFollower
from services.store import InMemoryEventStore, RecordedEvent, contiguous_run, follow_log
from tests.support.log import append_events, make_event

EVENTS = 40
SILENT_AFTER = 25


class _GoesSilent:
    """A feed that hands out events up to ``last`` and then nothing, ever."""

    def __init__(self, inner: Any, last: int) -> None:
        self._inner = inner
        self._last = last
        self._held: list[RecordedEvent] = []

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05
                         ) -> list[RecordedEvent]:
        if not self._held:
            self._held = await self._inner.next_batch(max_size, linger_s)
        batch = [r for r in self._held if r.seq <= self._last]
        self._held = []
        if not batch:
            await asyncio.Event().wait()  # the stall
        return batch

    async def close(self) -> None:
        await self._inner.close()


class _LosesOne:
    """A feed that never hands out one event (as a client that dropped it would)."""

    def __init__(self, inner: Any, lost: int) -> None:
        self._inner = inner
        self._lost = lost

    async def next_batch(self, max_size: int = 1000, linger_s: float = 0.05
                         ) -> list[RecordedEvent]:
        while True:
            batch = [r for r in await self._inner.next_batch(max_size, linger_s)
                     if r.seq != self._lost]
            if batch:
                return batch

    async def close(self) -> None:
        await self._inner.close()


class _StallingStore(InMemoryEventStore):
    """An in-memory log whose first feed goes silent after ``SILENT_AFTER`` events (or,
    with ``loses``, never hands out that one event)."""

    def __init__(self, loses: int | None = None) -> None:
        super().__init__()
        self.feeds = 0
        self._loses = loses

    async def subscribe(self, from_seq: int = 1, subjects: str | None = None,
                        max_pending: int = 200_000) -> Any:
        feed = await super().subscribe(from_seq, subjects, max_pending)
        self.feeds += 1
        if self.feeds > 1:
            return feed
        return _GoesSilent(feed, SILENT_AFTER) if self._loses is None else _LosesOne(
            feed, self._loses)


async def _filled(loses: int | None = None) -> _StallingStore:
    store = _StallingStore(loses)
    for n in range(EVENTS):
        await append_events(store, [make_event(f"r{n}", 1, f"c{n}", "RunCreated", name="x")], 0)
    return store


async def test_a_catch_up_reads_again_past_a_silent_feed(tmp_path: Path) -> None:
    store = await _filled()
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    try:
        projector = Projector(store, db, ProjectorConfig(stall_s=0.1))
        assert await asyncio.wait_for(projector.catch_up(), 10) == EVENTS
        assert db.con.execute("SELECT count(*) FROM runs").fetchone() == (EVENTS,)
    finally:
        db.close()
    assert store.feeds == 2


async def test_the_live_projector_reads_again_past_a_silent_feed(tmp_path: Path) -> None:
    store = await _filled()
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    projector = Projector(store, db, ProjectorConfig(stall_s=0.1))
    following = asyncio.create_task(projector.run())
    try:
        assert await projector.wait_for_seq(EVENTS, timeout_s=10) == EVENTS
    finally:
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
        db.close()
    assert store.feeds == 2


async def test_a_quiet_log_is_not_a_stall(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    await append_events(store, [make_event("r1", 1, "c1", "RunCreated", name="x")], 0)
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    projector = Projector(store, db, ProjectorConfig(stall_s=0.05))
    opened = 0
    subscribe = store.subscribe

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return await subscribe(*args, **kwargs)

    store.subscribe = counted  # type: ignore[method-assign]
    following = asyncio.create_task(projector.run())
    try:
        await projector.wait_for_seq(1, timeout_s=10)
        await asyncio.sleep(0.5)  # ten stall deadlines with nothing to read
    finally:
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
        db.close()
    assert opened == 1


class _Sink:
    """What the replay reader writes to its applier's stdin."""

    def __init__(self) -> None:
        self.written = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.written.write(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.written.seek(0)


async def test_the_replay_reader_reads_again_past_a_silent_feed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_reader, "STALL_S", 0.1)
    store = await _filled()
    sink = _Sink()
    await asyncio.wait_for(replay_reader._send(store, sink, EVENTS), 10)  # type: ignore[arg-type]
    sent = [record.seq for records, _ in read_batches(sink.written) for record in records]
    assert sent == list(range(1, EVENTS + 1))
    assert store.feeds == 2


class _Seen:
    """An observer of every aggregate: the sequences it was handed, in order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def wants(self, aggregate: str) -> bool:
        return True

    def observe(self, stored: StoredEvent) -> None:
        self.seqs.append(stored.seq)


@pytest.mark.parametrize("loses", [None, 10], ids=["silent feed", "lost event"])
async def test_the_log_follower_hands_out_every_event_once_past_a_stall_or_a_gap(
        loses: int | None) -> None:
    store = await _filled(loses)
    seen = _Seen()
    follower = LogFollower(store, CODEC, [seen], stall_s=0.1)
    await follower.start()
    try:
        await follower.caught_up(timeout_s=10)
    finally:
        await follower.stop()
    assert seen.seqs == list(range(1, EVENTS + 1))
    assert store.feeds == 2


async def _followed(store: _StallingStore, subjects: str | None, until: int | None
                    ) -> list[int]:
    seqs: list[int] = []
    events = follow_log(store, 1, subjects, until, stall_s=0.1)
    async with contextlib.aclosing(events):
        async for batch in events:
            seqs += [r.seq for r in batch]
            if len(seqs) >= EVENTS:
                break
    return seqs


@pytest.mark.parametrize("loses", [None, 10], ids=["silent feed", "lost event"])
async def test_tail_to_the_head_reads_every_event_once_past_a_stall_or_a_gap(
        loses: int | None) -> None:
    store = await _filled(loses)
    assert await asyncio.wait_for(_followed(store, None, EVENTS), 10) == list(
        range(1, EVENTS + 1))
    assert store.feeds == 2


async def test_a_filtered_tail_reads_again_past_a_silent_feed() -> None:
    store = await _filled()
    subjects = f"{store.subject_prefix}.run.>"
    assert await asyncio.wait_for(_followed(store, subjects, None), 10) == list(
        range(1, EVENTS + 1))
    assert store.feeds == 2


async def test_a_tail_to_a_bound_past_the_last_event_ends_once_the_log_holds_nothing_more(
        ) -> None:
    store = await _filled()
    # The bound names a sequence the log no longer holds (its last events were deleted).
    async def read_to_the_bound() -> list[int]:
        return [r.seq async for batch in follow_log(store, 1, None, EVENTS + 5, stall_s=0.1)
                for r in batch]

    assert await asyncio.wait_for(read_to_the_bound(), 10) == list(range(1, EVENTS + 1))


async def test_a_tail_to_a_bound_reads_on_when_the_log_cannot_say_whether_it_holds_more(
        ) -> None:
    store = await _filled()  # its first feed goes silent after SILENT_AFTER events
    real = store.last_on_subject
    asked = 0

    async def once_unanswered(subject: str) -> RecordedEvent | None:
        nonlocal asked
        asked += 1
        if asked == 1:
            raise StoreError("no answer for the last message (NATS reconnecting)")
        return await real(subject)

    store.last_on_subject = once_unanswered  # type: ignore[method-assign]
    assert await asyncio.wait_for(_followed(store, None, EVENTS), 10) == list(
        range(1, EVENTS + 1))
    assert asked >= 2  # "cannot say" was asked again, not taken for "nothing more"


def _records(*seqs: int) -> list[RecordedEvent]:
    return [RecordedEvent(seq, "s", b"", {}) for seq in seqs]


@pytest.mark.parametrize(("seqs", "expected", "fresh", "target", "run", "gap"), [
    ((6, 9), 6, False, 8, [6], True),  # 7 and 8 lost, 9 past the target: a gap
    ((6, 7, 8, 9), 6, False, 8, [6, 7, 8], False),  # the target reached: no gap
    ((9,), 6, True, 8, [], False),  # a new feed's first record past it: 6..8 deleted
    ((5, 6, 9), 5, True, 8, [5, 6], True),  # lost after the first record of a new feed
    ((6, 9), 6, False, None, [6], True),  # unbounded, as before
])
def test_a_run_cut_at_the_target_says_whether_events_before_it_were_lost(
        seqs: tuple[int, ...], expected: int, fresh: bool, target: int | None,
        run: list[int], gap: bool) -> None:
    wanted, _, cut = contiguous_run(_records(*seqs), expected, fresh, target)
    assert ([r.seq for r in wanted], cut) == (run, gap)


async def _losing_before_the_target() -> _StallingStore:
    return await _filled(loses=TARGET)


TARGET = 30
"""A bound the first feed loses the event of, delivering the ones past it."""


async def test_a_catch_up_to_a_bound_reads_again_for_an_event_lost_just_before_it(
        tmp_path: Path) -> None:
    store = await _losing_before_the_target()
    db = ReadModelDb.open_writer(tmp_path / "r.duckdb")
    try:
        position = await asyncio.wait_for(
            Projector(store, db, ProjectorConfig(stall_s=0.1)).catch_up(TARGET), 10)
        runs = db.con.execute("SELECT count(*) FROM runs").fetchone()
    finally:
        db.close()
    assert (position, runs) == (TARGET, (TARGET,))
    assert store.feeds == 2


async def test_the_replay_reader_reads_again_for_an_event_lost_just_before_its_target(
        ) -> None:
    store = await _losing_before_the_target()
    sink = _Sink()
    await asyncio.wait_for(replay_reader._send(store, sink, TARGET), 10)  # type: ignore[arg-type]
    sent = [record.seq for records, _ in read_batches(sink.written) for record in records]
    assert sent == list(range(1, TARGET + 1))
