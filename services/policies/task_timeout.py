"""Fails an attempt that runs past its task's ``timeout_s``, whether or not it heartbeats.

The attempt's deadline is on its lease (``TaskLeased.attempt_deadline``): start-to-close,
as Temporal's activity timeout. The failure is of class ``timeout``, so the task is
retried or failed by that class's rule; its lease ends (the slot frees) and its epoch is
void, so the old holder's later commands are refused with ``lease_mismatch``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from events import utc_now
from events.commands.task import TimeOutTask
from services.domain.claims import TaskBoard
from services.domain.task import TaskState

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["TaskTimeoutPolicy"]


class TaskTimeoutPolicy(Policy):
    """Every ``interval_s``, times out the attempts past their deadline on the board."""

    name = "task-timeout"

    def __init__(self, sender: CommandSender, board: TaskBoard, interval_s: float = 1.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(sender, interval_s)
        self._board = board
        self._clock = clock

    async def act(self) -> int:
        """Times out every attempt past its deadline now; returns how many."""
        return await self.each(self._board.timed_out(self._clock()), self._time_out,
                               self._board.time_out_again)

    async def _time_out(self, task: TaskState) -> int:
        return await self.issue(TimeOutTask(
            task_id=task.task_id, lease_epoch=task.lease_epoch,
            command_id=policy_command_id("timeout", task.task_id, task.lease_epoch)))
