"""The composition root: settings in, a running command service (and its NATS) out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from faststream.nats import NatsBroker
from nats.aio.client import Client

from events.codec import CODEC, EventCodec
from events.errors import RETRYABLE_CODES
from services.domain.charges import BudgetDefaults

from .command_service import (
    CommandIntake,
    CommandService,
    ServiceLimits,
    document_command_handlers,
)
from .command_service.telemetry import (
    Executor,
    MeasuredStore,
    Reply,
    SpanSteps,
    TracedCommands,
)
from .domain.recovery import DEFAULT_RECOVERY
from .instance_file import remove_instance_file, write_instance_file
from .log_connection import connect_store, nats_server
from .nats_broker import broker_options
from .nats_connection import connect_nats, server_list
from .nats_headers import use_fast_headers
from .policies import (
    BreakerFeedPolicy,
    BudgetAlertPolicy,
    LeaseExpiryPolicy,
    Policy,
    ProgressPolicy,
    ReservationReaperPolicy,
    RunEndPolicy,
    TaskTimeoutPolicy,
    WorkerDrainPolicy,
    WorkerLivenessPolicy,
)
from .pricing import load_price_file, seed_commands
from .read_side import ReadSideHandle, ReadSideProcess, start_read_side
from .settings import Settings
from .shutdown import Phase, ShutdownPlan, cancel_within
from .store import EventStore, JetStreamEventStore
from .supervision import keep_running

__all__ = [
    "Instance",
    "build_broker",
    "build_policies",
    "command_service",
    "connect_nats",
    "connect_store",
    "documentation_broker",
    "nats_server",
    "running_instance",
    "seed_prices",
    "serve",
]

log = logging.getLogger(__name__)

SEED_ATTEMPTS = 5


def build_broker(url: str, settings: Settings) -> NatsBroker:
    """The broker whose connection the service runs on (connects only when started)."""
    return NatsBroker(server_list(url), logger=None, max_reconnect_attempts=-1,
                      reconnect_time_wait=1, **broker_options(settings))


def documentation_broker(url: str, settings: Settings) -> NatsBroker:
    """A broker carrying one subscriber per command, for the AsyncAPI document only."""
    broker = build_broker(url, settings)
    document_command_handlers(broker, settings.command_queue)
    return broker


@dataclass
class Instance:
    """A running runlog: its NATS URL, store and command service."""

    url: str
    settings: Settings
    store: JetStreamEventStore
    service: CommandService
    broker: NatsBroker
    intake: CommandIntake
    read_side: ReadSideHandle | None = None
    """The projectors and SQL (in a child process or this one), when this runlog runs them."""
    http_url: str | None = None
    """Where its probes, metrics and dashboard are served, when they are."""


def service_limits(settings: Settings) -> ServiceLimits:
    """The command service's tunables from the settings."""
    return ServiceLimits(max_command_bytes=settings.max_command_bytes,
                         occ_retries=settings.occ_retries, lease_ttl_s=settings.lease_ttl_s,
                         max_running=settings.max_running,
                         recovery=DEFAULT_RECOVERY.overridden(settings.recovery),
                         budget_defaults=BudgetDefaults(settings.budget_run_tokens,
                                                        settings.budget_session_tokens,
                                                        settings.budget_day_tokens))


def build_policies(service: CommandService, settings: Settings) -> list[Policy]:
    """Every policy, each observing the service's log follower and sending through it."""
    board = service.repos.tasks.board
    policies: list[Policy] = [
        LeaseExpiryPolicy(service, board),
        RunEndPolicy(service, board),
        WorkerLivenessPolicy(service, timeout_s=settings.worker_timeout_s),
        WorkerDrainPolicy(service, board),
        TaskTimeoutPolicy(service, board),
        ProgressPolicy(service, board),
        BreakerFeedPolicy(service),
        ReservationReaperPolicy(service, service.repos.ledgers),
        BudgetAlertPolicy(service, service.repos.ledgers),
    ]
    for policy in policies:
        service.observe_log(policy)
    return policies


@contextlib.asynccontextmanager
async def _stopping(plan: ShutdownPlan | None) -> AsyncIterator[ShutdownPlan]:
    """The caller's shutdown plan, or a new one run when the block exits."""
    if plan is not None:
        yield plan
        return
    plan = ShutdownPlan()
    try:
        yield plan
    finally:
        await plan.run()


@contextlib.asynccontextmanager
async def command_service(store: EventStore, settings: Settings, codec: EventCodec = CODEC,
                          plan: ShutdownPlan | None = None) -> AsyncIterator[CommandService]:
    """The command service and its policies on ``store``, caught up with the log."""
    async with _stopping(plan) as plan:
        service = CommandService(MeasuredStore(store), codec, limits=service_limits(settings),
                                 hooks=SpanSteps())
        policies = build_policies(service, settings)
        running: list[asyncio.Task[None]] = []
        # Registered before the policies: within a phase the last registered stops first.
        plan.add(Phase.WORKERS, "command service", service.stop, 3.0)
        plan.add(Phase.WORKERS, "policies", partial(cancel_within, running, 2.0), 3.0)
        await service.start()
        running.extend(_supervised(policy.name, policy.run) for policy in policies)
        yield service


def _supervised(name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    # A policy that meets an error it does not handle (a leader election) starts again.
    return asyncio.create_task(keep_running(f"policy {name}", run), name=f"policy {name}")


@contextlib.asynccontextmanager
async def running_instance(settings: Settings, url: str, plan: ShutdownPlan | None = None
                           ) -> AsyncIterator[Instance]:
    """Runs the command service against ``url`` until the block exits, then stops it in order.

    The order (README, "Stopping"): no new commands, the ones in flight answered, the
    workers stopped, the connections closed; every step under a deadline.
    """
    async with _stopping(plan) as plan:
        broker = build_broker(url, settings)
        await broker.start()
        # One connection for the intake, the appends and the replies: each flush of it
        # carries many commands' appends and replies at once.
        nc = use_fast_headers(broker.connection)
        plan.add(Phase.CONNECTIONS, "connection", partial(close_connection, nc), 2.0)
        store = JetStreamEventStore(nc, stream=settings.stream, replicas=settings.replicas,
                                    duplicate_window_s=settings.duplicate_window_s)
        await store.ensure_stream()
        async with command_service(store, settings, plan=plan) as service:
            intake = CommandIntake(TracedCommands(service))
            plan.add(Phase.IN_FLIGHT, "commands in flight", partial(intake.drain, 5.0), 6.0)
            plan.add(Phase.INTAKE, "command intake", intake.stop_taking, 2.0)
            await intake.start(nc, settings.command_queue)
            yield Instance(url, settings, store, service, broker, intake)


async def close_connection(nc: Client) -> None:
    """Closes a connection once its last publishes are out (acks, replies).

    Not a drain (nor the broker's stop, which drains): the log feeds read their queues
    without a callback, and a drain would wait for those queues to empty with nobody
    left to read them.
    """
    if not nc.is_closed:
        await nc.close()


async def _start_http(instance: Instance, plan: ShutdownPlan) -> str | None:
    """Serves the HTTP endpoint (None when ``RUNLOG_HTTP_ADDR`` is off) until the plan runs."""
    from .web import serving_http

    serving = contextlib.AsyncExitStack()
    endpoint = await serving.enter_async_context(serving_http(instance.store.nc,
                                                               instance.settings))
    plan.add(Phase.INTAKE, "HTTP endpoint", serving.aclose, 2.0)
    return endpoint.url if endpoint is not None else None


async def _start_read_side(instance: Instance, plan: ShutdownPlan, in_process: bool
                           ) -> ReadSideHandle:
    """The read side in a supervised child process (or in this one), stopped by the plan."""
    if in_process:
        inline = await start_read_side(instance.store, instance.settings)
        plan.add(Phase.WORKERS, "read side", inline.stop, 4.0)
        return inline
    child = ReadSideProcess(instance.store.nc, instance.url, instance.settings)
    # Registered before it starts: a stop during its start-up still ends the child.
    plan.add(Phase.WORKERS, "read side", child.stop, 7.0)
    await child.start()
    return child


async def seed_prices(executor: Executor) -> list[str]:
    """Registers the shipped price list; idempotent, so it runs at every start.

    Returns the models whose price was refused (logged too): none, normally.
    """
    refused = []
    for body in seed_commands(load_price_file()):
        reply = await _registered(executor, json.dumps(body).encode())
        if not reply.get("ok"):
            log.warning("seeding %s refused: %s", body["model"], reply.get("error"))
            refused.append(body["model"])
    return refused


async def _registered(executor: Executor, body: bytes) -> Reply:
    """One ``model.register``, sent again while the answer says a retry may succeed."""
    for attempt in range(1, SEED_ATTEMPTS):
        reply = await executor.execute("model.register", body)
        error = reply.get("error")
        if not isinstance(error, dict) or error.get("code") not in RETRYABLE_CODES:
            return reply
        await asyncio.sleep(0.05 * 2**attempt)
    return await executor.execute("model.register", body)  # the last: no wait after it


@contextlib.asynccontextmanager
async def serve(settings: Settings, url: str, projectors: bool = True, http: bool = False,
                read_side_in_process: bool = False) -> AsyncIterator[Instance]:
    """The whole runlog: command service, seeded prices, the projectors and the HTTP endpoint.

    ``http`` serves ``RUNLOG_HTTP_ADDR`` (``runlog up`` asks for it; embedded uses do not).
    The projectors and the SQL responder run in a supervised child process unless
    ``read_side_in_process``. Everything started here stops in one plan when the block exits.
    """
    # A file left by a runlog that died: whoever serves now writes the only valid one.
    remove_instance_file(settings.data_dir)
    async with _stopping(None) as plan, running_instance(settings, url, plan) as instance:
        await seed_prices(instance.service)
        if http:  # first: a taken port then fails before the read side opens its file
            instance.http_url = await _start_http(instance, plan)
        if projectors:
            instance.read_side = await _start_read_side(instance, plan, read_side_in_process)
        # Written last, removed first: its presence tells other shells that we serve.
        write_instance_file(settings.data_dir, url, instance.http_url)
        plan.add(Phase.INTAKE, "instance file",
                 _now(partial(remove_instance_file, settings.data_dir)), 1.0)
        yield instance


def _now(function: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    """A synchronous stop as a step."""
    async def step() -> object:
        return function()
    return step
