"""The event store port's contract, written once and run against every adapter.

What the command service relies on: optimistic concurrency per subject and per
subject filter, all-or-nothing batches, retried appends answered with their first
positions, reads by subject and wildcard, and feeds in global order.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from events import event_subject
from services.errors import ConcurrencyConflict
from services.store import EventStore, RecordedEvent
from tests.support.log import append_events, make_event


def _subject(store: EventStore, aggregate_id: str) -> str:
    return event_subject("run", aggregate_id, store.subject_prefix)


async def _read(store: EventStore, aggregate_id: str, from_seq: int = 1) -> list[RecordedEvent]:
    return await store.read_subject(_subject(store, aggregate_id), from_seq)


async def test_append_then_read_returns_events_in_order(store: EventStore) -> None:
    first = await append_events(store, [make_event("r1", 1, "c1", "RunCreated", name="a")], 0)
    second = await append_events(store, [make_event("r1", 2, "c2")], first.last_seq)
    events = await _read(store, "r1")
    assert [e.seq for e in events] == [first.last_seq, second.last_seq]
    assert [e.envelope().type for e in events] == ["RunCreated", "RunStarted"]
    assert events[0].envelope().data == {"name": "a"}
    assert events[0].msg_id == "c1:0"


async def test_read_from_sequence_skips_earlier_events(store: EventStore) -> None:
    seqs = []
    last = 0
    for version in range(1, 6):
        last = (await append_events(store, [make_event("r1", version, f"c{version}")], last)
                ).last_seq
        seqs.append(last)
    events = await _read(store, "r1", from_seq=seqs[2])
    assert [e.seq for e in events] == seqs[2:]


async def test_read_pages_past_one_direct_get_batch(store: EventStore) -> None:
    last = 0
    for version in range(1, 601):
        last = (await append_events(store, [make_event("big", version, f"c{version}")], last)
                ).last_seq
    events = await _read(store, "big")
    assert [e.envelope().version for e in events] == list(range(1, 601))


async def test_stale_expected_sequence_is_a_conflict(store: EventStore) -> None:
    await append_events(store, [make_event("r1", 1, "c1")], 0)
    with pytest.raises(ConcurrencyConflict) as conflict:
        await append_events(store, [make_event("r1", 1, "c-other")], 0)
    assert conflict.value.actual_last_seq == 1
    assert len(await _read(store, "r1")) == 1


async def test_retried_single_append_answers_original_position(store: EventStore) -> None:
    original = await append_events(store, [make_event("r1", 1, "c1")], 0)
    retried = await append_events(store, [make_event("r1", 1, "c1")], 0)
    assert retried.duplicate
    assert (retried.first_seq, retried.last_seq) == (original.first_seq, original.last_seq)
    assert len(await _read(store, "r1")) == 1


async def test_retried_batch_answers_original_positions(store: EventStore) -> None:
    batch = [make_event("r1", v, "c1") for v in (1, 2, 3)]
    original = await append_events(store, batch, 0)
    retried = await append_events(store, batch, 0)
    assert retried.duplicate
    assert (retried.first_seq, retried.last_seq) == (original.first_seq, original.last_seq)
    assert original.last_seq - original.first_seq == 2
    assert len(await _read(store, "r1")) == 3


async def test_atomic_batch_is_all_or_nothing(store: EventStore) -> None:
    await append_events(store, [make_event("r1", 1, "c1")], 0)
    with pytest.raises(ConcurrencyConflict):
        await append_events(store, [make_event("r1", 2, "c2"), make_event("r1", 3, "c2")], 0)
    assert [e.envelope().version for e in await _read(store, "r1")] == [1]
    assert await store.last_seq() == 1


async def test_twenty_concurrent_writers_exactly_one_wins_each_version(
        store: EventStore) -> None:
    async def writer(worker: int) -> int:
        wins = 0
        for _ in range(10):
            stored = await _read(store, "hot")
            expected = stored[-1].seq if stored else 0
            try:
                command_id = f"w{worker}-{uuid.uuid4().hex}"
                await append_events(store, [make_event("hot", len(stored) + 1, command_id)],
                                    expected)
                wins += 1
            except ConcurrencyConflict:
                pass
        return wins

    wins = await asyncio.gather(*(writer(n) for n in range(20)))
    versions = [e.envelope().version for e in await _read(store, "hot")]
    assert versions == list(range(1, sum(wins) + 1))


async def test_a_filter_guard_sees_every_subject_it_matches(store: EventStore) -> None:
    """One message guarded by a wildcard: refused once anything under it moved."""
    everything = f"{store.subject_prefix}.run.*"
    first = await append_events(store, [make_event("a", 1, "ca")], 0, subject_filter=everything)
    with pytest.raises(ConcurrencyConflict) as conflict:
        await append_events(store, [make_event("b", 1, "cb")], 0, subject_filter=everything)
    assert conflict.value.actual_last_seq == first.last_seq
    second = await append_events(store, [make_event("b", 1, "cb")], first.last_seq,
                                 subject_filter=everything)
    assert second.last_seq == first.last_seq + 1


async def test_a_filter_guard_ignores_subjects_outside_it(store: EventStore) -> None:
    """Another aggregate type's events do not move a partition's last sequence."""
    tasks = f"{store.subject_prefix}.task.*"
    await append_events(store, [make_event("r1", 1, "c1")], 0)
    landed = await append_events(store, [make_event("r2", 1, "c2")], 0, subject_filter=tasks)
    assert landed.last_seq == 2
    assert (await store.last_on_subject(f"{store.subject_prefix}.run.*")) is not None
    assert await store.last_on_subject(tasks) is None


async def test_reads_by_wildcard_in_global_order(store: EventStore) -> None:
    for n in range(5):
        await append_events(store, [make_event(f"r{n}", 1, f"c{n}")], 0)
    wildcard = f"{store.subject_prefix}.run.*"
    assert [e.seq for e in await store.read_subject(wildcard)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in await store.read_subject(wildcard, 4)] == [4, 5]
    first, last = await store.first_on_subject(wildcard), await store.last_on_subject(wildcard)
    assert (first.seq if first else 0, last.seq if last else 0) == (1, 5)


async def test_stale_cache_is_caught_by_occ(store: EventStore) -> None:
    cached_last = (await append_events(store, [make_event("r1", 1, "c1")], 0)).last_seq
    await append_events(store, [make_event("r1", 2, "c2")], cached_last)
    with pytest.raises(ConcurrencyConflict):
        await append_events(store, [make_event("r1", 2, "c3")], cached_last)


async def test_read_all_and_subscribe_see_global_order(store: EventStore) -> None:
    for n in range(30):
        await append_events(store, [make_event(f"r{n}", 1, f"c{n}")], 0)
    seen: list[RecordedEvent] = []
    async for batch in store.read_all(from_seq=11, until_seq=25):
        seen.extend(batch)
    assert [e.seq for e in seen] == list(range(11, 26))
    feed = await store.subscribe(from_seq=29)
    await append_events(store, [make_event("late", 1, "c-late")], 0)
    live = await feed.next_batch(max_size=10, linger_s=0.5)
    live += [] if len(live) >= 3 else await feed.next_batch(max_size=10, linger_s=0.5)
    await feed.close()
    assert [e.seq for e in live] == [29, 30, 31]
    assert live[-1].subject == _subject(store, "late")


async def test_headers_are_kept_with_the_message(store: EventStore) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await append_events(store, [make_event("r1", 1, "c1")], 0, {"traceparent": traceparent})
    (stored,) = await _read(store, "r1")
    assert stored.headers.get("traceparent") == traceparent
    assert stored.msg_id == "c1:0"


async def test_missing_aggregate_reads_empty(store: EventStore) -> None:
    assert await _read(store, "nobody") == []
    assert await store.last_on_subject(_subject(store, "nobody")) is None
    assert await store.last_seq() == 0
