"""Marks a worker ``lost`` when it has sent no heartbeat for ``timeout_s``.

A lost worker takes no new claims; the leases of the tasks it held expire on their
own (the lease policy), so they are retried. A heartbeat brings the worker back. The
command id names the worker and the sequence of its last sign of life, so replicas
noticing the same silence mark it lost once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from events import utc_now
from events.codec import StoredEvent, parse_time
from events.commands.worker import MarkWorkerLost

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["WorkerLivenessPolicy"]

_ALIVE = frozenset({"idle", "busy", "draining"})


@dataclass(slots=True)
class _LastSign:
    state: str
    at: datetime
    seq: int


class WorkerLivenessPolicy(Policy):
    """Every ``interval_s``, marks lost the live workers silent for more than ``timeout_s``."""

    name = "worker-liveness"
    aggregates = frozenset({"worker"})

    def __init__(self, sender: CommandSender, timeout_s: float = 90.0, interval_s: float = 1.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(sender, interval_s)
        self._timeout = timedelta(seconds=timeout_s)
        self._clock = clock
        self._workers: dict[str, _LastSign] = {}

    def note(self, stored: StoredEvent) -> bool:
        """Keeps each worker's state and last sign of life (registration or heartbeat)."""
        last = self._workers.get(stored.aggregate_id)
        sign = stored.data.get("at")
        state = stored.to_state or "offline"
        if sign is not None:
            self._workers[stored.aggregate_id] = _LastSign(state, parse_time(sign), stored.seq)
        elif last is not None:
            last.state = state
        return False

    async def act(self) -> int:
        """Marks lost every live worker silent since before ``now - timeout``."""
        now = self._clock()
        marked = 0
        for worker_id, last in list(self._workers.items()):
            if last.state not in _ALIVE or now - last.at <= self._timeout:
                continue
            command_id = policy_command_id("lost", worker_id, last.seq)
            if await self.issue(MarkWorkerLost(worker_id=worker_id, command_id=command_id)):
                marked += 1
                last.state = "lost"
        return marked
