"""Releases reservations nobody will settle: their task or lease ended, their worker was lost,
or they expired.

Without it a crashed caller would hold budget forever: admissions count live
reservations, so a leaked one would refuse work that fits. Each release's id names its
trigger (the event's sequence, or the expiry), so replicas reaping the same reservation
write it once; one that was settled meanwhile is refused, which is the expected race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from events import utc_now
from events.catalog.reservation import ReleaseReason
from events.codec import StoredEvent
from events.commands.reservation import ReleaseReservation
from services.domain.charges import Hold, Ledgers

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["ReservationReaperPolicy"]

_TASK_ENDS: dict[str, ReleaseReason] = {
    "TaskSucceeded": "task_ended", "TaskFailed": "task_ended", "TaskCancelled": "task_ended",
    "TaskRetryScheduled": "task_ended", "TaskLeaseExpired": "lease_expired",
}

_RUNLOG_ENDED: dict[str, ReleaseReason] = {"lease_expired": "lease_expired",
                                           "worker_lost": "worker_lost"}
"""Attempts runlog itself ended, by the error class it recorded."""


class ReservationReaperPolicy(Policy):
    """Releases the live reservations of ended tasks and lost workers, and expired ones."""

    name = "reservation-reaper"
    aggregates = frozenset({"task", "worker"})

    def __init__(self, sender: CommandSender, ledgers: Ledgers, interval_s: float = 0.5,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(sender, interval_s)
        self._ledgers = ledgers
        self._clock = clock
        self._triggers: list[tuple[int, ReleaseReason, list[Hold]]] = []

    def note(self, stored: StoredEvent) -> bool:
        """An attempt's end or a lost worker: its live reservations are to be released."""
        reason = _TASK_ENDS.get(stored.type)
        if reason is not None and stored.data.get("error_class") in _RUNLOG_ENDED:
            reason = _RUNLOG_ENDED[str(stored.data["error_class"])]
        if reason is not None:
            holds = self._ledgers.holds_of_task(stored.aggregate_id)
        elif stored.type == "WorkerLost":
            reason, holds = "worker_lost", self._ledgers.holds_of_worker(stored.aggregate_id)
        else:
            return False
        if holds:
            self._triggers.append((stored.seq, reason, holds))
        return bool(holds)

    async def act(self) -> int:
        """Releases what the triggers noted, then every reservation past its expiry."""
        triggers, self._triggers = self._triggers, []
        released = await self.each(triggers, self._release_all, self._keep)
        for hold in self._ledgers.lapsed(self._clock()):  # found again at each round
            released += await self._release(hold, "expired", hold.expires_at.isoformat())
        return released

    async def _release_all(self, trigger: tuple[int, ReleaseReason, list[Hold]]) -> int:
        seq, reason, holds = trigger
        # Those released by now are passed over (``_release``) if the trigger comes again.
        return sum([await self._release(hold, reason, seq) for hold in holds])

    def _keep(self, triggers: Sequence[tuple[int, ReleaseReason, list[Hold]]]) -> None:
        self._triggers[:0] = triggers  # before those noted since, in stream order

    async def _release(self, hold: Hold, reason: ReleaseReason, trigger: object) -> bool:
        if self._ledgers.hold(hold.reservation_id) is None:
            return False  # settled or released since it was noted
        return await self.issue(ReleaseReservation(
            reservation_id=hold.reservation_id, reason=reason,
            command_id=policy_command_id("reap", hold.reservation_id, reason, trigger)))
