"""What a task handler gets: its task, progress reporting, heartbeats and usage recording."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from .client import Client
from .errors import CommandError, LeaseLost
from .replies import ClaimedTask, Reply

__all__ = ["TaskContext"]


class TaskContext:
    """One leased task as its handler sees it.

    The handler shows it is alive by calling ``progress()`` (or ``heartbeat()``, or
    ``record_usage()``); the worker heartbeats the lease only while it does (see
    ``WorkerConfig.stall_timeout_s``).
    """

    def __init__(self, client: Client, worker_id: str, task: ClaimedTask) -> None:
        self.client = client
        """The worker's client, for any other command (breakers, sub-tasks, ...)."""
        self.worker_id = worker_id
        self.task = task
        self.lost: LeaseLost | None = None
        """Set once the lease is known lost; the result will be abandoned."""
        self._last_progress = time.monotonic()
        self._last_heartbeat = self._last_progress

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id

    @property
    def run_id(self) -> str:
        """The run the task belongs to."""
        return self.task.run_id

    @property
    def payload(self) -> dict[str, Any]:
        """The task's payload, as submitted."""
        return self.task.payload

    def progress(self) -> None:
        """Reports that the handler is making progress, so the worker keeps its lease alive."""
        self._last_progress = time.monotonic()

    def idle_s(self) -> float:
        """Seconds since the handler last reported progress."""
        return time.monotonic() - self._last_progress

    def since_heartbeat_s(self) -> float:
        """Seconds since the lease was last extended (or the task started)."""
        return time.monotonic() - self._last_heartbeat

    async def heartbeat(self) -> None:
        """Reports progress and extends the lease now; raises ``LeaseLost`` if it is gone."""
        self.progress()
        await self.extend_lease()

    async def extend_lease(self) -> None:
        """Sends ``task.heartbeat`` under this lease; raises ``LeaseLost`` if it is gone."""
        if self.lost is not None:
            raise self.lost
        try:
            await self.client.heartbeat_task(task_id=self.task.task_id, worker_id=self.worker_id,
                                             lease_epoch=self.task.lease_epoch)
        except CommandError as error:
            if error.lease_gone:
                self.lost = LeaseLost(self.task.task_id, error)
                raise self.lost from None
            raise
        self._last_heartbeat = time.monotonic()

    async def record_usage(self, model: str, tokens_in: int, tokens_out: int, *,
                           latency_ms: float | None = None, outcome: str = "ok",
                           cached_tokens_in: int = 0, cache_write_tokens_in: int = 0,
                           provider_cost_usd: Decimal | float | str | None = None,
                           command_id: str | None = None) -> Reply:
        """Records one model call against the task's run, with task and worker filled in.

        ``outcome`` is ``ok`` or the call's error class (``rate_limit``, ``timeout``, ...).
        ``tokens_in`` is the input not read from the prompt cache; ``provider_cost_usd``
        what the provider billed, if it said.
        """
        self.progress()
        return await self.client.record_usage(
            run_id=self.task.run_id, task_id=self.task.task_id, worker_id=self.worker_id,
            model=model, tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms,
            outcome=outcome, cached_tokens_in=cached_tokens_in,
            cache_write_tokens_in=cache_write_tokens_in, provider_cost_usd=provider_cost_usd,
            command_id=command_id)
