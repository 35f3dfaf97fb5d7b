"""A partition of the log whose admissions are exact: claims are decided on all of it.

Each task event is on its own task's subject, under ``runlog.evt.task.*``. A claim is
appended with ``Nats-Expected-Last-Subject-Sequence-Subject: runlog.evt.task.*``: the
server takes it only if no task event landed after the last one the claim was decided
on. Every other task command appends under its own task's optimistic concurrency and
runs concurrently; a claim waits for those of this replica to be acknowledged (it is
exclusive here), then for the follower to have passed every task event it knows of, so
the board it decides on holds every task event up to the sequence it expects.

Another replica's task event that landed meanwhile makes the claim conflict; the
server's answer names the last sequence, the follower is awaited past it, and the
claim is decided again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from services.store import EventStore, Expectation, RecordedEvent

from .gate import Gate

__all__ = ["Partition", "complete_partition"]


class Partition:
    """The guard of one subject filter: a shared/exclusive gate and the last sequence known."""

    def __init__(self, subject_filter: str) -> None:
        self.subject_filter = subject_filter
        self.last_seq = 0
        """The highest sequence of an event in this partition this process knows of."""
        self.known_through = 0
        """Every event of the partition up to this sequence is known here (not just some)."""
        self._gate = Gate()

    def saw(self, seq: int) -> None:
        """Notes an event of the partition at ``seq`` (own write, follower or reload)."""
        if seq > self.last_seq:
            self.last_seq = seq

    def known_up_to(self, seq: int) -> None:
        """Notes that every event of the partition up to ``seq`` is known here."""
        if seq > self.known_through:
            self.known_through = seq
        self.saw(seq)

    def expectation(self) -> Expectation:
        """The guard of an admission decided on everything known now."""
        return Expectation(self.last_seq, self.subject_filter)

    def shared(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by an ordinary write to the partition (see ``Gate``)."""
        return self._gate.shared()

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by an admission (a claim), once every ordinary write is acknowledged."""
        return self._gate.exclusive()


async def complete_partition(partition: Partition, store: EventStore, follower_position: int,
                             observe: Callable[[RecordedEvent], None]) -> None:
    """Makes sure every event of the partition up to its last known one is observed.

    Everything up to the follower's position is known, and so is everything up to a
    point this replica read or admitted at; past both, only this replica's own writes
    are: another replica's event between them is read from the log here.
    """
    known = max(follower_position, partition.known_through)
    if known >= partition.last_seq:
        return
    recorded = await store.read_subject(partition.subject_filter, known + 1)
    for event in recorded:
        observe(event)
    partition.known_up_to(recorded[-1].seq if recorded else partition.last_seq)
