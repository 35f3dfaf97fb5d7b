"""The JetStream event store beyond the port's contract (tests/contract): the stream itself."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.aio.client import Client

from events import event_subject
from services.errors import StoreError
from services.store import JetStreamEventStore
from tests.support.log import append_events, make_event
from tests.support.nats_server import unique_prefix, unique_stream_name

pytestmark = pytest.mark.nats


async def test_ensure_stream_is_idempotent(store: JetStreamEventStore) -> None:
    await append_events(store, [make_event("r1", 1, "c1")], 0)
    await store.ensure_stream()
    info = await store.js.stream_info(store.stream)
    assert info.config.allow_direct
    assert info.config.allow_atomic
    assert info.state.messages == 1


async def test_first_concurrent_reads_do_not_duplicate_events(nc: Client) -> None:
    writer = JetStreamEventStore(nc, stream=unique_stream_name(), subject_prefix=unique_prefix())
    await writer.ensure_stream()
    await append_events(writer, [make_event("r1", 1, "c1"), make_event("r1", 2, "c1")], 0)
    reader = JetStreamEventStore(nc, stream=writer.stream, subject_prefix=writer.subject_prefix)
    subject = event_subject("run", "r1", writer.subject_prefix)
    reads = await asyncio.gather(*(reader.read_subject(subject) for _ in range(10)))
    assert [[e.seq for e in events] for events in reads] == [[1, 2]] * 10
    await writer.js.delete_stream(writer.stream)


async def test_reading_a_missing_stream_is_an_error_not_an_empty_history(nc: Client) -> None:
    missing = JetStreamEventStore(nc, stream=unique_stream_name(), timeout_s=2)
    with pytest.raises(StoreError):
        await missing.read_subject(event_subject("run", "r1"))


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


async def test_one_batch_sent_by_two_writers_at_once_lands_once(
        store: JetStreamEventStore, nats_url: str) -> None:
    # Two replicas retrying one command send the same messages at the same moment; under
    # one batch id the server interleaved them and dropped both as incomplete.
    other_nc = await nats.connect(nats_url)
    other = JetStreamEventStore(other_nc, stream=store.stream, subject_prefix=store.subject_prefix)
    try:
        for round_ in range(40):
            batch = [make_event(f"m{round_}", v, f"seed-{round_}") for v in (1, 2)]
            results = await asyncio.gather(append_events(store, batch, 0),
                                           append_events(other, batch, 0))
            assert sorted(r.duplicate for r in results) == [False, True], round_
            assert {(r.first_seq, r.last_seq) for r in results} == {
                (results[0].first_seq, results[0].first_seq + 1)}
    finally:
        await other_nc.close()
    assert await store.last_seq() == 80
