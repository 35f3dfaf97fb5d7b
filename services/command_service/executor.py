"""Executes one command: validate, load, decide, append; retry on conflicts; always reply."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from events import utc_now
from events.base import Command
from events.commands import COMMANDS
from events.errors import ErrorCode
from services.domain import DomainError
from services.errors import ConcurrencyConflict, StoreUnavailable
from services.store import JetStreamEventStore
from services.telemetry import extract_context, inject_context

from .aggregates import AggregateRepository
from .changes import commit
from .plans import Decision, Session, plan_for
from .remembered import RememberedReplies
from .replies import CommandFailed, error_reply, ok_reply
from .requests import client_command_id, parse_command
from .task_queue import TaskQueueIndex

__all__ = ["CommandExecutor"]

log = logging.getLogger(__name__)
meter = metrics.get_meter("runlog.commands")
command_counter = meter.create_counter("runlog.commands", description="Commands handled")
command_duration = meter.create_histogram("runlog.command.duration", unit="ms",
                                          description="Time to handle a command")
append_duration = meter.create_histogram("runlog.append.duration", unit="ms",
                                         description="Time to append a command's events")
_SERVER_FAULTS = frozenset({ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE})
_NO_SPAN = contextlib.nullcontext()
_TRACE_HEADERS = ("traceparent", "tracestate")


def _trace_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The W3C trace context of a request, to keep on the events it writes."""
    if not headers:
        return {}
    return {k: headers[k] for k in _TRACE_HEADERS if k in headers}

_LOCK_STRIPES = 1024


class CommandExecutor:
    """The application service behind every command subject."""

    def __init__(
        self, store: JetStreamEventStore, repository: AggregateRepository | None = None,
        max_command_bytes: int = 64 * 1024, occ_retries: int = 30, occ_deadline_s: float = 5.0,
        clock: Callable[[], datetime] = utc_now, task_index: TaskQueueIndex | None = None,
        lease_ttl_s: float = 30.0, tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.store = store
        self.repository = repository if repository is not None else AggregateRepository(store)
        # Not `or`: an empty index has length 0 and would be replaced by an unstarted one.
        self.task_index = task_index if task_index is not None else TaskQueueIndex()
        self.remembered = RememberedReplies()
        self.lease_ttl_s = lease_ttl_s
        self.max_command_bytes = max_command_bytes
        self.occ_retries = occ_retries
        self.occ_deadline_s = occ_deadline_s
        self.clock = clock
        # One writer per aggregate inside this process: concurrent commands on the
        # same aggregate would only conflict with each other.
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        # Without an SDK tracer provider every span would be a no-op that still costs
        # ~13% of a command; the caller's trace context is then carried on as is.
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracing = not isinstance(provider, trace.ProxyTracerProvider)
        self._tracer = provider.get_tracer("runlog.commands")
        self._carried: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
            "runlog_trace_headers", default=None)

    async def execute(self, subject_suffix: str, body: bytes,
                      headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Runs the command served on ``runlog.cmd.<subject_suffix>`` and returns its reply.

        The span continues the caller's ``traceparent``; the events written carry it on.
        """
        started = time.perf_counter()
        if self._tracing:
            reply, code = await self._execute_traced(subject_suffix, body, headers)
        else:
            self._carried.set(_trace_headers(headers))
            reply = await self._execute(subject_suffix, body)
            code = reply["error"]["code"] if not reply["ok"] else "ok"
        attributes = {"subject": subject_suffix, "outcome": code}
        command_counter.add(1, attributes)
        command_duration.record((time.perf_counter() - started) * 1000, attributes)
        return reply

    async def _execute_traced(self, subject_suffix: str, body: bytes,
                              headers: Mapping[str, str] | None) -> tuple[dict[str, Any], str]:
        subject = f"runlog.cmd.{subject_suffix}"
        with self._tracer.start_as_current_span(
            f"{subject} process", context=extract_context(headers), kind=SpanKind.SERVER,
            attributes={"messaging.system": "nats", "messaging.destination.name": subject},
        ) as span:
            reply = await self._execute(subject_suffix, body)
            code = reply["error"]["code"] if not reply["ok"] else "ok"
            span.set_attribute("runlog.outcome", code)
            if code in _SERVER_FAULTS:
                span.set_status(Status(StatusCode.ERROR, code))
        return reply, code

    def _span(self, name: str, kind: SpanKind = SpanKind.INTERNAL) -> Any:
        """A child span when tracing is on; nothing at all otherwise."""
        return self._tracer.start_as_current_span(name, kind=kind) if self._tracing else _NO_SPAN

    async def _execute(self, subject_suffix: str, body: bytes) -> dict[str, Any]:
        try:
            command_cls = COMMANDS.get(subject_suffix)
            if command_cls is None:
                raise CommandFailed(ErrorCode.UNKNOWN_COMMAND,
                                    f"no command is served on runlog.cmd.{subject_suffix}")
            with self._span("validate"):
                command = parse_command(command_cls, body, self.max_command_bytes)
        except CommandFailed as refused:
            return error_reply(refused.code, refused.message, refused.details)
        command_id = client_command_id(command)
        earlier = self.remembered.get(command.subject, command_id) if command_id else None
        if earlier is not None:
            return earlier
        reply = await self._decide_and_append(command, subject_suffix)
        if command_id:
            self.remembered.keep(command.subject, command_id, reply)
        return reply

    async def _decide_and_append(self, command: Command, subject_suffix: str
                                 ) -> dict[str, Any]:
        try:
            return await self.run(command)
        except (CommandFailed, DomainError) as refused:
            return error_reply(refused.code, refused.message, refused.details)
        except StoreUnavailable as error:
            return error_reply(ErrorCode.UNAVAILABLE, str(error))
        except Exception:
            log.exception("command on %s failed", subject_suffix)
            return error_reply(ErrorCode.INTERNAL, "internal error; nothing was written")

    async def run(self, command: Command) -> dict[str, Any]:
        """Decides and appends a validated command, re-deciding after conflicts.

        Conflicts are retried up to ``occ_retries`` times within ``occ_deadline_s``, with
        jittered backoff capped at 50 ms: under heavy contention a replica that keeps
        losing to a busier one gets enough chances before it answers ``conflict``.
        """
        lock = self._locks[hash((command.aggregate, command.target_id())) % _LOCK_STRIPES]
        deadline = time.monotonic() + self.occ_deadline_s
        attempts = 0
        async with lock:
            while True:
                attempts += 1
                session = self._session()
                try:
                    return await self._attempt(session, command)
                except ConcurrencyConflict:
                    if attempts > self.occ_retries or time.monotonic() > deadline:
                        break
                    await self._refresh(session)
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempts)))
        raise CommandFailed(ErrorCode.CONFLICT,
                            f"{command.subject}: concurrent writers won {attempts} times; "
                            "retry later with the same command_id", {"attempts": attempts})

    def _session(self) -> Session:
        """What one decision works with, at the current time."""
        return Session(self.repository, self.store, self.task_index, self.clock(),
                       self.lease_ttl_s)

    async def _attempt(self, session: Session, command: Command) -> dict[str, Any]:
        with self._span("decide"):
            decision = await plan_for(command.subject)(session, command)
        if decision.seen:
            return await _replayed(decision)
        if not any(change.events for change in decision.changes):
            primary = decision.changes[0].loaded
            extra = await decision.extra([primary]) if decision.extra else None
            return ok_reply(primary.aggregate_id, primary.version, primary.last_seq, [], extra)
        changes = [c for c in decision.changes if c.events]
        # Events carry only the trace context: never other headers a client sent.
        trace_headers = inject_context() if self._tracing else self._carried.get() or {}
        started = time.perf_counter()
        with self._span("append", SpanKind.PRODUCER):
            committed = await commit(self.store, changes, command.command_id or "",
                                     session.now, trace_headers)
        append_duration.record((time.perf_counter() - started) * 1000)
        result, updated = committed.result, committed.updated
        if result.duplicate:
            return await self._answer_duplicate(session, command, decision)
        for loaded in updated:
            self.repository.remember(loaded)
        # This replica's claims see its own task writes at once, not when the feed catches up.
        for written in committed.written:
            if written.aggregate == "task":
                self.task_index.observe(json.loads(written.payload), written.seq)
        types = [e.type_name() for c in changes for e in c.events]
        extra = await decision.extra(updated) if decision.extra else None
        return ok_reply(updated[0].aggregate_id, updated[0].version, result.last_seq, types,
                        extra)

    async def _answer_duplicate(self, session: Session, command: Command, decision: Decision
                                ) -> dict[str, Any]:
        """A retry whose events had already landed: answer from the log, as the first time."""
        for change in decision.changes:
            self.repository.forget(change.loaded.aggregate, change.loaded.aggregate_id)
        session = self._session()
        replay = await plan_for(command.subject)(session, command)
        if not replay.seen:
            # JetStream dedupes message ids across the whole stream: this id already
            # wrote events, but to other aggregates, for another command.
            raise CommandFailed(
                ErrorCode.VALIDATION_FAILED,
                f"command_id {command.command_id} was already used by another command",
                {"command_id": command.command_id})
        return await _replayed(replay)

    async def _refresh(self, session: Session) -> None:
        for loaded in session.loaded:
            await self.repository.refresh(loaded.aggregate, loaded.aggregate_id)


async def _replayed(decision: Decision) -> dict[str, Any]:
    """The reply of a command that already landed, rebuilt from what it wrote."""
    target, record = decision.seen[0]
    event_types = [t for _, r in decision.seen for t in r.event_types]
    last_seq = max(r.seq for _, r in decision.seen)
    extra = await decision.extra([target]) if decision.extra else None
    return ok_reply(target.aggregate_id, record.version, last_seq, event_types, extra)
