"""A shared/exclusive gate with direct hand-over: many writers at once, or one admission.

Phase-fair: while an admission waits, newcomers wait too (so admissions are not
starved); admissions that queue up go one after another, up to ``MAX_BURST`` (each
costs one append round trip, the writes would cost one more in between); then every
writer that was waiting goes before the next admission (so writers are not starved by
a stream of claims). A waiter is woken only when it may enter, with its turn already
taken for it: nobody re-checks a condition, so hundreds of waiters cost nothing extra.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

__all__ = ["MAX_BURST", "Gate"]

MAX_BURST = 32
"""Admissions served back to back before the waiting writers get their turn."""


class Gate:
    """Writers share it; an admission holds it alone."""

    def __init__(self) -> None:
        self._writers = 0
        self._admitting = False
        self._burst = 0
        self._waiting_writers: list[asyncio.Future[None]] = []
        self._waiting_admissions: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Held by an ordinary write: many at once, none during an admission."""
        if not self._admitting and not self._waiting_admissions:
            self._writers += 1
        else:
            await self._wait(self._waiting_writers)
        try:
            yield
        finally:
            self._writers -= 1
            if not self._writers:
                self._next_admission()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Held by an admission (a claim): alone, once every write in flight is done."""
        if not self._admitting and not self._writers and not self._waiting_writers:
            self._admitting = True
        else:
            await self._wait(self._waiting_admissions)
        try:
            yield
        finally:
            self._release_admission()

    async def _wait(self, queue: list[asyncio.Future[None]] | deque[asyncio.Future[None]]
                    ) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # The turn was handed over just as the waiter was cancelled: pass it on.
                self._give_back(queue is self._waiting_admissions)
            else:
                queue.remove(turn)
            raise

    def _give_back(self, admission: bool) -> None:
        if admission:
            self._release_admission()
            return
        self._writers -= 1
        if not self._writers:
            self._next_admission()

    def _release_admission(self) -> None:
        self._admitting = False
        self._burst += 1
        if self._waiting_admissions and (self._burst < MAX_BURST or not self._waiting_writers):
            self._hand_over_admission()
            return
        self._burst = 0
        if self._waiting_writers:
            self._admit_writers()
        elif self._waiting_admissions:
            self._hand_over_admission()

    def _admit_writers(self) -> None:
        waiting, self._waiting_writers = self._waiting_writers, []
        for turn in waiting:
            self._writers += 1
            turn.set_result(None)

    def _next_admission(self) -> None:
        if self._waiting_admissions and not self._admitting:
            self._hand_over_admission()
        elif self._waiting_writers and not self._admitting:
            self._admit_writers()

    def _hand_over_admission(self) -> None:
        self._admitting = True
        self._waiting_admissions.popleft().set_result(None)
