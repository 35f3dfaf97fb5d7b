"""The JetStream event store: the port every writer and reader of the log uses.

Global position is the stream sequence. Appends are optimistic (expected last
subject sequence), idempotent (deterministic ``Nats-Msg-Id``) and, when a command
yields several events, one atomic batch.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api

from events import EVENT_PREFIX
from services.errors import ConcurrencyConflict, StoreError, StoreUnavailable

from .acks import AckInbox, AckRefused
from .direct_get import DirectGetter
from .feed import JetStreamFeed
from .records import AppendResult, OutgoingMessage, RecordedEvent

__all__ = ["EXPECTED_SEQ_HEADER", "EXPECTED_SUBJECT_HEADER", "JetStreamEventStore"]

EXPECTED_SEQ_HEADER = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SUBJECT_HEADER = "Nats-Expected-Last-Subject-Sequence-Subject"
_WRONG_LAST = re.compile(r"wrong last sequence: (\d+)")
_CONFLICT_CODES = frozenset({10071, 10164})
_DUPLICATE_IN_BATCH = 10201
_BATCH_NOT_STAGED = frozenset({10176, 10210})
"""A batch the server dropped before its commit (incomplete, or too many in flight):
nothing of it landed, so it is safe to send again."""
_MAX_BATCH = 1000


class JetStreamEventStore:
    """Appends and reads events on one JetStream stream."""

    def __init__(
        self,
        nc: Client,
        stream: str = "RUNLOG",
        subject_prefix: str = EVENT_PREFIX,
        replicas: int = 1,
        duplicate_window_s: float = 120.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout_s)
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.replicas = replicas
        self.duplicate_window_s = duplicate_window_s
        self.timeout_s = timeout_s
        self._getter = DirectGetter(nc, stream, timeout_s)
        self._acks = AckInbox(nc, timeout_s)
        # Batch ids must be unique among the batches in flight on the stream, from any
        # writer: two replicas sending one command's batch under one id interleave on
        # the server, which then drops both as incomplete.
        self._batch_ids = (f"{secrets.token_hex(8)}-{n}" for n in itertools.count())

    async def ensure_stream(self) -> None:
        """Creates the stream, or updates it to this configuration; safe to repeat."""
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window_s,
            allow_direct=True,
            allow_atomic=True,
            discard=api.DiscardPolicy.OLD,
            # The log is immutable: no client may delete an event or purge the stream.
            deny_delete=True,
            deny_purge=True,
        )
        try:
            try:
                await self.js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                await self.js.add_stream(config)
            else:
                await self.js.update_stream(config)
        except nats.js.errors.APIError as error:
            raise StoreError(f"stream {self.stream}: the server refused its configuration "
                             f"(subjects {self.subject_prefix}.>, {self.replicas} replicas, "
                             f"deletes and purges denied): {error.description} "
                             f"(code {error.err_code})") from error
        except nats.errors.Error as error:
            raise _translate(error, self.stream) from error

    async def last_seq(self) -> int:
        """Returns the stream's last sequence (0 when empty)."""
        try:
            info = await self.js.stream_info(self.stream)
        except nats.errors.Error as error:
            raise _translate(error, self.stream) from error
        return int(info.state.last_seq)

    # -- writing ------------------------------------------------------------------

    async def append(self, messages: Sequence[OutgoingMessage]) -> AppendResult:
        """Appends messages all-or-nothing, each checked against its expectation.

        A retry of an append that already landed answers with the original positions.
        """
        if not messages:
            raise ValueError("append needs at least one message")
        if len(messages) > _MAX_BATCH:
            raise StoreError(f"an atomic append holds at most {_MAX_BATCH} messages")
        try:
            if len(messages) == 1:
                return await self._publish_one(messages[0])
            return await self._publish_batch(messages)
        except _Rejected as rejected:
            return await self._resolve_rejection(messages, rejected)
        except (nats.errors.Error, TimeoutError) as error:
            raise _translate(error, messages[0].subject) from error

    async def _publish_one(self, msg: OutgoingMessage) -> AppendResult:
        headers = {**msg.headers, "Nats-Msg-Id": msg.msg_id, **_expect_headers(msg)}
        try:
            ack = await self._acks.publish(msg.subject, msg.payload, headers)
        except AckRefused as refused:
            raise _Rejected(refused.err_code, refused.description) from refused
        return AppendResult(ack.seq, ack.seq, duplicate=ack.duplicate)

    async def _publish_batch(self, messages: Sequence[OutgoingMessage]) -> AppendResult:
        batch_id = next(self._batch_ids)
        checked: set[str] = set()
        for index, msg in enumerate(messages, start=1):
            headers = {
                **msg.headers,
                "Nats-Msg-Id": msg.msg_id,
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(index),
            }
            # JetStream accepts the expected-sequence header only on a subject's first message.
            if msg.subject not in checked:
                headers.update(_expect_headers(msg))
                checked.add(msg.subject)
            if index < len(messages):
                await self.nc.publish(msg.subject, msg.payload, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await self.nc.request(msg.subject, msg.payload, self.timeout_s, headers=headers)
        return _batch_result(json.loads(reply.data), len(messages))

    async def _resolve_rejection(
        self, messages: Sequence[OutgoingMessage], rejected: _Rejected
    ) -> AppendResult:
        """Tells a retried append that already landed from a real conflict."""
        last = messages[-1]
        stored = await self._getter.last_on_subject(last.subject)
        if stored is not None and stored.msg_id == last.msg_id:
            return AppendResult(stored.seq - len(messages) + 1, stored.seq, duplicate=True)
        if rejected.code in _CONFLICT_CODES or rejected.code == _DUPLICATE_IN_BATCH:
            raise ConcurrencyConflict(last.subject, f"{last.subject}: {rejected.description}",
                                      _actual_last_seq(rejected.description))
        if rejected.code in _BATCH_NOT_STAGED:
            raise StoreUnavailable(f"append to {last.subject} not staged, nothing written: "
                                   f"{rejected.description}")
        raise StoreError(f"append to {last.subject} refused: {rejected.description}")

    # -- reading ------------------------------------------------------------------

    async def read_subject(self, subject: str, from_seq: int = 1) -> list[RecordedEvent]:
        """Returns the messages of one subject by batch direct get."""
        try:
            return await self._getter.read_subject(subject, from_seq)
        except (nats.errors.Error, TimeoutError) as error:
            raise _translate(error, subject) from error

    async def first_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the first message of one subject (an aggregate's creation), or None."""
        try:
            return await self._getter.first_on_subject(subject)
        except (nats.errors.Error, TimeoutError) as error:
            raise _translate(error, subject) from error

    async def last_on_subject(self, subject: str) -> RecordedEvent | None:
        """Returns the last message of one subject, or None."""
        try:
            return await self._getter.last_on_subject(subject)
        except (nats.errors.Error, TimeoutError) as error:
            raise _translate(error, subject) from error

    async def read_all(
        self, from_seq: int = 1, until_seq: int | None = None, subjects: str | None = None
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Yields batches of every event from ``from_seq`` to ``until_seq`` (default: now)."""
        until = await self.last_seq() if until_seq is None else until_seq
        if from_seq > until:
            return
        feed = await self.subscribe(from_seq, subjects)
        try:
            async for batch in feed.batches(until_seq=until):
                yield batch
        finally:
            await feed.close()

    async def subscribe(
        self, from_seq: int = 1, subjects: str | None = None, max_pending: int = 200_000
    ) -> JetStreamFeed:
        """Starts a live feed of events from ``from_seq`` on, through an ordered consumer."""
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(from_seq, 1),
        )
        try:
            subscription = await self.js.subscribe(
                subjects or f"{self.subject_prefix}.>",
                stream=self.stream,
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=max_pending,
                pending_bytes_limit=256 * 1024 * 1024,
            )
        except (nats.errors.Error, TimeoutError) as error:
            raise _translate(error, self.stream) from error
        return JetStreamFeed(subscription)


class _Rejected(Exception):
    """JetStream refused an append with an API error code."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _expect_headers(msg: OutgoingMessage) -> dict[str, str]:
    if msg.expect is None:
        return {}
    headers = {EXPECTED_SEQ_HEADER: str(msg.expect.last_seq)}
    if msg.expect.subject_filter is not None:
        headers[EXPECTED_SUBJECT_HEADER] = msg.expect.subject_filter
    return headers


def _actual_last_seq(description: str) -> int | None:
    """The sequence the server holds as last, from its refusal ("wrong last sequence: 42")."""
    found = _WRONG_LAST.search(description)
    return int(found.group(1)) if found else None


def _batch_result(reply: dict[str, Any], count: int) -> AppendResult:
    error = reply.get("error")
    if error:
        raise _Rejected(int(error.get("err_code", 0)), str(error.get("description", "")))
    last = int(reply["seq"])
    return AppendResult(last - count + 1, last)


_TRANSIENT = (nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError,
              nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
              nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
              nats.errors.NoServersError, nats.js.errors.NoStreamResponseError,
              nats.js.errors.ServiceUnavailableError)
"""Failures that pass on their own (a reconnect, a leader election): answered ``unavailable``."""


def _translate(error: BaseException, where: str) -> StoreError:
    if isinstance(error, _TRANSIENT) or getattr(error, "code", None) == 503:
        return StoreUnavailable(f"{where}: NATS did not answer ({type(error).__name__})")
    if isinstance(error, nats.js.errors.APIError):
        if error.err_code in _CONFLICT_CODES:
            return ConcurrencyConflict(where, f"{where}: {error.description}")
        return StoreError(f"{where}: {error.description} (code {error.err_code})")
    return StoreError(f"{where}: {error}")
