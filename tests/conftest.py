"""Session-wide fixtures: one embedded nats-server for the whole test session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from services.embedded_nats import EmbeddedNats
from services.store import JetStreamEventStore
from tests.support.nats_server import unique_prefix, unique_stream_name


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts one real nats-server (JetStream on) for the session."""
    with EmbeddedNats(Path(tmp_path_factory.mktemp("nats"))) as server:
        yield server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A client connection, closed after the test."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def store(nc: Client) -> AsyncIterator[JetStreamEventStore]:
    """An event store on a fresh stream with its own subject prefix."""
    event_store = JetStreamEventStore(nc, stream=unique_stream_name(),
                                      subject_prefix=unique_prefix())
    await event_store.ensure_stream()
    yield event_store
    await event_store.js.delete_stream(event_store.stream)
