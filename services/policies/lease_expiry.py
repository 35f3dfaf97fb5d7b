"""Voids leases whose holder stopped heartbeating, so the task is retried or failed.

Without it a crashed worker would hold its task (and its slot) forever: the
double-execution-or-leak failure every job queue must avoid. The old holder's
later start/heartbeat/succeed/fail carry a stale epoch and are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging

from events import utc_now
from services.command_service import CommandExecutor

from .ids import policy_command_id

__all__ = ["LeaseExpiryPolicy"]

log = logging.getLogger(__name__)


class LeaseExpiryPolicy:
    """Every ``interval_s``, expires the lapsed leases the claim index knows of."""

    def __init__(self, executor: CommandExecutor, interval_s: float = 1.0) -> None:
        self._executor = executor
        self._interval_s = interval_s

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.sweep()

    async def sweep(self) -> int:
        """Expires every lease lapsed by now; returns how many it expired."""
        expired = 0
        for task_id, epoch, expires_at in self._executor.task_index.lapsed_leases(utc_now()):
            # The id names the expiry it saw: a heartbeat this index had not seen yet makes
            # the expiry refused, and the later, real lapse must not get that answer again.
            body = {"task_id": task_id, "lease_epoch": epoch,
                    "command_id": policy_command_id("expire", task_id, epoch, expires_at)}
            reply = await self._executor.execute("task.expire_lease", json.dumps(body).encode())
            if reply["ok"]:
                expired += 1
            else:
                log.info("lease of %s (epoch %d) not expired: %s", task_id, epoch,
                         reply["error"]["message"])
        return expired
