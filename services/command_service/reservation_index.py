"""The reservation repository and the budget ledgers: the admission index of this replica.

Every reservation event passes through here, from this replica's own writes and from
the log follower, and is folded into the ledgers once (by its sequence). Reservations
share one partition of the log (``runlog.evt.reservation.*``): a new one is appended
guarded by all of it, like a claim (services/command_service/partition.py), so it is
decided on every reservation before it, on any replica.
"""

from __future__ import annotations

from events import events_filter
from events.base import DomainEvent
from events.catalog.reservation import BudgetReserved, ReservationReleased
from events.codec import DecodeError, EventCodec, StoredEvent
from services.domain.charges import Ledgers
from services.domain.registry import RESERVATION
from services.domain.reservation import ReservationState
from services.store import EventStore

from .partition import Partition, complete_partition
from .repositories import Loaded, Repository

__all__ = ["ReservationRepository"]


class ReservationRepository(Repository[ReservationState]):
    """Reservations (cached like any aggregate) and the ledgers every one of them feeds."""

    def __init__(self, store: EventStore, codec: EventCodec, ledgers: Ledgers,
                 max_entries: int = 50_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__(RESERVATION, store, codec, max_entries, max_bytes)
        self.ledgers = ledgers
        self.partition = Partition(events_filter("reservation", store.subject_prefix))

    def apply(self, loaded: Loaded[ReservationState], event: DomainEvent, seq: int,
              command_id: str, size: int, evolved: ReservationState | None = None) -> None:
        """Applies one event to the aggregate, and to the ledgers."""
        super().apply(loaded, event, seq, command_id, size, evolved)
        self._fold(event, seq)
        self.partition.saw(seq)

    def _fold(self, event: DomainEvent, seq: int) -> None:
        if isinstance(event, BudgetReserved):
            self.ledgers.reserved(event, seq)
        elif isinstance(event, ReservationReleased):
            self.ledgers.released(event, seq)

    def observe(self, stored: StoredEvent) -> None:
        """Folds every reservation event into the ledgers, cached or not."""
        self.partition.saw(stored.seq)
        if self.cached(stored.aggregate_id) is not None:
            super().observe(stored)
            return
        try:
            self._fold(self.codec.typed(stored), stored.seq)
        except DecodeError:
            return  # recorded in projection_errors by the read side

    async def get(self, aggregate_id: str) -> Loaded[ReservationState]:
        """The reservation; one the ledgers never saw is taken as new, without a read.

        A new reservation is the common case (every ``budget.reserve``), and reading its
        empty subject would cost a round trip inside the partition's admission. One that
        another replica wrote meanwhile is found all the same: a reserve's append is
        guarded by the whole partition, and any other decision refused on it is made
        again after a reload (``CommandService``'s rereads).
        """
        if self.cached(aggregate_id) is None and not self.ledgers.knows(aggregate_id):
            loaded: Loaded[ReservationState] = Loaded(self.aggregate, aggregate_id)
            self.remember(loaded)
            return loaded
        return await super().get(aggregate_id)

    async def complete(self, follower_position: int) -> None:
        """Makes sure every reservation event up to the partition's last one is folded."""
        await complete_partition(self.partition, self.store, follower_position,
                                 lambda recorded: self.observe(self.decode(recorded)))
