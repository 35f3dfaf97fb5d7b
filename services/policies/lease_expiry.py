"""Voids leases whose holder stopped heartbeating, so the task is retried or failed.

Without it a crashed worker would hold its task (and its slot) forever: the
double-execution-or-leak failure every job queue must avoid. The old holder's
later start/heartbeat/succeed/fail carry a void epoch and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from events import utc_now
from events.commands.task import ExpireTaskLease
from services.domain.claims import TaskBoard
from services.domain.task import TaskState

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["LeaseExpiryPolicy"]


class LeaseExpiryPolicy(Policy):
    """Every ``interval_s``, expires the lapsed leases on the board of open tasks."""

    name = "lease-expiry"

    def __init__(self, sender: CommandSender, board: TaskBoard, interval_s: float = 1.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(sender, interval_s)
        self._board = board
        self._clock = clock

    async def act(self) -> int:
        """Expires every lease lapsed by now; returns how many it expired."""
        return await self.each(self._board.lapsed_leases(self._clock()), self._expire,
                               self._board.lapse_again)

    async def _expire(self, task: TaskState) -> int:
        # The id names the expiry it saw: a heartbeat this replica had not seen yet
        # makes the expiry refused, and the later, real lapse must not get that answer.
        return await self.issue(ExpireTaskLease(
            task_id=task.task_id, lease_epoch=task.lease_epoch,
            command_id=policy_command_id("expire", task.task_id, task.lease_epoch,
                                         task.lease_expires_at)))
