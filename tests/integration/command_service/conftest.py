"""Fixtures of the command service tests: the real service in-process on its own stream."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client

from events import COMMAND_PREFIX, EVENT_PREFIX, utc_now
from services.bootstrap import Instance, serve
from services.command_service import AggregateRepository
from services.domain.task import backoff_s
from services.settings import Settings
from services.store import JetStreamEventStore
from tests.support.nats_server import unique_stream_name, wait_until

__all__ = [
    "ERROR_CODES",
    "STREAM_PREFIX",
    "ServiceClient",
    "assert_each_task_leased_once",
    "assert_ok_shape",
    "fresh_stream",
    "launch",
    "task_id_with_backoff",
    "wait_past",
]

STREAM_PREFIX = "CMDSVC"
"""Streams these tests create; a leftover one (from a killed run) is removed before a test."""

ERROR_CODES = frozenset({
    "invalid_json", "validation_failed", "unknown_command", "not_found", "already_exists",
    "invalid_transition", "conflict", "lease_mismatch", "budget_exceeded", "payload_too_large",
    "unavailable", "internal",
})
"""Every error code CONTRACT.md names."""

_ENVELOPE_KEYS = frozenset({"ok", "id", "version", "seq", "events"})


def assert_ok_shape(reply: dict[str, Any], *extra: str) -> None:
    """Checks a success reply has exactly the envelope keys (plus ``extra``) with their types."""
    assert reply.get("ok") is True, reply
    assert set(reply) == _ENVELOPE_KEYS | set(extra), reply
    assert type(reply["id"]) is str, reply
    assert reply["id"], reply
    assert type(reply["version"]) is int, reply
    assert type(reply["seq"]) is int, reply
    assert reply["version"] >= 0, reply
    assert reply["seq"] >= 0, reply
    assert type(reply["events"]) is list, reply
    assert all(type(e) is str for e in reply["events"]), reply


def assert_each_task_leased_once(events: list[dict[str, Any]]) -> None:
    """One TaskLeased per (task, epoch), one WorkerTaskAssigned per task, same holders."""
    leased = Counter((e["task_id"], e["lease_epoch"]) for e in events if e["type"] == "TaskLeased")
    assert all(n == 1 for n in leased.values()), leased
    holders = {e["task_id"]: e["worker_id"] for e in events if e["type"] == "TaskLeased"}
    assigned = Counter(e["task_id"] for e in events if e["type"] == "WorkerTaskAssigned")
    assert set(assigned) == set(holders)
    assert all(n == 1 for n in assigned.values()), assigned
    for event in events:
        if event["type"] == "WorkerTaskAssigned":
            assert holders[event["task_id"]] == event["worker_id"]


def _assert_error_shape(reply: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(reply) == {"ok", "error"}, reply
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert set(error) == {"code", "message", "details"}, reply
    assert error["code"] == code, reply
    assert type(error["message"]) is str, reply
    assert error["message"], reply
    assert isinstance(error["details"], dict), reply
    return dict(error)


@dataclass
class ServiceClient:
    """Sends commands to the service as any NATS client does, and reads the stream back."""

    nc: Client
    stream: str

    async def send(self, subject: str, body: object, timeout_s: float = 10.0) -> dict[str, Any]:
        """Requests ``runlog.cmd.<subject>`` with ``body`` (bytes as is, else JSON)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        msg = await self.nc.request(f"{COMMAND_PREFIX}.{subject}", data, timeout=timeout_s)
        reply = json.loads(msg.data)
        assert isinstance(reply, dict), reply
        return reply

    async def send_until_settled(self, subject: str, body: dict[str, Any], attempts: int = 5
                                 ) -> dict[str, Any]:
        """Sends a command with a command id, resending it while the reply is ``conflict``."""
        # CONTRACT.md: conflict means concurrent writers kept winning and a retry may
        # succeed; the same command id makes the retry safe.
        assert body.get("command_id"), "only a command with a command_id is safe to resend"
        for _ in range(attempts - 1):
            reply = await self.send(subject, body)
            if reply.get("ok") or reply["error"]["code"] != "conflict":
                return reply
        return await self.send(subject, body)

    async def ok(self, subject: str, body: object, *extra: str) -> dict[str, Any]:
        """Sends a command that must succeed; checks the reply's exact shape."""
        reply = await self.send(subject, body)
        assert_ok_shape(reply, *extra)
        return reply

    async def refused(self, subject: str, body: object, code: str) -> dict[str, Any]:
        """Sends a command that must fail with ``code`` and write nothing; returns the error."""
        before = await self.last_seq()
        error = _assert_error_shape(await self.send(subject, body), code)
        assert await self.last_seq() == before, f"{subject} refused with {code} but wrote"
        return error

    async def still_serving(self) -> None:
        """Checks the service still answers an ordinary command by writing."""
        reply = await self.ok("run.create", {"name": "still-serving"})
        assert reply["events"] == ["RunCreated"], reply

    async def last_seq(self) -> int:
        """The stream's last sequence."""
        info = await self.nc.jetstream().stream_info(self.stream)
        return int(info.state.last_seq)

    async def events(self, subjects: str = f"{EVENT_PREFIX}.>") -> list[dict[str, Any]]:
        """Every event on ``subjects`` so far, each with its stream sequence as ``seq``."""
        js = self.nc.jetstream()
        sub = await js.subscribe(subjects, stream=self.stream, ordered_consumer=True)
        found: list[dict[str, Any]] = []
        try:
            info = await sub.consumer_info()
            # Some may already be delivered to this client; the server counts both.
            delivered = info.delivered.consumer_seq if info.delivered else 0
            total = (delivered or 0) + (info.num_pending or 0)
            while len(found) < total:
                msg = await sub.next_msg(timeout=5)
                found.append(json.loads(msg.data) | {"seq": msg.metadata.sequence.stream})
        finally:
            await sub.unsubscribe()
        return found

    async def events_of(self, aggregate: str, aggregate_id: str) -> list[dict[str, Any]]:
        """The events of one aggregate, in order."""
        return await self.events(f"{EVENT_PREFIX}.{aggregate}.{aggregate_id}")

    async def types_of(self, aggregate: str, aggregate_id: str) -> list[str]:
        """The event types of one aggregate, in order."""
        return [e["type"] for e in await self.events_of(aggregate, aggregate_id)]

    async def state_of(self, aggregate: str, aggregate_id: str) -> Any:
        """The aggregate's state folded from the log alone (no service cache involved)."""
        store = JetStreamEventStore(self.nc, stream=self.stream)
        return (await AggregateRepository(store).load(aggregate, aggregate_id)).state

    async def running_run(self, run_id: str, **fields: object) -> None:
        """Creates and starts a run."""
        await self.ok("run.create", {"run_id": run_id, "name": run_id, **fields})
        await self.ok("run.start", {"run_id": run_id})

    async def worker(self, worker_id: str, kinds: Iterable[str] = ("llm",),
                     capacity: int = 1) -> None:
        """Registers a worker."""
        await self.ok("worker.register", {"worker_id": worker_id, "kinds": list(kinds),
                                          "capacity": capacity})

    async def submit(self, task_id: str, run_id: str = "r1", kind: str = "llm",
                     **fields: object) -> dict[str, Any]:
        """Submits a task."""
        return await self.ok("task.submit", {"task_id": task_id, "run_id": run_id,
                                             "kind": kind, **fields})

    async def claim(self, worker_id: str, **fields: object) -> dict[str, Any] | None:
        """Claims for a worker; returns the leased task, or None."""
        reply = await self.ok("task.claim", {"worker_id": worker_id, **fields}, "task")
        task: dict[str, Any] | None = reply["task"]
        return task


def task_id_with_backoff(low_s: float, high_s: float, prefix: str = "t") -> str:
    """A task id whose first retry waits between ``low_s`` and ``high_s`` (the jitter is a hash)."""
    return next(f"{prefix}{n}" for n in range(100_000)
                if low_s <= backoff_s(f"{prefix}{n}", 1) <= high_s)


async def wait_past(moment: datetime, timeout_s: float = 10.0) -> None:
    """Waits until the clock is past ``moment``, with a deadline."""
    async def now() -> datetime:
        return utc_now()

    await wait_until(now, lambda t: t > moment, timeout_s)


@contextlib.asynccontextmanager
async def launch(settings: Settings) -> AsyncIterator[Instance]:
    """Runs the whole command service (prices seeded, no projectors) on ``settings``."""
    assert settings.nats_url is not None
    async with serve(settings, settings.nats_url, projectors=False) as instance:
        yield instance


async def _delete_streams(nc: Client, names: Iterable[str]) -> None:
    js = nc.jetstream()
    for name in names:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


@contextlib.asynccontextmanager
async def fresh_stream(nc: Client, nats_url: str, data_dir: Path) -> AsyncIterator[Settings]:
    """Settings of a service on a new stream, deleted afterwards."""
    # Every instance uses the fixed subjects runlog.evt.>, so two streams cannot coexist
    # on the server: a leftover of an earlier, killed run would block this one.
    leftovers = [info.config.name for info in await nc.jetstream().streams_info()
                 if (info.config.name or "").startswith(STREAM_PREFIX)]
    await _delete_streams(nc, [n for n in leftovers if n])
    settings = Settings(nats_url=nats_url, data_dir=data_dir,
                        stream=unique_stream_name(STREAM_PREFIX))
    try:
        yield settings
    finally:
        await _delete_streams(nc, [settings.stream])


@pytest.fixture
async def service_settings(nc: Client, nats_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings of a service on a fresh stream of this test."""
    async with fresh_stream(nc, nats_url, tmp_path / "runlog") as settings:
        yield settings


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[Instance]:
    """The command service running in this event loop until the test ends."""
    async with launch(service_settings) as instance:
        yield instance


@pytest.fixture
async def client(nc: Client, service: Instance) -> ServiceClient:
    """A client of the running service."""
    return ServiceClient(nc, service.settings.stream)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client(nats_url: str, tmp_path_factory: pytest.TempPathFactory
                        ) -> AsyncIterator[ServiceClient]:
    """One service shared by a module whose tests run in its loop (``loop_scope="module"``)."""
    nc = await nats.connect(nats_url)
    try:
        async with fresh_stream(nc, nats_url, tmp_path_factory.mktemp("runlog")) as settings, \
                launch(settings):
            yield ServiceClient(nc, settings.stream)
    finally:
        await nc.close()
