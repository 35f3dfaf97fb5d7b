"""The typed async client: a method per command, safe retries, read-your-writes queries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from events.errors import ErrorCode
from events.ids import new_id
from events.subjects import COMMAND_PREFIX
from services.errors import RunlogError
from services.instance_file import read_live_instance
from services.nats_connection import connection_options, server_list
from services.settings import Settings, load_settings

from .commands import CommandMethods
from .errors import BodyNotJson, CommandError, CommandTimeout, QueryError, SdkError
from .replies import QueryResult, Reply
from .retry import RetryPolicy, retrying
from .transport import NatsTransport, RequestTimeout, Transport

__all__ = ["QUERY_SUBJECT", "Client", "ClientStats", "connect"]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Reply)
M = TypeVar("M", bound=BaseModel)

_Unwrap = Callable[[str, dict[str, Any]], dict[str, Any]]
"""Turns a decoded reply into its payload, or raises the error it carries."""

QUERY_SUBJECT = "runlog.sql.query"
"""Where the read side of a running runlog answers read-only SQL."""


@dataclass(slots=True)
class ClientStats:
    """What this client has sent so far."""

    requests: int = 0
    """Requests sent, retries included."""
    retries: int = 0
    """Requests that were resends of an earlier one (same body, same ``command_id``)."""


class Client(CommandMethods):
    """Sends runlog's commands and queries over one connection.

    Each command gets a ``command_id`` (the caller's, or a fresh one) before its first
    send, so a retry after a timeout, ``conflict`` or ``unavailable`` is the same
    command: runlog writes it at most once. Any other refusal raises ``CommandError``
    at once.
    """

    def __init__(self, connection: NatsClient | Transport, *, retry: RetryPolicy | None = None,
                 request_timeout_s: float = 10.0) -> None:
        self.transport: Transport = (NatsTransport(connection)
                                     if isinstance(connection, NatsClient) else connection)
        self.retry = retry or RetryPolicy()
        self.request_timeout_s = request_timeout_s
        self.stats = ClientStats()
        self._last_seq = 0

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` any reply to this client carried: wait for it to read them all."""
        return self._last_seq

    @overload
    async def send(self, subject: str, body: Mapping[str, object], *,
                   timeout_s: float | None = None) -> Reply: ...

    @overload
    async def send(self, subject: str, body: Mapping[str, object], *, reply_type: type[R],
                   timeout_s: float | None = None) -> R: ...

    async def send(self, subject: str, body: Mapping[str, object], *,
                   reply_type: type[Reply] = Reply, timeout_s: float | None = None) -> Reply:
        """Sends ``runlog.cmd.<subject>`` (e.g. ``task.claim``); ``None`` fields are left out.

        Raises ``CommandError`` when refused, ``CommandTimeout`` when no reply came.
        """
        fields = {name: value for name, value in body.items() if value is not None}
        fields.setdefault("command_id", new_id())
        full_subject = f"{COMMAND_PREFIX}.{subject}"
        try:
            payload = json.dumps(to_jsonable_python(fields), separators=(",", ":")).encode()
        except (PydanticSerializationError, TypeError, ValueError) as error:
            raise BodyNotJson(full_subject, f"the body is not JSON: {error}") from None
        try:
            data = await self._request(full_subject, payload,
                                       timeout_s or self.request_timeout_s, _command_reply)
        except RequestTimeout as error:
            raise CommandTimeout(full_subject, f"{error}, after every retry: the command may "
                                               "or may not be written") from None
        reply = _parsed(full_subject, reply_type, data)
        self._last_seq = max(self._last_seq, reply.seq)
        return reply

    async def query(self, sql: str, *, after: Reply | int | None = None, limit: int = 1000,
                    timeout_s: float = 30.0, wait_timeout_s: float = 10.0) -> QueryResult:
        """Runs one read-only statement on the read models of a running runlog.

        With ``after`` (a reply, or a ``seq``), it first waits until every read model has
        applied that write, so the rows include it; ``QueryError`` with code
        ``wait_timeout`` if they do not within ``wait_timeout_s``.
        """
        wait_seq = after.seq if isinstance(after, Reply) else after
        request = {"sql": sql, "limit": limit, "timeout_s": timeout_s, "wait_seq": wait_seq,
                   "wait_timeout_s": wait_timeout_s}
        budget_s = timeout_s + (wait_timeout_s if wait_seq is not None else 0.0) + 5.0
        try:
            data = await self._request(QUERY_SUBJECT, json.dumps(request).encode(), budget_s,
                                       _query_reply)
        except RequestTimeout as error:
            raise QueryError(ErrorCode.UNAVAILABLE, str(error)) from None
        return _parsed(QUERY_SUBJECT, QueryResult, data)

    async def _command(self, subject: str, reply_type: type[R], fields: dict[str, object]
                       ) -> R:
        return await self.send(subject, fields, reply_type=reply_type)

    async def _request(self, subject: str, payload: bytes, timeout_s: float,
                       unwrap: _Unwrap) -> dict[str, Any]:
        """Sends until answered, resending what is transient; returns the unwrapped reply."""
        headers = _trace_headers()

        async def once() -> dict[str, Any]:
            self.stats.requests += 1
            body = await self.transport.request(subject, payload, timeout_s, headers)
            return unwrap(subject, _decoded(subject, body))

        def count_retry() -> None:
            self.stats.retries += 1

        return await retrying(self.retry, once, count_retry)


def _decoded(subject: str, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise SdkError(f"{subject}: the reply is not a runlog reply: {body[:200]!r}")
    return data


def _parsed(subject: str, model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SdkError(f"{subject}: unexpected reply: {error}") from None


def _command_reply(subject: str, data: dict[str, Any]) -> dict[str, Any]:
    if data["ok"]:
        return {name: value for name, value in data.items() if name != "ok"}
    error = data.get("error") or {}
    raise CommandError(subject, str(error.get("code", "internal")),
                       str(error.get("message", "")), error.get("details") or {})


def _query_reply(subject: str, data: dict[str, Any]) -> dict[str, Any]:
    if data["ok"]:
        result = data.get("result")
        return result if isinstance(result, dict) else {}
    error = data.get("error") or {}
    raise QueryError(str(error.get("code", "internal")), str(error.get("message", "")))


def _trace_headers() -> dict[str, str] | None:
    """The caller's OpenTelemetry context as ``traceparent`` headers, when there is one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextlib.asynccontextmanager
async def connect(url: str | None = None, *, name: str = "runlog-sdk",
                  connect_timeout_s: float = 15.0, retry: RetryPolicy | None = None,
                  request_timeout_s: float = 10.0, settings: Settings | None = None,
                  **nats_options: Any) -> AsyncIterator[Client]:
    """A client on its own NATS connection, closed on exit.

    ``url`` (one server, or a comma-separated cluster) defaults to ``RUNLOG_NATS_URL``,
    else to the ``runlog up`` running on ``RUNLOG_DATA_DIR`` (``SdkError`` at once when
    none runs, or its instance file names a process that is gone). The connection uses
    the ``RUNLOG_NATS_TLS_*``, ``RUNLOG_NATS_CREDS`` / ``RUNLOG_NATS_NKEY_SEED`` and
    ``RUNLOG_NATS_INBOX_PREFIX`` settings (of ``settings``, default: the environment), as
    every runlog process does; ``nats_options`` go to ``nats.connect`` and win over them.
    Unreachable: ``SdkError`` within ``connect_timeout_s``.
    """
    settings = settings or _settings()
    server = url or _running_url(settings)
    try:
        options = connection_options(settings) | nats_options
        nc = await asyncio.wait_for(nats.connect(
            server_list(server), name=name, connect_timeout=min(5.0, connect_timeout_s),
            max_reconnect_attempts=-1, **options), connect_timeout_s)
    except RunlogError as error:
        raise SdkError(str(error)) from None
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise SdkError(f"cannot reach NATS at {server} ({type(error).__name__})") from None
    try:
        yield Client(nc, retry=retry, request_timeout_s=request_timeout_s)
    finally:
        await nc.close()


def _settings() -> Settings:
    try:
        return load_settings()
    except RunlogError as error:
        raise SdkError(str(error)) from None


def _running_url(settings: Settings) -> str:
    """``RUNLOG_NATS_URL``, else the URL the live ``runlog up`` of the data dir wrote down."""
    if settings.nats_url:
        return settings.nats_url
    instance = read_live_instance(settings.data_dir)  # a file left by a dead pid is removed
    if instance is None:
        raise SdkError(f"runlog up is not running on {settings.data_dir} (start `runlog up`, "
                       "or set RUNLOG_NATS_URL)")
    return instance.nats_url
