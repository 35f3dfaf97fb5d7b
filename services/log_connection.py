"""The NATS a process of runlog works against, and an event store on it: nothing more.

Kept apart from the composition root (``services.bootstrap``) so that a process that
only reads the log, such as ``runlog replay``, does not load the command service,
FastStream and the policies with it (12 MB of its peak memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from nats.aio.client import Client

from .embedded_nats import EmbeddedNats
from .nats_connection import connect_nats
from .settings import Settings
from .store import JetStreamEventStore

__all__ = ["connect_store", "nats_server", "nats_server_process"]


@contextlib.contextmanager
def nats_server(settings: Settings) -> Iterator[str]:
    """Yields the NATS URL: ``RUNLOG_NATS_URL`` or a freshly started embedded server."""
    with nats_server_process(settings) as (url, _):
        yield url


@contextlib.contextmanager
def nats_server_process(settings: Settings) -> Iterator[tuple[str, EmbeddedNats | None]]:
    """``nats_server``, with the embedded server itself (None for ``RUNLOG_NATS_URL``), for
    a process that must notice when it dies."""
    if settings.nats_url:
        yield settings.nats_url, None
        return
    with EmbeddedNats(settings.data_dir, settings.nats_server_bin,
                      sync=settings.nats_sync) as server:
        yield server.url, server


async def connect_store(url: str, settings: Settings, name: str = "runlog") -> tuple[
        Client, JetStreamEventStore]:
    """Connects to NATS and returns the client and an event store on the configured stream."""
    nc = await connect_nats(url, name, settings=settings)
    store = JetStreamEventStore(nc, stream=settings.stream, replicas=settings.replicas,
                                duplicate_window_s=settings.duplicate_window_s)
    await store.ensure_stream()
    return nc, store
