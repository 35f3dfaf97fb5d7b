"""A client of the command service for tests, over NATS or straight into an in-memory service.

``ServiceClient`` holds everything a test says to the service and reads back from the
log; ``NatsServiceClient`` sends real NATS requests to a running service and reads its
JetStream stream, ``InProcessClient`` calls ``CommandService.execute`` on an
``InMemoryEventStore`` (service-layer tests in milliseconds).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from nats.aio.client import Client

from events import COMMAND_PREFIX, EVENT_PREFIX, utc_now
from events.codec import CODEC, EventCodec
from services.bootstrap import Instance, command_service, seed_prices, serve
from services.command_service import CommandService
from services.command_service.replies import encode
from services.command_service.repositories import Repository
from services.domain import MACHINES
from services.domain.task import backoff_s
from services.settings import Settings
from services.store import EventStore, InMemoryEventStore, JetStreamEventStore
from tests.support.nats_server import unique_stream_name, wait_until

__all__ = [
    "ERROR_CODES",
    "STREAM_PREFIX",
    "InProcessClient",
    "NatsServiceClient",
    "ServiceClient",
    "assert_each_task_leased_once",
    "assert_ok_shape",
    "fresh_stream",
    "launch",
    "memory_service",
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
    """One TaskLeased per (task, epoch), and no task held by two workers at once."""
    leased = Counter((e["task_id"], e["lease_epoch"]) for e in events if e["type"] == "TaskLeased")
    assert all(n == 1 for n in leased.values()), leased
    holder: dict[str, str] = {}
    for event in events:
        if event.get("aggregate") != "task":
            continue
        task_id = event["task_id"]
        if event["type"] == "TaskLeased":
            assert task_id not in holder, f"{task_id} leased to {event['worker_id']} while " \
                                          f"{holder.get(task_id)} held it"
            holder[task_id] = event["worker_id"]
        elif event.get("to_state") not in ("leased", "running"):
            holder.pop(task_id, None)


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


class ServiceClient(abc.ABC):
    """Sends commands to the service as any client does, and reads the log back."""

    store: EventStore

    @abc.abstractmethod
    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> bytes:
        """Sends one request to ``runlog.cmd.<subject>``; returns the reply's body."""

    async def send(self, subject: str, body: object, timeout_s: float = 10.0,
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Requests ``runlog.cmd.<subject>`` with ``body`` (bytes as is, else JSON)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = json.loads(await self.request(subject, data, timeout_s, headers))
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
        """The log's last sequence."""
        return await self.store.last_seq()

    async def events(self, subjects: str = f"{EVENT_PREFIX}.>") -> list[dict[str, Any]]:
        """Every event on ``subjects`` so far, each with its stream sequence as ``seq``."""
        found: list[dict[str, Any]] = []
        async for batch in self.store.read_all(subjects=subjects):
            found.extend(json.loads(e.payload) | {"seq": e.seq} for e in batch)
        return found

    async def events_of(self, aggregate: str, aggregate_id: str) -> list[dict[str, Any]]:
        """The events of one aggregate, in order."""
        return await self.events(f"{EVENT_PREFIX}.{aggregate}.{aggregate_id}")

    async def types_of(self, aggregate: str, aggregate_id: str) -> list[str]:
        """The event types of one aggregate, in order."""
        return [e["type"] for e in await self.events_of(aggregate, aggregate_id)]

    async def state_of(self, aggregate: str, aggregate_id: str) -> Any:
        """The aggregate's state folded from the log alone (no service cache involved)."""
        repository: Repository[Any] = Repository(MACHINES[aggregate], self.store, CODEC)
        return (await repository.get(aggregate_id)).state

    async def budget_spent(self, budget_id: str) -> tuple[int, Decimal]:
        """Tokens and cost charged to a shared budget, summed from the usage on the log."""
        usage = [e for e in await self.events(f"{EVENT_PREFIX}.run.*")
                 if e["type"] == "UsageRecorded" and e.get("budget_id") == budget_id]
        return (sum(e["tokens_in"] + e["tokens_out"] for e in usage),
                sum((Decimal(e["cost_usd"]) for e in usage), Decimal(0)))

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


class NatsServiceClient(ServiceClient):
    """A client over NATS request/reply, reading the service's JetStream stream."""

    def __init__(self, nc: Client, stream: str) -> None:
        self.nc = nc
        self.stream = stream
        self.store = JetStreamEventStore(nc, stream=stream)

    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> bytes:
        """A NATS request to ``runlog.cmd.<subject>``."""
        msg = await self.nc.request(f"{COMMAND_PREFIX}.{subject}", data, timeout=timeout_s,
                                    headers=headers)
        return bytes(msg.data)


class InProcessClient(ServiceClient):
    """A client calling a command service in this process directly (no NATS request)."""

    def __init__(self, store: EventStore, service: CommandService) -> None:
        self.store = store
        self.service = service

    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> bytes:
        """The service's reply to ``runlog.cmd.<subject>``, encoded as NATS would carry it."""
        reply = await asyncio.wait_for(self.service.execute(subject, data, headers), timeout_s)
        return encode(reply)

    def held_by(self, worker_id: str) -> frozenset[str]:
        """The tasks a worker holds now (its live leases), as this service's board says."""
        return self.service.repos.tasks.board.held_by(worker_id)

    async def caught_up(self) -> None:
        """Waits until this service's log follower has read everything on the log."""
        await self.service.follower.reached(await self.last_seq(), timeout_s=5)


@contextlib.asynccontextmanager
async def memory_service(store: EventStore | None = None, settings: Settings | None = None,
                         codec: EventCodec = CODEC) -> AsyncIterator[InProcessClient]:
    """A command service (policies on, prices seeded) on ``store``, an in-memory log by default."""
    log = store if store is not None else InMemoryEventStore()
    async with command_service(log, settings or Settings(data_dir=Path(".runlog-unused")),
                               codec) as service:
        await seed_prices(service)
        yield InProcessClient(log, service)


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
