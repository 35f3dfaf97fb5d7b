"""When a run ends, its unfinished tasks are cancelled, so no worker spends money on them.

It notes every run that ends as the log passes, and cancels the run's open tasks on
the board, each cancel's id derived from the run and the task. A task submitted in
the very instant its run ended (decided while the run still ran) is caught too: its
submission is noted, and a task of an ended run is cancelled like the others.
"""

from __future__ import annotations

from collections import OrderedDict

from events.codec import StoredEvent
from events.commands.task import CancelTask
from services.domain.claims import TaskBoard
from services.telemetry import policy_span

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["RUN_ENDINGS", "RunEndPolicy"]

RUN_ENDINGS = frozenset({"RunSucceeded", "RunFailed", "RunCancelled"})
_ENDED_KEPT = 100_000


class RunEndPolicy(Policy):
    """Cancels the open tasks of every run that ends."""

    name = "run-end"
    aggregates = frozenset({"run", "task"})

    def __init__(self, sender: CommandSender, board: TaskBoard, interval_s: float = 1.0
                 ) -> None:
        super().__init__(sender, interval_s)
        self._board = board
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._due: set[str] = set()
        self._triggers: dict[str, str | None] = {}

    def note(self, stored: StoredEvent) -> bool:
        """Remembers ended runs; a task of one (or the ending itself) makes the run due."""
        if stored.type in RUN_ENDINGS:
            self._ended[stored.aggregate_id] = stored.type
            self._triggers[stored.aggregate_id] = stored.traceparent  # until it is acted on
            while len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
            self._due.add(stored.aggregate_id)
            return True
        if stored.type == "TaskSubmitted" and stored.data.get("run_id") in self._ended:
            self._due.add(str(stored.data["run_id"]))
            return True
        return False

    async def act(self) -> int:
        """Cancels every open task of the runs that ended since the last time."""
        due, self._due = self._due, set()
        return await self.each(
            sorted(due), lambda run_id: self.cancel_open_tasks(
                run_id, self._ended.get(run_id, "ended")), self._due.update)

    async def cancel_open_tasks(self, run_id: str, ending: str) -> int:
        """Cancels every open task of ``run_id``; returns how many it cancelled."""
        cancelled = 0
        trigger = self._triggers.get(run_id)
        with policy_span(self.name, {"traceparent": trigger} if trigger else None) as headers:
            for task_id in self._board.open_tasks(run_id):
                cancelled += await self.issue(CancelTask(
                    task_id=task_id, reason=f"run {run_id} ended ({ending})",
                    command_id=policy_command_id("run-end", run_id, task_id)), headers)
        self._triggers.pop(run_id, None)  # kept until the run's tasks are all seen to
        return cancelled
