"""One NATS connection on a private event loop, shared by all recorders of one factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import nats
import nats.errors
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
)
from nats.aio.client import Client

from services.errors import ConcurrencyConflict, StoreError
from services.store import JetStreamEventStore

from .codec import Subjects
from .loop import EventLoopThread, LoopClosed
from .reader import StreamReader

__all__ = ["JetStreamDatastore", "JetStreamSettings", "StreamLog"]

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class JetStreamSettings:
    """Where and how an application's recorders keep their streams."""

    servers: tuple[str, ...]
    stream: str
    subject_prefix: str
    replicas: int = 1
    duplicate_window_s: float = 120.0
    timeout_s: float = 5.0
    nats_options: Mapping[str, Any] = field(default_factory=dict)
    """More ``nats.connect`` keywords: TLS, credentials, inbox prefix."""


@dataclass(frozen=True, slots=True)
class StreamLog:
    """One recorder's stream: the store that writes it, the reader and its subjects."""

    store: JetStreamEventStore
    reader: StreamReader
    subjects: Subjects


class Stoppable(Protocol):
    """Anything the datastore must stop before it closes (subscriptions)."""

    def stop(self) -> None:
        """Stops it."""


class JetStreamDatastore:
    """Owns the event loop thread and the connection; translates errors for the library."""

    def __init__(self, settings: JetStreamSettings) -> None:
        self.settings = settings
        self._loop = EventLoopThread(name=f"jetstream-{settings.stream}")
        self._open: set[Stoppable] = set()
        self._open_lock = threading.Lock()
        try:
            self.nc: Client = self.run(self._connect())
        except BaseException:
            self._loop.stop()
            raise

    async def _connect(self) -> Client:
        # nats-py retries a refused first connect without end; the deadline bounds it.
        return await asyncio.wait_for(
            nats.connect(
                servers=list(self.settings.servers),
                name=f"runlog-eventsourcing-{self.settings.stream}",
                connect_timeout=max(1, round(self.settings.timeout_s)),
                error_cb=_on_error,
                **self.settings.nats_options,
            ),
            self.settings.timeout_s,
        )

    def log(self, purpose: str) -> StreamLog:
        """The stream holding this application's ``purpose`` records (events, snapshots, ...)."""
        base = self.settings.stream
        stream = base if purpose == "events" else f"{base}_{_stream_token(purpose)}"
        root = f"{self.settings.subject_prefix}.{_subject_token(purpose)}"
        store = JetStreamEventStore(
            self.nc,
            stream=stream,
            subject_prefix=root,
            replicas=self.settings.replicas,
            duplicate_window_s=self.settings.duplicate_window_s,
            timeout_s=self.settings.timeout_s,
        )
        reader = StreamReader(self.nc, stream, self.settings.timeout_s)
        return StreamLog(store, reader, Subjects(root))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the loop, raising the library's exceptions for NATS and store errors."""
        try:
            # Every NATS call has its own timeout; this one only guards against a stuck loop.
            return self._loop.run(coro, self.settings.timeout_s * 4 + 5)
        except PersistenceError:
            raise
        except LoopClosed as error:
            raise ProgrammingError("the JetStream infrastructure factory is closed") from error
        except ConcurrencyConflict as error:
            raise IntegrityError(str(error)) from error
        except (StoreError, nats.errors.Error, OSError, asyncio.CancelledError) as error:
            raise OperationalError(f"JetStream: {error or type(error).__name__}") from error

    def opened(self, resource: Stoppable) -> None:
        """Remembers a subscription so ``close`` can stop it."""
        with self._open_lock:
            self._open.add(resource)

    def closed(self, resource: Stoppable) -> None:
        """Forgets a stopped subscription."""
        with self._open_lock:
            self._open.discard(resource)

    def close(self) -> None:
        """Stops subscriptions, closes the connection and joins the loop thread; safe to repeat."""
        if self._loop.is_stopped:
            return
        # A finalizer (Application.__del__) may run on the loop thread, which cannot wait for
        # itself: then stopping the loop cancels the connection's tasks and the rest is dropped.
        if not self._loop.is_current:
            self._close_on_loop()
        self._loop.stop()

    def _close_on_loop(self) -> None:
        with self._open_lock:
            still_open = list(self._open)
        for resource in still_open:
            resource.stop()
        with contextlib.suppress(PersistenceError):
            self.run(self.nc.close())


async def _on_error(error: Exception) -> None:
    # nats-py's default prints tracebacks; reconnects are expected, so log them quietly.
    _log.warning("NATS connection error: %s", error)


def _stream_token(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in text).upper()


def _subject_token(text: str) -> str:
    return _stream_token(text).lower()
