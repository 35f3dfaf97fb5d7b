"""The command service: validate, recognise retries, decide, commit, retry on conflicts, reply.

This is the one place where a retried command is recognised (its events on the log,
or its no-write reply remembered by this replica) and the one loop that decides again
after an optimistic concurrency conflict or when a refusal rested on stale reads.
Clients reach it through ``execute`` (the FastStream app, the in-memory test client);
policies through ``send``, with typed commands: both take the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from events import utc_now
from events.base import Command
from events.codec import CODEC, EventCodec
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.charges import BudgetDefaults
from services.domain.recovery import DEFAULT_RECOVERY, RecoveryTable
from services.errors import ConcurrencyConflict, StoreUnavailable
from services.follower import LogFollower, Observer
from services.store import EventStore

from .aggregates import Repositories
from .handlers import ROUTES, ROUTES_BY_CLASS
from .remembered import RememberedReplies
from .replies import CommandFailed, error_reply, ok_reply
from .requests import client_command_id, parse_command, with_ids
from .routes import Lane, Outcome, Recognised, Route, target_of
from .unit_of_work import Committed, UnitOfWork

__all__ = ["CommandService", "Reply", "ServiceLimits", "StepHooks"]

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)
Reply = dict[str, object]

_LOCK_STRIPES = 1024
_REREADS = 2
"""How often a decision resting on stale reads is made again before it stands as it is."""
_TRACE_HEADERS = ("traceparent", "tracestate")


class ServiceLimits:
    """The service's tunables (from settings at the composition root)."""

    def __init__(self, max_command_bytes: int = 64 * 1024, occ_retries: int = 30,
                 occ_deadline_s: float = 5.0, lease_ttl_s: float = 30.0,
                 catch_up_timeout_s: float = 5.0, max_running: int | None = None,
                 recovery: RecoveryTable = DEFAULT_RECOVERY,
                 budget_defaults: BudgetDefaults | None = None) -> None:
        self.max_running = max_running
        self.recovery = recovery
        """Error class -> recovery strategy (``RUNLOG_RECOVERY`` overrides)."""
        self.budget_defaults = budget_defaults or BudgetDefaults()
        self.max_command_bytes = max_command_bytes
        self.occ_retries = occ_retries
        self.occ_deadline_s = occ_deadline_s
        self.lease_ttl_s = lease_ttl_s
        self.catch_up_timeout_s = catch_up_timeout_s


class StepHooks(Protocol):
    """Middleware around the steps of a command (telemetry makes them spans)."""

    def step(self, name: str) -> AbstractContextManager[object]:
        """A context around one step: ``validate``, ``decide``."""
        ...


class _NoHooks:
    def step(self, name: str) -> AbstractContextManager[object]:
        del name
        return _NOTHING


_NOTHING = contextlib.nullcontext()


class CommandService:
    """Every command subject's application service, on one event store."""

    def __init__(self, store: EventStore, codec: EventCodec = CODEC,
                 limits: ServiceLimits | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 hooks: StepHooks | None = None) -> None:
        self.store = store
        self.codec = codec
        self.limits = limits or ServiceLimits()
        self.clock = clock
        self.hooks: StepHooks = hooks or _NoHooks()
        self.repos = Repositories(store, codec, max_running=self.limits.max_running,
                                  budget_defaults=self.limits.budget_defaults)
        self.follower = LogFollower(store, codec, [self.repos])
        self.remembered = RememberedReplies()
        # One writer per aggregate inside this process: concurrent commands on the
        # same aggregate would only conflict with each other.
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    def observe_log(self, observer: Observer) -> None:
        """Adds an observer (a policy) to this service's log follower."""
        self.follower.add(observer)

    async def start(self) -> None:
        """Follows the log and waits until this replica has read all of it."""
        await self.follower.start()
        await self.follower.caught_up()

    async def stop(self) -> None:
        """Stops following the log."""
        await self.follower.stop()

    # -- entry points ---------------------------------------------------------

    async def execute(self, subject_suffix: str, body: bytes,
                      headers: Mapping[str, str] | None = None) -> Reply:
        """Runs the command served on ``runlog.cmd.<subject_suffix>``; always replies."""
        route = ROUTES.get(subject_suffix)
        if route is None:
            return error_reply(ErrorCode.UNKNOWN_COMMAND,
                               f"no command is served on runlog.cmd.{subject_suffix}")
        try:
            return await route.execute(self, body, headers or {})
        except CommandFailed as refused:
            return error_reply(refused.code, refused.message, refused.details)

    async def send(self, command: Command, headers: Mapping[str, str] | None = None) -> Reply:
        """Runs a typed command (a policy's), through the same path as a client's."""
        return await ROUTES_BY_CLASS[type(command)].send(self, command, headers or {})

    def parse(self, command_cls: type[C], body: bytes) -> C:
        """Validates a body strictly; raises ``CommandFailed`` with the reason."""
        with self.hooks.step("validate"):
            return parse_command(command_cls, body, self.limits.max_command_bytes)

    def filled(self, command: C) -> C:
        """The command with a missing command id (and create target) filled in."""
        return with_ids(command)

    async def run(self, route: Route[C], command: C, headers: Mapping[str, str]) -> Reply:
        """Answers a retry as the first time, or decides and commits the command."""
        command_id = client_command_id(command)
        earlier = self.remembered.get(route.subject, command_id) if command_id else None
        if earlier is not None:
            return earlier
        reply = await self._guarded(route, command, headers)
        if command_id:
            self.remembered.keep(route.subject, command_id, reply)
        return reply

    async def _guarded(self, route: Route[C], command: C, headers: Mapping[str, str]) -> Reply:
        try:
            decided = await self._serialised(route, command, _trace_headers(headers))
            # Rendered once the locks are released: a claim's task view must not hold
            # the task partition.
            return decided if isinstance(decided, dict) else await decided.reply()
        except (CommandFailed, DomainError) as refused:
            return error_reply(refused.code, refused.message, refused.details)
        except StoreUnavailable as error:
            return error_reply(ErrorCode.UNAVAILABLE, str(error))
        except Exception:
            log.exception("command on %s failed", route.subject)
            return error_reply(ErrorCode.INTERNAL, "internal error; nothing was written")

    async def _serialised(self, route: Route[C], command: C, trace: Mapping[str, str]
                          ) -> Reply | Decided:
        lock = self._locks[hash((command.aggregate, target_of(command))) % _LOCK_STRIPES]
        lane = route.lane
        async with lock:
            if lane.partition is None:
                return await self._attempts(route, command, trace)
            partition = self.repos.partitioned(lane.partition).partition
            gate = partition.exclusive() if lane.admission else partition.shared()
            async with gate:
                return await self._attempts(route, command, trace)

    # -- the one retry loop ---------------------------------------------------

    async def _attempts(self, route: Route[C], command: C, trace: Mapping[str, str]
                        ) -> Reply | Decided:
        """Decides and commits, again after conflicts (jittered, within a deadline)."""
        deadline = time.monotonic() + self.limits.occ_deadline_s
        attempts = rereads = 0
        while True:
            attempts += 1
            uow = self._unit_of_work()
            try:
                reply = await self._attempt(route, command, trace, uow, rereads < _REREADS)
            except ConcurrencyConflict as conflict:
                if attempts > self.limits.occ_retries or time.monotonic() > deadline:
                    break
                await self._catch_up(uow, conflict, route.lane)
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempts)))
                continue
            if reply is not None:
                return reply
            rereads += 1
        raise CommandFailed(ErrorCode.CONFLICT,
                            f"{route.subject}: concurrent writers won {attempts} times; "
                            "retry later with the same command_id", {"attempts": attempts})

    async def _attempt(self, route: Route[C], command: C, trace: Mapping[str, str],
                       uow: UnitOfWork, may_reread: bool) -> Reply | Decided | None:
        """One decision; None when it rested on stale reads and must be made again."""
        recognised = await self._recognise(route, uow, command)
        if recognised is not None:
            return _replayed(recognised)
        if route.lane.admission and route.lane.partition is not None:
            await self._complete(route.lane.partition)
        try:
            with self.hooks.step("decide"):
                outcome = await route.handle(uow, command)
        except DomainError:
            if may_reread and await uow.moved():
                return None
            raise
        if not uow.staged:
            if may_reread and await uow.moved():
                return None
            return Decided(outcome, None)
        committed = await uow.commit(command.command_id or "", trace)
        if committed.result.duplicate:
            return await self._answer_duplicate(route, command, committed.result.last_seq)
        return Decided(outcome, committed)

    def _unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.repos, self.store, self.codec, self.clock(),
                          self.limits.lease_ttl_s, self.limits.recovery)

    async def _recognise(self, route: Route[C], uow: UnitOfWork, command: C
                         ) -> Recognised | None:
        command_id = command.command_id or ""
        if route.recognise is not None:
            return await route.recognise(uow, command)
        target = target_of(command)
        record = await self.repos.record_of(command.aggregate, target, command_id)
        if record is None:
            return None
        extra = await route.replay(uow, command, record) if route.replay else {}
        return Recognised(target, record, extra)

    async def _complete(self, partition: str) -> None:
        """Brings a partition's index up to now, before an admission is decided on it.

        Everything up to the follower's position is folded in, and so are this replica's
        own writes; another replica's event between the two would not be, and the
        admission's guard (the partition's last sequence) would not notice it. So the
        gap is read from the log directly when there is one.
        """
        await self.repos.partitioned(partition).complete(self.follower.position)

    async def _catch_up(self, uow: UnitOfWork, conflict: ConcurrencyConflict,
                        lane: Lane) -> None:
        """After a conflict: the partition known up to the log's head, or the reads reloaded."""
        if lane.admission and lane.partition is not None:
            head = conflict.actual_last_seq or await self.store.last_seq()
            self.repos.partitioned(lane.partition).partition.saw(head)
            return
        await uow.reload()

    async def _answer_duplicate(self, route: Route[C], command: C, landed_seq: int) -> Reply:
        """A retry whose events had already landed (another replica): answer from the log."""
        await self.repos.reload(command.aggregate, target_of(command))
        try:
            await self.follower.reached(landed_seq, self.limits.catch_up_timeout_s)
        except TimeoutError:
            raise StoreUnavailable("the log follower is behind a retried command") from None
        uow = self._unit_of_work()
        recognised = await self._recognise(route, uow, command)
        if recognised is None:
            # JetStream dedupes message ids across the whole stream: this id already
            # wrote events, but to other aggregates, for another command.
            raise CommandFailed(
                ErrorCode.VALIDATION_FAILED,
                f"command_id {command.command_id} was already used by another command",
                {"command_id": command.command_id})
        return _replayed(recognised)


def _trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace context of a request: the only headers its events carry on."""
    return {k: headers[k] for k in _TRACE_HEADERS if k in headers}


def _replayed(recognised: Recognised) -> Reply:
    record = recognised.record
    return ok_reply(recognised.aggregate_id, record.version, record.seq,
                    list(record.event_types), dict(recognised.extra))


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision made (and committed, if it wrote): its reply is rendered after the locks."""

    outcome: Outcome
    committed: Committed | None

    async def reply(self) -> Reply:
        """The success reply: the first aggregate written (or the target) and extra fields."""
        outcome, committed = self.outcome, self.committed
        extra = dict(await outcome.extra(committed)) if outcome.extra else {}
        if committed is None or not committed.written:
            target = outcome.target
            return ok_reply(target.aggregate_id, target.version, target.last_seq, [], extra)
        first = committed.written[0]
        version = max(w.version for w in committed.written
                      if (w.aggregate, w.aggregate_id) == (first.aggregate, first.aggregate_id))
        return ok_reply(first.aggregate_id, version, committed.result.last_seq,
                        committed.event_types, extra)
