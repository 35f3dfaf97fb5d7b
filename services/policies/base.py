"""What every policy shares: it watches the log through the follower and acts on a timer.

A policy is an observer of the one log follower (``wants`` / ``observe``, which only
note what happened and never block) and a loop (``run``) that turns what it noted, or
the clock, into typed commands sent through the command service, the same path a
client's commands take. Each command's id is derived from its trigger, so replicas
racing on the same trigger, or a restart repeating one, write it once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from events.base import Command
from events.codec import StoredEvent
from events.errors import RETRYABLE_CODES

__all__ = ["CommandSender", "Policy", "RetryLater"]

log = logging.getLogger(__name__)

T = TypeVar("T")

class RetryLater(Exception):
    """A command of a policy got a transient answer: nothing was written, and the same
    command (the same id) is to be sent again at the policy's next round."""


class CommandSender(Protocol):
    """Where policies send their commands: the command service."""

    async def send(self, command: Command, headers: Mapping[str, str] | None = None
                   ) -> Mapping[str, object]: ...


class Policy(abc.ABC):
    """A process manager: notes events as they pass, acts every ``interval_s`` and on news."""

    name = "policy"
    aggregates: frozenset[str] = frozenset()
    """The aggregate types whose events it notes."""

    def __init__(self, sender: CommandSender, interval_s: float = 1.0) -> None:
        self.sender = sender
        self.interval_s = interval_s
        self._news = asyncio.Event()

    def wants(self, aggregate: str) -> bool:
        """Whether events of this aggregate type concern it."""
        return aggregate in self.aggregates

    def observe(self, stored: StoredEvent) -> None:
        """Notes one event; wakes the loop when there is something to do."""
        if self.note(stored):
            self._news.set()

    def note(self, stored: StoredEvent) -> bool:
        """Records what the event means for this policy; True when it should act soon."""
        del stored
        return False

    async def run(self) -> None:
        """Acts on news and on the clock until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), self.interval_s)
            self._news.clear()
            try:
                await self.act()
            except RetryLater as later:
                log.warning("%s: %s; it tries again at its next round", self.name, later)
            except Exception:
                # A bug in one round must not stop the policy for good.
                log.exception("%s failed; it acts again at its next round", self.name)

    @abc.abstractmethod
    async def act(self) -> int:
        """Sends whatever commands are due now; returns how many wrote something."""

    async def issue(self, command: Command, headers: Mapping[str, str] | None = None) -> bool:
        """Sends one command; True when it wrote events. Refusals are expected races; a
        transient answer (``RETRYABLE_CODES``: ``conflict``, ``unavailable``) raises
        ``RetryLater``; any other refusal is a race (the state moved on) or a bug
        (``internal``), which sending it again would only repeat."""
        reply = await self.sender.send(command, headers)
        error = reply.get("error")
        if isinstance(error, Mapping):
            if error.get("code") in RETRYABLE_CODES:
                raise RetryLater(f"{command.subject} got {error.get('code')}: "
                                 f"{error.get('message')}")
            log.info("%s: %s refused: %s", self.name, command.subject, error.get("message"))
            return False
        events = reply.get("events")
        return bool(events)

    @staticmethod
    async def each(items: Sequence[T], act_on: Callable[[T], Awaitable[int]],
                   keep: Callable[[Sequence[T]], None]) -> int:
        """Acts on each item in turn; returns the sum of what ``act_on`` returned.

        Work a round took off its list must not be lost to a transient answer: the item
        it came on and the ones after it go to ``keep`` (back on the list, for the next
        round) and ``RetryLater`` ends the round, as the log is unwell.
        """
        done = 0
        for index, item in enumerate(items):
            try:
                done += await act_on(item)
            except RetryLater:
                keep(items[index:])
                raise
        return done
