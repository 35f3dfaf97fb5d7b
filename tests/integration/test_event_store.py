"""The event store against a real nats-server: OCC, idempotency, atomicity, reads."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.aio.client import Client

from events import EventEnvelope, event_subject, utc_now
from services.errors import ConcurrencyConflict, StoreError
from services.store import JetStreamEventStore, RecordedEvent
from tests.support.nats_server import unique_prefix, unique_stream_name

pytestmark = pytest.mark.nats


def make_event(aggregate_id: str, version: int, command_id: str, kind: str = "RunStarted",
               **data: object) -> EventEnvelope:
    return EventEnvelope(
        type=kind, schema_version=1, event_id=uuid.uuid4().hex, aggregate="run",
        aggregate_id=aggregate_id, version=version, occurred_at=utc_now(),
        command_id=command_id, data=dict(data),
    )


async def test_append_then_read_returns_events_in_order(store: JetStreamEventStore) -> None:
    first = await store.append([make_event("r1", 1, "c1", "RunCreated", name="a")], 0)
    second = await store.append([make_event("r1", 2, "c2")], first.last_seq)
    events = await store.read("run", "r1")
    assert [e.seq for e in events] == [first.last_seq, second.last_seq]
    assert [e.envelope().type for e in events] == ["RunCreated", "RunStarted"]
    assert events[0].envelope().data == {"name": "a"}


async def test_read_from_sequence_skips_earlier_events(store: JetStreamEventStore) -> None:
    seqs = []
    last = 0
    for version in range(1, 6):
        last = (await store.append([make_event("r1", version, f"c{version}")], last)).last_seq
        seqs.append(last)
    events = await store.read("run", "r1", from_seq=seqs[2])
    assert [e.seq for e in events] == seqs[2:]


async def test_read_pages_past_one_direct_get_batch(store: JetStreamEventStore) -> None:
    last = 0
    for version in range(1, 601):
        last = (await store.append([make_event("big", version, f"c{version}")], last)).last_seq
    events = await store.read("run", "big")
    assert [e.envelope().version for e in events] == list(range(1, 601))


async def test_stale_expected_sequence_is_a_conflict(store: JetStreamEventStore) -> None:
    await store.append([make_event("r1", 1, "c1")], 0)
    with pytest.raises(ConcurrencyConflict):
        await store.append([make_event("r1", 1, "c-other")], 0)
    assert len(await store.read("run", "r1")) == 1


async def test_retried_single_append_answers_original_position(store: JetStreamEventStore) -> None:
    original = await store.append([make_event("r1", 1, "c1")], 0)
    retried = await store.append([make_event("r1", 1, "c1")], 0)
    assert retried.duplicate
    assert (retried.first_seq, retried.last_seq) == (original.first_seq, original.last_seq)
    assert len(await store.read("run", "r1")) == 1


async def test_retried_batch_answers_original_positions(store: JetStreamEventStore) -> None:
    batch = [make_event("r1", v, "c1") for v in (1, 2, 3)]
    original = await store.append(batch, 0)
    retried = await store.append(batch, 0)
    assert retried.duplicate
    assert (retried.first_seq, retried.last_seq) == (original.first_seq, original.last_seq)
    assert original.last_seq - original.first_seq == 2
    assert len(await store.read("run", "r1")) == 3


async def test_atomic_batch_is_all_or_nothing(store: JetStreamEventStore) -> None:
    await store.append([make_event("r1", 1, "c1")], 0)
    with pytest.raises(ConcurrencyConflict):
        await store.append([make_event("r1", 2, "c2"), make_event("r1", 3, "c2")], 0)
    assert [e.envelope().version for e in await store.read("run", "r1")] == [1]
    assert await store.last_seq() == 1


async def test_twenty_concurrent_writers_exactly_one_wins_each_version(
    store: JetStreamEventStore,
) -> None:
    async def writer(worker: int) -> int:
        wins = 0
        for _ in range(10):
            stored = await store.read("run", "hot")
            expected = stored[-1].seq if stored else 0
            try:
                command_id = f"w{worker}-{uuid.uuid4().hex}"
                await store.append([make_event("hot", len(stored) + 1, command_id)], expected)
                wins += 1
            except ConcurrencyConflict:
                pass
        return wins

    wins = await asyncio.gather(*(writer(n) for n in range(20)))
    versions = [e.envelope().version for e in await store.read("run", "hot")]
    assert versions == list(range(1, sum(wins) + 1))


async def test_stale_cache_is_caught_by_occ(store: JetStreamEventStore) -> None:
    cached_last = (await store.append([make_event("r1", 1, "c1")], 0)).last_seq
    await store.append([make_event("r1", 2, "c2")], cached_last)
    with pytest.raises(ConcurrencyConflict):
        await store.append([make_event("r1", 2, "c3")], cached_last)


async def test_read_all_and_subscribe_see_global_order(store: JetStreamEventStore) -> None:
    for n in range(30):
        await store.append([make_event(f"r{n}", 1, f"c{n}")], 0)
    seen: list[RecordedEvent] = []
    async for batch in store.read_all(from_seq=11, until_seq=25):
        seen.extend(batch)
    assert [e.seq for e in seen] == list(range(11, 26))
    feed = await store.subscribe(from_seq=29)
    await store.append([make_event("late", 1, "c-late")], 0)
    live = await feed.next_batch(max_size=10, linger_s=0.5)
    live += [] if len(live) >= 3 else await feed.next_batch(max_size=10, linger_s=0.5)
    await feed.close()
    assert [e.seq for e in live] == [29, 30, 31]
    assert live[-1].subject == event_subject("run", "late", store.subject_prefix)


async def test_missing_aggregate_reads_empty(store: JetStreamEventStore) -> None:
    assert await store.read("run", "nobody") == []
    assert await store.last_on_subject(event_subject("run", "nobody", store.subject_prefix)) is None


async def test_ensure_stream_is_idempotent(store: JetStreamEventStore) -> None:
    await store.append([make_event("r1", 1, "c1")], 0)
    await store.ensure_stream()
    info = await store.js.stream_info(store.stream)
    assert info.config.allow_direct
    assert info.config.allow_atomic
    assert info.state.messages == 1


async def test_first_concurrent_reads_do_not_duplicate_events(nc: Client) -> None:
    writer = JetStreamEventStore(nc, stream=unique_stream_name(), subject_prefix=unique_prefix())
    await writer.ensure_stream()
    await writer.append([make_event("r1", 1, "c1"), make_event("r1", 2, "c1")], 0)
    reader = JetStreamEventStore(nc, stream=writer.stream, subject_prefix=writer.subject_prefix)
    reads = await asyncio.gather(*(reader.read("run", "r1") for _ in range(10)))
    assert [[e.seq for e in events] for events in reads] == [[1, 2]] * 10
    await writer.js.delete_stream(writer.stream)


async def test_reading_a_missing_stream_is_an_error_not_an_empty_history(nc: Client) -> None:
    missing = JetStreamEventStore(nc, stream=unique_stream_name(), timeout_s=2)
    with pytest.raises(StoreError):
        await missing.read("run", "r1")


async def test_a_slow_reader_loses_nothing(store: JetStreamEventStore) -> None:
    # The reader is slower than the stream; flow control must hold the server back. The
    # client buffer must exceed the server's flow-control window (measured here: 5,000
    # messages is too small and nats-py drops messages; the store defaults to 200,000).
    for n in range(20_000):
        await store.js.publish_async(f"{store.subject_prefix}.run.r{n % 100}", b"{}")
    await store.js.publish_async_completed()
    feed = await store.subscribe(1, max_pending=50_000)
    seen: list[int] = []
    try:
        while len(seen) < 20_000:
            batch = await asyncio.wait_for(feed.next_batch(max_size=400, linger_s=0.01), 10)
            seen.extend(e.seq for e in batch)
            await asyncio.sleep(0.002)
    finally:
        await feed.close()
    assert seen == list(range(1, 20_001))
