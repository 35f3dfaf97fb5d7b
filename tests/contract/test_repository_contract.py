"""Typed repositories on every store: loads, caching, reloads, and the follower's folding."""

from __future__ import annotations

import asyncio

from events import event_subject
from events.codec import CODEC
from services.command_service.repositories import Repository
from services.domain.registry import RUN
from services.domain.run import RunState
from services.store import EventStore
from tests.support.log import append_events, make_event


async def _created(store: EventStore) -> int:
    created = await append_events(store, [make_event("r1", 1, "c1", "RunCreated", run_id="r1",
                                                     name="n")], 0)
    return created.last_seq


async def test_concurrent_reloads_fold_each_event_once(store: EventStore) -> None:
    last = await _created(store)
    repository: Repository[RunState] = Repository(RUN, store, CODEC)
    cached = await repository.get("r1")
    await append_events(store, [make_event("r1", 2, "c2", run_id="r1")], last)
    reloaded = await asyncio.gather(*(repository.reload("r1") for _ in range(8)))
    assert {(r.version, r.state.state if r.state else None) for r in reloaded} == {
        (2, "running")}
    assert cached.state is not None
    assert cached.state.state == "pending"  # what in-flight commands hold is never changed
    assert list((await repository.get("r1")).commands["c2"].event_types) == ["RunStarted"]


async def test_get_serves_the_cache_and_reload_sees_other_writers(store: EventStore) -> None:
    last = await _created(store)
    repository: Repository[RunState] = Repository(RUN, store, CODEC)
    first = await repository.get("r1")
    await append_events(store, [make_event("r1", 2, "c2", run_id="r1")], last)
    assert (await repository.get("r1")) is first
    reloaded = await repository.reload("r1")
    assert reloaded.state is not None
    assert reloaded.state.state == "running"
    assert (await repository.get("r1")).last_seq == 2
    assert set((await repository.get("r1")).commands) == {"c1", "c2"}


async def test_the_follower_folds_what_it_passes_into_the_cache(store: EventStore) -> None:
    last = await _created(store)
    repository: Repository[RunState] = Repository(RUN, store, CODEC)
    await repository.get("r1")
    await append_events(store, [make_event("r1", 2, "c2", run_id="r1")], last)
    for recorded in await store.read_subject(event_subject("run", "r1", store.subject_prefix)):
        repository.observe(repository.decode(recorded))
    cached = repository.cached("r1")
    assert cached is not None
    assert (cached.version, cached.last_seq) == (2, 2)
