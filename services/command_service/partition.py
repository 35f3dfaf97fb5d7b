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

import asyncio
import contextlib
from collections.abc import AsyncIterator

from services.store import Expectation

__all__ = ["MAX_BURST", "Partition"]

MAX_BURST = 32
"""Admissions (claims) served back to back before the waiting writes get their turn."""


class Partition:
    """The guard of one subject filter: a shared/exclusive gate and the last sequence known."""

    def __init__(self, subject_filter: str) -> None:
        self.subject_filter = subject_filter
        self.last_seq = 0
        """The highest sequence of an event in this partition this process knows of."""
        self.known_through = 0
        """Every event of the partition up to this sequence is known here (not just some)."""
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0
        self._ticket = 0
        self._admit_until = 0
        self._burst = 0
        self._waiting_shared: set[int] = set()
        self._changed = asyncio.Condition()

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

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Held by an ordinary write to the partition: many at once, none during an admission.

        Phase-fair: while an admission waits, newcomers wait too (so admissions are not
        starved); admissions that queue up go one after another, up to ``MAX_BURST``
        (each costs one append round trip, the writes would cost one more in between);
        then the writes that were waiting go before the next admission (so writes are not
        starved by a stream of claims).
        """
        async with self._changed:
            self._ticket += 1
            ticket = self._ticket
            self._waiting_shared.add(ticket)
            try:
                await self._changed.wait_for(lambda: not self._exclusive and (
                    not self._waiting_exclusive or ticket <= self._admit_until))
            finally:
                self._waiting_shared.discard(ticket)
            self._shared += 1
        try:
            yield
        finally:
            async with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Held by an admission (a claim): alone, once every ordinary write is acknowledged."""
        async with self._changed:
            self._waiting_exclusive += 1
            try:
                await self._changed.wait_for(self._exclusive_may_enter)
            finally:
                self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._burst += 1
                if not self._waiting_exclusive or self._burst >= MAX_BURST:
                    self._admit_until = self._ticket
                    self._burst = 0
                self._changed.notify_all()

    def _exclusive_may_enter(self) -> bool:
        admitted = any(t <= self._admit_until for t in self._waiting_shared)
        return not self._exclusive and not self._shared and not admitted
