"""A client buffer far below the server's flow-control window: nats-py drops messages, and
once the last ones are dropped its ordered consumer receives nothing more. A catch-up
must not wait for them forever (it did, silently, before the stall check)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from events import event_subject
from projections import ReadModelDb
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore
from tests.support.log import make_event

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EVENTS = 8_000


async def test_a_catch_up_with_a_tiny_buffer_gets_every_event(
        store: JetStreamEventStore, db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for n in range(EVENTS):
        event = make_event(f"r{n}", 1, f"c{n}", "RunCreated", name="x" * 100)
        await store.js.publish_async(event_subject("run", f"r{n}", store.subject_prefix),
                                     event.to_json())
    await store.js.publish_async_completed()
    db = ReadModelDb.open_writer(db_path)
    config = ProjectorConfig(max_pending=500, stall_s=1.0, batch_size=500,
                             max_batch_size=500)
    try:
        with caplog.at_level(logging.WARNING, logger="projections.runtime"):
            position = await asyncio.wait_for(Projector(store, db, config).catch_up(), 90)
        assert position == EVENTS
        assert db.con.execute("SELECT count(*) FROM runs").fetchone() == (EVENTS,)
    finally:
        db.close()
    # The buffer did overflow: the projector had to read again (after a gap or a stall).
    assert "reading again from there" in caplog.text
