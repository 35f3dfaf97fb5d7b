"""Retires a draining worker once it holds nothing: ``worker.deregister`` takes it offline.

A worker's held tasks are its live leases, so the last lease's end is a task event,
not a worker one; this policy notes draining workers and the ends of their leases.
"""

from __future__ import annotations

from events.codec import StoredEvent
from events.commands.worker import DeregisterWorker
from services.domain.claims import TaskBoard

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["WorkerDrainPolicy"]


class WorkerDrainPolicy(Policy):
    """Deregisters every draining worker whose last lease has ended."""

    name = "worker-drain"
    aggregates = frozenset({"worker", "task"})

    def __init__(self, sender: CommandSender, board: TaskBoard, interval_s: float = 1.0
                 ) -> None:
        super().__init__(sender, interval_s)
        self._board = board
        self._draining: dict[str, int] = {}

    def note(self, stored: StoredEvent) -> bool:
        """Tracks draining workers; any task event may have ended one's last lease."""
        if stored.aggregate == "worker":
            if stored.to_state == "draining":
                self._draining[stored.aggregate_id] = stored.seq
            else:
                self._draining.pop(stored.aggregate_id, None)
        return bool(self._draining)

    async def act(self) -> int:
        """Deregisters the draining workers that hold nothing now."""
        retired = 0
        for worker_id, since in list(self._draining.items()):
            if self._board.held_by(worker_id):
                continue
            retired += await self.issue(DeregisterWorker(
                worker_id=worker_id, command_id=policy_command_id("retire", worker_id, since)))
        return retired
