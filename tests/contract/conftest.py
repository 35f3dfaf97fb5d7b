"""The event store contract runs against every adapter: in memory, and JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest

from services.store import EventStore, InMemoryEventStore, JetStreamEventStore
from tests.support.nats_server import unique_prefix, unique_stream_name


@pytest.fixture(params=["memory", pytest.param("jetstream", marks=pytest.mark.nats)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    """An empty event store of each kind."""
    if request.param == "memory":
        yield InMemoryEventStore(subject_prefix=unique_prefix())
        return
    nc = await nats.connect(request.getfixturevalue("nats_url"))
    jetstream = JetStreamEventStore(nc, stream=unique_stream_name(), subject_prefix=unique_prefix())
    await jetstream.ensure_stream()
    try:
        yield jetstream
    finally:
        await jetstream.js.delete_stream(jetstream.stream)
        await nc.close()
