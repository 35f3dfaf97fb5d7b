"""A worker: registers, claims up to its capacity, runs a handler per task under a fenced lease.

The heartbeat rule: a task's lease is extended every ``heartbeat_interval_s`` only while
its handler shows progress (``progress()``, ``heartbeat()``, ``record_usage()``) within
the last ``stall_timeout_s``. A handler silent for longer is taken as hung: its lease is
no longer extended, it is cancelled, and the attempt fails with error class ``timeout``
(retried by runlog while attempts remain). A handler that blocks the event loop stops
every heartbeat with it, so its lease lapses and runlog expires it.

Fencing: start, heartbeat, succeed and fail carry the lease epoch. When runlog answers
``lease_mismatch`` (or the task has moved on: ``invalid_transition``, ``not_found``),
another holder took over or the task ended: the worker cancels the handler if it still
runs and abandons the result, neither succeeding nor failing the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal

from events.catalog.task import ReportedErrorClass
from events.errors import ErrorCode

from .client import Client
from .errors import CommandError, LeaseLost, TaskFailure, error_class_of
from .replies import ClaimedTask, Reply
from .task_context import TaskContext

__all__ = ["Handler", "TaskEnd", "Worker", "WorkerConfig"]

log = logging.getLogger(__name__)

Handler = Callable[[TaskContext], Awaitable[Mapping[str, object] | None]]
"""Runs one task; returns its result (or None), or raises (see ``error_class_of``)."""

_MIN_HEARTBEAT_S = 0.1
_MAX_HEARTBEAT_S = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerConfig:
    """How a worker paces itself."""

    heartbeat_interval_s: float | None = None
    """Seconds between task heartbeats; None: a third of the lease time the claim granted."""
    stall_timeout_s: float = 120.0
    """A handler reporting no progress for this long is hung (see the module's rule)."""
    idle_backoff_initial_s: float = 0.05
    """The first pause after a claim found no task; it doubles (with jitter) up to the max."""
    idle_backoff_max_s: float = 2.0
    liveness_interval_s: float = 20.0
    """Seconds between ``worker.heartbeat``s; keep it under ``RUNLOG_WORKER_TIMEOUT_S``."""
    handle_signals: bool = True
    """SIGTERM and SIGINT drain every such worker of the process; a second signal abandons
    what still runs. Off: the caller decides when to ``stop()``."""


@dataclass(frozen=True, slots=True)
class TaskEnd:
    """How one claimed task ended for this worker."""

    task: ClaimedTask
    outcome: Literal["succeeded", "failed", "abandoned"]
    """``failed``: this attempt failed (``reply.events`` tells whether runlog retries it);
    ``abandoned``: the lease was lost, or the final command got no answer."""
    reply: Reply | None = None
    """The ``task.succeed`` / ``task.fail`` reply."""
    error_class: str | None = None
    error: BaseException | None = None
    """What the handler raised (failed), or why the result was dropped (abandoned)."""


class _Keeper(Enum):
    """Why the lease keeper stopped before the handler did."""

    LOST = "lease lost"
    STALLED = "handler stalled"


class _SignalFanout:
    """One SIGTERM/SIGINT handler for every worker running in the loop: a signal drains them all."""

    def __init__(self) -> None:
        self.workers: set[Worker] = set()
        self.installed: list[signal.Signals] = []

    def add(self, worker: Worker) -> None:
        if not self.workers:
            self._install()
        self.workers.add(worker)

    def discard(self, worker: Worker) -> None:
        self.workers.discard(worker)
        if not self.workers:
            loop = asyncio.get_running_loop()
            for signum in self.installed:
                loop.remove_signal_handler(signum)
            self.installed.clear()

    def _install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Not on the main thread, or not on Unix: the caller stops the worker itself.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._stop_all)
                self.installed.append(signum)

    def _stop_all(self) -> None:
        for worker in list(self.workers):
            worker.stop()


_SIGNALS = _SignalFanout()


class Worker:
    """Runs ``handler`` for each task runlog leases to ``worker_id``, ``capacity`` at a time."""

    def __init__(self, client: Client, worker_id: str, handler: Handler, *,
                 kinds: Sequence[str] = (), capacity: int = 1,
                 config: WorkerConfig | None = None,
                 on_task_end: Callable[[TaskEnd], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.client = client
        self.worker_id = worker_id
        self.handler = handler
        self.kinds = list(kinds)
        self.capacity = capacity
        self.config = config or WorkerConfig()
        self.on_task_end = on_task_end
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._drain_sent: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        """How many tasks are in flight now."""
        return len(self._running)

    def stop(self) -> None:
        """Drains: claims no more, finishes what runs, then deregisters; twice: abandons it."""
        if self._stopping.is_set():
            for task in self._running:
                task.cancel()
            return
        self._stopping.set()
        self._drain_sent = asyncio.ensure_future(self._send_drain())

    async def run(self) -> None:
        """Registers, works until ``stop()`` (or a signal), drains and deregisters."""
        await self._register()
        with self._signals():
            liveness = asyncio.create_task(self._liveness())
            try:
                await self._claim_loop()
                if self._running:
                    await asyncio.wait(self._running)
            finally:
                # Nothing is left running on a normal exit; a cancelled run() takes its
                # tasks with it (their leases lapse) rather than leaving them behind.
                leftovers = [liveness, *self._running]
                for running in leftovers:
                    running.cancel()
                await asyncio.gather(*leftovers, return_exceptions=True)
        if self._drain_sent is not None:
            await self._drain_sent
        await self._deregister()

    # -- registration and liveness -------------------------------------------------

    async def _register(self) -> None:
        try:
            await self.client.register_worker(worker_id=self.worker_id, kinds=self.kinds,
                                              capacity=self.capacity)
        except CommandError as error:
            if error.code != ErrorCode.ALREADY_EXISTS:
                raise
            # A restart under the same id: the earlier registration still stands, and
            # leases it held lapse on their own.
            log.warning("worker %s is already registered; working under it", self.worker_id)

    async def _liveness(self) -> None:
        while True:
            await asyncio.sleep(self.config.liveness_interval_s)
            try:
                await self.client.heartbeat_worker(worker_id=self.worker_id)
            except CommandError as error:
                log.warning("worker heartbeat of %s failed: %s", self.worker_id, error)

    async def _send_drain(self) -> None:
        try:
            await self.client.drain_worker(worker_id=self.worker_id)
        except CommandError as error:
            log.warning("worker.drain of %s failed: %s", self.worker_id, error)

    async def _deregister(self) -> None:
        try:
            await self.client.deregister_worker(worker_id=self.worker_id)
        except CommandError as error:
            # invalid_transition: already offline (a drain with nothing held ends there).
            if error.code != ErrorCode.INVALID_TRANSITION:
                log.warning("worker.deregister of %s failed: %s", self.worker_id, error)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.config.handle_signals:
            yield
            return
        _SIGNALS.add(self)
        try:
            yield
        finally:
            _SIGNALS.discard(self)

    # -- claiming ------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        """Claims while a slot is free, pausing (jittered, growing) when nothing is claimable."""
        idle_pauses = 0
        while not self._stopping.is_set():
            if len(self._running) >= self.capacity:
                self._slot_freed.clear()
                await self._until(self._slot_freed, None)
                continue
            task = await self._claim()
            if task is None:
                await self._until(self._stopping, self._idle_pause(idle_pauses))
                idle_pauses += 1
                continue
            idle_pauses = 0
            self._start(task)

    async def _claim(self) -> ClaimedTask | None:
        try:
            reply = await self.client.claim_task(worker_id=self.worker_id,
                                                 kinds=self.kinds or None)
        except CommandError as error:
            if not self._stopping.is_set():
                log.warning("claim by %s refused: %s", self.worker_id, error)
            return None
        return reply.task

    def _idle_pause(self, pauses: int) -> float:
        ceiling = min(self.config.idle_backoff_max_s,
                      self.config.idle_backoff_initial_s * 2 ** min(pauses, 30))
        return random.uniform(ceiling / 2, ceiling)

    async def _until(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Waits for ``event`` (or for stopping), at most ``timeout_s``."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    def _start(self, task: ClaimedTask) -> None:
        running = asyncio.create_task(self._work(task), name=f"runlog task {task.task_id}")
        self._running.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Task[None]) -> None:
        self._running.discard(running)
        self._slot_freed.set()

    # -- one task ------------------------------------------------------------------

    async def _work(self, task: ClaimedTask) -> None:
        try:
            end = await self._run_task(TaskContext(self.client, self.worker_id, task))
        except Exception:
            log.exception("worker %s failed on task %s", self.worker_id, task.task_id)
            return
        if end.outcome == "abandoned":
            log.warning("task %s abandoned by %s: %s", task.task_id, self.worker_id, end.error)
        if self.on_task_end is not None:
            try:
                self.on_task_end(end)
            except Exception:
                log.exception("on_task_end of %s failed for task %s", self.worker_id,
                              task.task_id)

    async def _run_task(self, ctx: TaskContext) -> TaskEnd:
        try:
            await self.client.start_task(task_id=ctx.task_id, worker_id=self.worker_id,
                                         lease_epoch=ctx.task.lease_epoch)
        except CommandError as error:
            return TaskEnd(ctx.task, "abandoned", error=error)
        handler = asyncio.create_task(self._call(ctx))
        keeper = asyncio.create_task(self._keep_lease(ctx))
        try:
            await asyncio.wait({handler, keeper}, return_when=asyncio.FIRST_COMPLETED)
            handler_ended = handler.done()
        finally:
            # Whichever finished first (or a cancellation of the worker) ends the other.
            for running in (handler, keeper):
                running.cancel()
            await asyncio.gather(handler, keeper, return_exceptions=True)
        if handler_ended:
            return await self._finish(ctx, handler)
        if keeper.result() is _Keeper.LOST:
            return TaskEnd(ctx.task, "abandoned", error=ctx.lost)
        return await self._fail(ctx, "timeout",
                                f"no progress for {self.config.stall_timeout_s:g} s", None)

    async def _call(self, ctx: TaskContext) -> Mapping[str, object] | None:
        return await self.handler(ctx)

    async def _keep_lease(self, ctx: TaskContext) -> _Keeper:
        """Extends the lease on schedule while the handler progresses; returns why it stopped."""
        interval = self._heartbeat_interval(ctx.task)
        stall = self.config.stall_timeout_s
        while True:
            await asyncio.sleep(max(0.0, min(interval - ctx.since_heartbeat_s(),
                                             stall - ctx.idle_s())))
            if ctx.lost is not None:
                return _Keeper.LOST
            if ctx.idle_s() >= stall:
                return _Keeper.STALLED
            if ctx.since_heartbeat_s() < interval:
                continue  # the handler's own heartbeat() did it
            try:
                await ctx.extend_lease()
            except LeaseLost:
                return _Keeper.LOST
            except CommandError as error:
                log.warning("heartbeat of task %s failed: %s", ctx.task_id, error)

    def _heartbeat_interval(self, task: ClaimedTask) -> float:
        if self.config.heartbeat_interval_s is not None:
            return self.config.heartbeat_interval_s
        granted_s = (task.lease_expires_at - datetime.now(UTC)).total_seconds()
        return min(max(granted_s / 3, _MIN_HEARTBEAT_S), _MAX_HEARTBEAT_S)

    async def _finish(self, ctx: TaskContext, handler: asyncio.Task[Mapping[str, object] | None]
                      ) -> TaskEnd:
        if handler.cancelled():
            return TaskEnd(ctx.task, "abandoned", error=asyncio.CancelledError())
        error = handler.exception()
        if isinstance(error, LeaseLost):
            return TaskEnd(ctx.task, "abandoned", error=error)
        if error is not None:
            error_class, message = error_class_of(error)
            retry_after = error.retry_after_s if isinstance(error, TaskFailure) else None
            return await self._fail(ctx, error_class, message, error, retry_after)
        return await self._succeed(ctx, handler.result())

    async def _succeed(self, ctx: TaskContext, result: Mapping[str, object] | None) -> TaskEnd:
        try:
            reply = await self.client.succeed_task(
                task_id=ctx.task_id, worker_id=self.worker_id,
                lease_epoch=ctx.task.lease_epoch, result=result)
        except CommandError as error:
            if error.lease_gone or error.retryable:
                return TaskEnd(ctx.task, "abandoned", error=error)
            # The result itself was refused (too large, not JSON): the handler's bug.
            return await self._fail(ctx, "unknown", f"result refused: {error.message}", error)
        return TaskEnd(ctx.task, "succeeded", reply)

    async def _fail(self, ctx: TaskContext, error_class: ReportedErrorClass, message: str,
                    error: BaseException | None, retry_after_s: float | None = None
                    ) -> TaskEnd:
        try:
            reply = await self.client.fail_task(
                task_id=ctx.task_id, worker_id=self.worker_id,
                lease_epoch=ctx.task.lease_epoch, error_class=error_class, message=message,
                retry_after_s=retry_after_s)
        except CommandError as refused:
            return TaskEnd(ctx.task, "abandoned", error=refused)
        return TaskEnd(ctx.task, "failed", reply, error_class, error)
