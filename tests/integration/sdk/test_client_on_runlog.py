"""The client against a real runlog: a lost reply's retry writes once; reads see own writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from services.sdk import Client, NatsTransport, QueryError, RequestTimeout
from services.settings import Settings
from tests.integration.sdk.conftest import QUICK_RETRIES, rows

pytestmark = pytest.mark.nats


class FirstReplyLost:
    """A transport whose first reply to each chosen subject is lost on the way back."""

    def __init__(self, nc: NatsClient, subjects: set[str]) -> None:
        self.inner = NatsTransport(nc)
        self.unlucky = {f"runlog.cmd.{s}" for s in subjects}
        self.sent: dict[str, list[bytes]] = {}
        self.lost: dict[str, dict[str, Any]] = {}

    async def request(self, subject: str, payload: bytes, timeout_s: float,
                      headers: Mapping[str, str] | None = None) -> bytes:
        """Sends for real; the first reply of an unlucky subject is dropped as a timeout."""
        self.sent.setdefault(subject, []).append(payload)
        reply = await self.inner.request(subject, payload, timeout_s, headers)
        if subject in self.unlucky:
            self.unlucky.discard(subject)
            self.lost[subject] = json.loads(reply)
            raise RequestTimeout(f"{subject}: reply lost (test)")
        return reply


async def test_a_command_whose_reply_was_lost_is_written_once(nc: NatsClient,
                                                              runlog: Settings) -> None:
    lossy = FirstReplyLost(nc, {"run.create", "run.start", "task.submit", "task.claim"})
    client = Client(lossy, retry=QUICK_RETRIES)
    run = await client.create_run(name="lost-replies")  # the id is derived from the command id
    started = await client.start_run(run_id=run.id)
    submitted = await client.submit_task(run_id=run.id, kind="lossy")
    await client.register_worker(worker_id="sdk-lossy", kinds=["lossy"])
    claimed = await client.claim_task(worker_id="sdk-lossy")

    for subject, reply in (("run.create", run), ("run.start", started),
                           ("task.submit", submitted), ("task.claim", claimed)):
        first, again = lossy.sent[f"runlog.cmd.{subject}"]
        assert first == again, subject  # the same body, so the same command_id
        lost = lossy.lost[f"runlog.cmd.{subject}"]
        assert (lost["id"], lost["seq"], lost["events"]) == (
            reply.id, reply.seq, list(reply.events)), subject
    assert claimed.task is not None
    assert lossy.lost["runlog.cmd.task.claim"]["task"]["lease_epoch"] == claimed.task.lease_epoch

    written = await client.query(
        "SELECT event_type, count(*) FROM transitions WHERE aggregate_id IN "
        f"('{run.id}', '{submitted.id}') GROUP BY event_type ORDER BY event_type",
        after=client.last_seq)
    assert rows(written) == [("RunCreated", 1), ("RunStarted", 1), ("TaskLeased", 1),
                             ("TaskSubmitted", 1)]


async def test_a_query_after_a_write_sees_it(client: Client) -> None:
    created = await client.create_run(name="read-your-writes", labels={"team": "sdk"})
    result = await client.query(f"SELECT name, state FROM runs WHERE run_id = '{created.id}'",
                                after=created)
    assert result.dicts() == [{"name": "read-your-writes", "state": "pending"}]
    assert result.position is not None
    assert result.position >= created.seq


async def test_a_write_the_read_models_never_reach_is_a_wait_timeout(client: Client) -> None:
    created = await client.create_run(name="far-future")
    with pytest.raises(QueryError) as raised:
        await client.query("SELECT 1", after=created.seq + 1_000_000, wait_timeout_s=0.2)
    assert raised.value.code == "wait_timeout"
