"""SQL for many clients on one read-model file: fair, bounded, interruptible.

``SqlService`` runs each query's blocking work in a pool of ``workers`` threads, after a
``FairQueue`` admits it: at most ``per_client`` queries of one client run at once, the
others wait in a queue of at most ``queue`` entries (one client may fill half of it),
served round-robin across clients. So a client with many slow queries holds a few
workers, never all of them, and another client's query still runs. Time spent waiting
counts against the query's time limit. Every running query is watched, so the service
can stop them all (when it stops, or when the projector runs short of memory). A
``SwapGate`` lets a rebuild take the file from under the queries for a moment.

Nothing here knows NATS: the responder (or any caller) passes a client name and a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import FIRST_COMPLETED
from typing import Any, TypeVar

from .errors import QueryInterrupted, QueryTimeout, QueryUnavailable
from .limits import SqlLimits
from .query import QueryWatch
from .telemetry import observe_sql
from .workers import DaemonPool

__all__ = ["STOP_WAIT_S", "FairQueue", "SqlService", "SwapGate"]

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_WAIT_S = 2.0
"""How long a stop waits for interrupted queries: DuckDB checks for an interrupt often,
but a stop must not depend on it."""


class FairQueue:
    """Admits at most ``workers`` jobs at once, ``per_client`` of one client; the others wait."""

    def __init__(self, workers: int, per_client: int, max_waiting: int) -> None:
        self.workers = workers
        self.per_client = per_client
        self.max_waiting = max_waiting
        self.max_waiting_per_client = max(1, max_waiting // 2)
        self._running: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()
        self._closed = False

    @property
    def running(self) -> int:
        """Jobs admitted and not yet done."""
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker."""
        return sum(len(queue) for queue in self._waiting.values())

    def load(self, client: str) -> tuple[int, int]:
        """How many of ``client``'s jobs run, and how many wait."""
        return self._running[client], len(self._waiting.get(client, ()))

    def close(self) -> None:
        """Refuses new jobs and every waiting one."""
        self._closed = True
        for queue in self._waiting.values():
            for future in queue:
                future.set_exception(QueryUnavailable("the SQL service is stopping"))
        self._waiting.clear()
        self._turns.clear()

    @contextlib.asynccontextmanager
    async def slot(self, client: str, timeout_s: float) -> AsyncIterator[None]:
        """Holds one of the workers for ``client``, waiting at most ``timeout_s`` for it."""
        await self._acquire(client, timeout_s)
        try:
            yield
        finally:
            self._running[client] -= 1
            if not self._running[client]:
                del self._running[client]
            self._dispatch()

    async def _acquire(self, client: str, timeout_s: float) -> None:
        future = self._enqueue(client)
        self._dispatch()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as stopped:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._running[client] -= 1  # admitted just now: give the worker back
                self._dispatch()
            else:
                self._withdraw(client, future)
            if isinstance(stopped, TimeoutError):
                raise QueryTimeout(f"no query worker was free within {timeout_s:g} s "
                                   f"({self.running} running)") from None
            raise

    def _enqueue(self, client: str) -> asyncio.Future[None]:
        if self._closed:
            raise QueryUnavailable("the SQL service is stopping")
        waiting = self.waiting
        mine = len(self._waiting.get(client, ()))
        if waiting >= self.max_waiting or mine >= self.max_waiting_per_client:
            raise QueryUnavailable(f"too many queries waiting ({waiting}, {mine} of them this "
                                   "client's): try again shortly")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(future)
        if client not in self._turns:
            self._turns.append(client)
        return future

    def _withdraw(self, client: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[client]
                self._turns.remove(client)
        future.cancel()

    def _dispatch(self) -> None:
        """Admits waiting jobs, one client after another, while workers are free."""
        while self.running < self.workers:
            for _ in range(len(self._turns)):
                client = self._turns[0]
                self._turns.rotate(-1)
                if self._running[client] < self.per_client:
                    self._admit(client)
                    break
            else:
                return

    def _admit(self, client: str) -> None:
        queue = self._waiting[client]
        future = queue.popleft()
        if not queue:
            del self._waiting[client]
            self._turns.remove(client)
        self._running[client] += 1
        future.set_result(None)


class SwapGate:
    """Lets many queries share the database, or one swap have it alone."""

    def __init__(self) -> None:
        self._readers = 0
        self._swapping = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Held by each query."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._swapping)
            self._readers += 1
        try:
            yield
        finally:
            async with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Held while the file is swapped."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._swapping)
            self._swapping = True
            await self._changed.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._swapping = False
                self._changed.notify_all()


class SqlService:
    """Runs watched query jobs for named clients within ``SqlLimits``."""

    def __init__(self, limits: SqlLimits) -> None:
        self.limits = limits
        self.queue = FairQueue(limits.workers, limits.per_client, limits.queue)
        self.gate = SwapGate()
        self._pool: DaemonPool | None = None
        self._watches: set[QueryWatch] = set()
        self._abandoned = asyncio.Event()
        """Set once a stop has waited for the running jobs as long as it may."""
        observe_sql(self)

    @property
    def running(self) -> int:
        """Jobs running in a worker now."""
        return len(self._watches)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker now."""
        return self.queue.waiting

    def start(self) -> None:
        """Starts the worker threads."""
        self._pool = DaemonPool(self.limits.workers, "runlog-sql")
        self._abandoned.clear()

    async def _outcome(self, future: asyncio.Future[T]) -> T:
        """The job's result, or ``QueryInterrupted`` once a stop gives up waiting for it."""
        await self._until_done_or_abandoned(future)
        if not future.done() or future.cancelled():  # cancelled: queued when the pool closed
            raise QueryInterrupted("query interrupted: the service is stopping")
        return future.result()

    async def _until_done_or_abandoned(self, future: asyncio.Future[Any]) -> None:
        # asyncio.wait never cancels the job's future, as shield() would not either.
        giving_up = asyncio.create_task(self._abandoned.wait())
        try:
            waiting: list[asyncio.Future[Any]] = [future, giving_up]
            await asyncio.wait(waiting, return_when=FIRST_COMPLETED)
        finally:
            giving_up.cancel()

    async def stop(self, wait_s: float = STOP_WAIT_S) -> int:
        """Refuses new queries, interrupts the running ones and waits at most ``wait_s`` for
        their threads; returns how many were still running then (left to finish alone)."""
        self.queue.close()
        self.interrupt_all("the service is stopping")
        pool, self._pool = self._pool, None
        if pool is None:
            return 0
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + wait_s
        while self._watches and time.monotonic() < deadline:
            self.interrupt_all("the service is stopping")  # a job between statements
            await asyncio.sleep(0.02)
        self._abandoned.set()
        if self._watches:
            log.warning("SQL: %d quer%s did not stop within %.1f s of being interrupted; "
                        "going on without waiting for %s", len(self._watches),
                        "y" if len(self._watches) == 1 else "ies", wait_s,
                        "it" if len(self._watches) == 1 else "them")
        return len(self._watches)

    def interrupt_all(self, reason: str) -> int:
        """Stops every running query, saying why; returns how many there were."""
        watches = list(self._watches)
        for watch in watches:
            watch.cancel(reason)
        return len(watches)

    async def run(self, client: str, timeout_s: float | None,
                  job: Callable[[QueryWatch], T]) -> T:
        """Runs ``job(watch)`` in a worker once ``client``'s turn comes, within the time limit."""
        timeout = self.limits.timeout(timeout_s)
        deadline = time.monotonic() + timeout
        async with self.queue.slot(client, timeout), self.gate.shared():
            pool = self._pool
            if pool is None:
                raise QueryUnavailable("the SQL service is not running")
            watch = QueryWatch(timeout, deadline=deadline)
            self._watches.add(watch)
            future = asyncio.get_running_loop().run_in_executor(pool, job, watch)
            try:
                return await self._outcome(future)
            except asyncio.CancelledError:
                # The thread cannot be stopped, only its query: wait for it before letting go.
                watch.cancel("the request was cancelled")
                await self._until_done_or_abandoned(future)
                raise
            finally:
                self._watches.discard(watch)
