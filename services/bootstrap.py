"""The composition root: settings in, a running command service (and its NATS) out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
from faststream.nats import NatsBroker
from nats.aio.client import Client

from events.codec import CODEC, EventCodec

from .command_service import CommandService, ServiceLimits, register_command_handlers
from .command_service.app import CommandDispatcher
from .command_service.telemetry import Executor, MeasuredStore, SpanSteps, TracedCommands
from .embedded_nats import EmbeddedNats
from .errors import StoreUnavailable
from .policies import (
    LeaseExpiryPolicy,
    Policy,
    RunEndPolicy,
    WorkerDrainPolicy,
    WorkerLivenessPolicy,
)
from .pricing import load_price_file, seed_commands
from .read_side import LiveReadSide, start_read_side
from .settings import Settings
from .store import EventStore, JetStreamEventStore

__all__ = [
    "Instance",
    "build_broker",
    "build_policies",
    "command_service",
    "connect_nats",
    "connect_store",
    "nats_server",
    "running_instance",
    "seed_prices",
    "serve",
]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def nats_server(settings: Settings) -> Iterator[str]:
    """Yields the NATS URL: ``RUNLOG_NATS_URL`` or a freshly started embedded server."""
    if settings.nats_url:
        yield settings.nats_url
        return
    with EmbeddedNats(settings.data_dir, settings.nats_server_bin) as server:
        yield server.url


async def _log_nats_error(error: Exception) -> None:
    # nats-py's default prints a traceback for every failed (re)connect attempt.
    log.warning("NATS: %s", error or type(error).__name__)


async def connect_nats(url: str, name: str = "runlog", timeout_s: float = 15.0) -> Client:
    """Connects with a deadline: nats-py alone keeps retrying a first connect for minutes."""
    try:
        return await asyncio.wait_for(
            nats.connect(url, name=name, connect_timeout=min(5.0, timeout_s),
                         max_reconnect_attempts=-1, error_cb=_log_nats_error), timeout_s)
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise StoreUnavailable(f"cannot reach NATS at {url} ({type(error).__name__})") from None


async def connect_store(url: str, settings: Settings, name: str = "runlog") -> tuple[
        Client, JetStreamEventStore]:
    """Connects to NATS and returns the client and an event store on the configured stream."""
    nc = await connect_nats(url, name)
    store = JetStreamEventStore(nc, stream=settings.stream, replicas=settings.replicas,
                                duplicate_window_s=settings.duplicate_window_s)
    await store.ensure_stream()
    return nc, store


def build_broker(url: str, settings: Settings, executor: Executor | None = None
                 ) -> tuple[NatsBroker, CommandDispatcher]:
    """A broker with every command handler registered (connects only when started)."""
    broker = NatsBroker(url, logger=None)

    def current_executor() -> Executor:
        if executor is None:
            raise RuntimeError("this broker documents the service; it cannot execute")
        return executor

    dispatcher = register_command_handlers(broker, current_executor, settings.command_queue)
    return broker, dispatcher


@dataclass
class Instance:
    """A running runlog: its NATS URL, store and command service."""

    url: str
    settings: Settings
    store: JetStreamEventStore
    service: CommandService
    broker: NatsBroker
    dispatcher: CommandDispatcher
    read_side: LiveReadSide | None = None
    """The projectors and SQL of this process, when it runs them."""
    http_url: str | None = None
    """Where its probes, metrics and dashboard are served, when they are."""


def _write_instance_file(settings: Settings, url: str, http_url: str | None) -> Path:
    # Lets `runlog sql` and `runlog send` in another shell find this instance's NATS.
    path = settings.data_dir / "instance.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "nats_url": url, "http_url": http_url}))
    return path


def service_limits(settings: Settings) -> ServiceLimits:
    """The command service's tunables from the settings."""
    return ServiceLimits(max_command_bytes=settings.max_command_bytes,
                         occ_retries=settings.occ_retries, lease_ttl_s=settings.lease_ttl_s)


def build_policies(service: CommandService, settings: Settings) -> list[Policy]:
    """Every policy, each observing the service's log follower and sending through it."""
    board = service.repos.tasks.board
    policies: list[Policy] = [
        LeaseExpiryPolicy(service, board),
        RunEndPolicy(service, board),
        WorkerLivenessPolicy(service, timeout_s=settings.worker_timeout_s),
        WorkerDrainPolicy(service, board),
    ]
    for policy in policies:
        service.observe_log(policy)
    return policies


@contextlib.asynccontextmanager
async def command_service(store: EventStore, settings: Settings, codec: EventCodec = CODEC
                          ) -> AsyncIterator[CommandService]:
    """The command service and its policies on ``store``, caught up with the log."""
    service = CommandService(MeasuredStore(store), codec, limits=service_limits(settings),
                             hooks=SpanSteps())
    policies = build_policies(service, settings)
    running: list[asyncio.Task[None]] = []
    try:
        await service.start()
        running = [asyncio.create_task(p.run(), name=p.name) for p in policies]
        yield service
    finally:
        await _stop_quietly(*map(_cancel, running), service.stop())


@contextlib.asynccontextmanager
async def running_instance(settings: Settings, url: str) -> AsyncIterator[Instance]:
    """Runs the command service against ``url`` until the block exits."""
    nc, store = await connect_store(url, settings)
    try:
        async with command_service(store, settings) as service:
            broker, dispatcher = build_broker(url, settings, TracedCommands(service))
            try:
                await broker.start()
                yield Instance(url, settings, store, service, broker, dispatcher)
            finally:
                await _stop_quietly(broker.stop(), dispatcher.drain())
    finally:
        await _stop_quietly(nc.close())


@contextlib.asynccontextmanager
async def _serving_http(instance: Instance) -> AsyncIterator[str | None]:
    """The HTTP endpoint's URL while it serves (None when ``RUNLOG_HTTP_ADDR`` is off)."""
    from .web import serving_http

    async with serving_http(instance.store.nc, instance.settings) as endpoint:
        yield endpoint.url if endpoint is not None else None


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_quietly(*steps: Awaitable[object]) -> None:
    """Runs every shutdown step even when an earlier one fails (NATS may be gone)."""
    for step in steps:
        try:
            await step
        except Exception as error:
            log.warning("shutdown step failed: %s", error)


async def seed_prices(executor: Executor) -> int:
    """Registers the shipped price list; idempotent, so it runs at every start."""
    registered = 0
    for body in seed_commands(load_price_file()):
        reply = await executor.execute("model.register", json.dumps(body).encode())
        if not reply.get("ok"):
            log.warning("seeding %s refused: %s", body["model"], reply.get("error"))
        registered += bool(reply.get("ok") and reply.get("events"))
    return registered


@contextlib.asynccontextmanager
async def serve(settings: Settings, url: str, projectors: bool = True, http: bool = False
                ) -> AsyncIterator[Instance]:
    """The whole runlog: command service, seeded prices, the projectors and the HTTP endpoint.

    ``http`` serves ``RUNLOG_HTTP_ADDR`` (``runlog up`` asks for it; embedded uses do not).
    """
    async with running_instance(settings, url) as instance:
        await seed_prices(instance.service)
        async with contextlib.AsyncExitStack() as stack:
            if http:  # first: a taken port then fails before the read side opens its file
                instance.http_url = await stack.enter_async_context(_serving_http(instance))
            if projectors:
                instance.read_side = await stack.enter_async_context(
                    start_read_side(instance.store, settings))
            # Written last: its presence tells `runlog send` / `runlog sql` we serve.
            instance_file = _write_instance_file(settings, url, instance.http_url)
            try:
                yield instance
            finally:
                instance_file.unlink(missing_ok=True)
